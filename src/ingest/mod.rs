//! Ingest: agents report without code. Outside payloads — Claude Code's HTTP hooks and
//! OpenTelemetry (OTLP/HTTP logs and GenAI spans) — mapped onto the same runs, prompts and logs the REST API writes,
//! through the same `state_change` machinery, so the feed shows them live.
//!
//! Each delivery is applied in one write transaction: a rejected request writes nothing,
//! and a retried one finds its keys (migration 0003's `ingest_keys`) and changes nothing.

pub mod hooks;
pub mod otlp;
pub mod otlp_logs;
pub mod otlp_traces;
pub mod sink;

use crate::db::{write_transaction, Database};
use crate::error::ApiError;
use crate::http::{Config, JsonObject, Query, Request, Response};

/// `POST /api/ingest/claude-code`: apply one hook event; answers what the agent is to do
/// (`{}` for nothing; see [`crate::steering`]), after holding the request while a person
/// decides, when the event waits for one. `open` migrates; `reconnect` only connects.
pub fn claude_code<D: Database>(
    open: &dyn Fn() -> Result<D, ApiError>,
    reconnect: &dyn Fn() -> Result<D, ApiError>,
    config: &Config,
    req: &Request,
    query: &Query,
    body: &JsonObject,
) -> Result<Response, ApiError> {
    // Query first: a bad parameter costs no connection.
    let mut target = hooks::Target::from_query(query)?;
    // Claude Code fills the header from $ORCHESTRATOR_RUN_ID: empty outside a runner, and
    // anything but a run id is ignored (the session is then a run of its own).
    target.parent_run = req
        .header("x-orchestrator-run-id")
        .and_then(|v| crate::domain::Id::parse(v.trim()))
        .map(crate::domain::RunId::from);
    let wait = config.approval_wait.as_secs();
    let reply = {
        let db = open()?;
        write_transaction(&db, |db| hooks::apply(db, &target, body.fields(), wait))?
    };
    // A held request checks on a plain connection: the schema was brought up to date above.
    let answer = crate::steering::hold::wait(reconnect, reply)?;
    Ok(Response::json(200, &answer))
}

/// `POST /v1/logs`, `/v1/traces`, `/v1/metrics`: one OTLP export, checked (413, 415, 400)
/// before the database is opened, applied in one transaction, answered with the
/// signal's `Export…ServiceResponse` in the request's encoding. Errors are answered by the
/// router through [`otlp::error_response`].
pub fn otlp_export<D: Database>(
    signal: otlp::Signal,
    open: impl FnOnce() -> Result<D, ApiError>,
    config: &Config,
    req: &Request,
) -> Result<Response, ApiError> {
    use opentelemetry_proto::tonic::collector::{logs, metrics, trace};
    let (encoding, body) = otlp::body(config, req)?;
    let outcome = match signal {
        otlp::Signal::Logs => {
            let export: logs::v1::ExportLogsServiceRequest =
                otlp::decode(encoding, &body, "ExportLogsServiceRequest")?;
            let records = otlp_logs::records(&export);
            if records.is_empty() {
                otlp::Outcome::default()
            } else {
                let db = open()?;
                write_transaction(&db, |db| otlp_logs::apply(db, &records))?
            }
        }
        otlp::Signal::Traces => {
            let export: trace::v1::ExportTraceServiceRequest =
                otlp::decode(encoding, &body, "ExportTraceServiceRequest")?;
            let spans = otlp_traces::spans(&export);
            if spans.is_empty() {
                otlp::Outcome::default()
            } else {
                let db = open()?;
                write_transaction(&db, |db| otlp_traces::apply(db, &spans))?
            }
        }
        // Decoded so that a malformed body is still a 400; the data is not kept (an
        // exporter of metrics must not see errors for what this backend does not use).
        otlp::Signal::Metrics => {
            let _: metrics::v1::ExportMetricsServiceRequest =
                otlp::decode(encoding, &body, "ExportMetricsServiceRequest")?;
            otlp::Outcome::default()
        }
    };
    Ok(otlp::success(signal, encoding, &outcome))
}

/// The ingest routes in `/openapi.json`.
pub(crate) fn describe(doc: &mut serde_json::Value) {
    use serde_json::json;
    let error = |code: u16| json!({ "$ref": format!("#/components/responses/E{code}") });
    let query = |name: &str, description: &str| {
        json!({ "name": name, "in": "query", "required": false, "description": description,
                "schema": { "type": "string" } })
    };
    let otlp = |summary: &str, response: &str| {
        let body = json!({ "schema": { "type": "string", "format": "binary" } });
        let status = json!({
            "description": "OTLP failure: a google.rpc.Status in the request's encoding (protobuf for protobuf requests; for JSON, {code, message} beside the API's {error}); nothing was written",
            "content": {
                "application/x-protobuf": body,
                "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
        json!({ "post": {
        "summary": summary,
        "parameters": [{ "name": "content-encoding", "in": "header", "required": false,
            "description": "gzip, or none; the decompressed body must fit in the body limit too (413)",
            "schema": { "type": "string", "enum": ["gzip", "identity"] } }],
        "requestBody": { "required": true, "content": {
            "application/x-protobuf": body,
            "application/json": { "schema": { "type": "object" } } } },
        "responses": {
            "200": { "description": response, "content": {
                "application/x-protobuf": body,
                "application/json": { "schema": { "type": "object" } } } },
            "400": status, "401": status, "413": status, "415": status } } })
    };
    doc["paths"]["/v1/logs"] = otlp(
        "OTLP/HTTP logs (ExportLogsServiceRequest, protobuf or JSON): claude_code.api_request → a completed prompt (a model call) of the session's run, or of the subagent's child run when the record has agent_id (joined by session.id, even when the run is final; tokens_input includes cache read and creation tokens; created_at/completed_at from event.timestamp and duration_ms; parent_prompt_id the UserPromptSubmit prompt of the same prompt.id), one cost_update feed event per run per export; tool_result → the tool call's one tool_call log, shared with its PostToolUse hook by tool_use_id (details.telemetry); api_error → error log; records without session.id are rejected in partial_success",
        "ExportLogsServiceResponse in the request's encoding: empty on full success, else partial_success {rejected_log_records, error_message}",
    );
    doc["paths"]["/v1/traces"] = otlp(
        "OTLP/HTTP traces (ExportTraceServiceRequest, protobuf or JSON), GenAI semantic conventions: invoke_agent → a run of gen_ai.agent.name (the session's run for a top-level agent, else a child run), chat/text_completion/generate_content → a finished prompt (model, gen_ai.usage tokens, gen_ai.usage.cost if given, latency from the span), execute_tool → a tool_call log; session = gen_ai.conversation.id, else session.id, else the trace id, joined with the Claude Code hooks' run of that session; an error status fails the run or prompt; children before parents in a batch land; a batch applied twice changes nothing; GenAI spans without valid ids are rejected in partial_success",
        "ExportTraceServiceResponse in the request's encoding: empty on full success, else partial_success {rejected_spans, error_message}",
    );
    doc["paths"]["/v1/metrics"] = otlp(
        "OTLP/HTTP metrics (protobuf or JSON): decoded (a malformed body is 400) and not kept",
        "ExportMetricsServiceResponse in the request's encoding (empty)",
    );
    doc["paths"]["/api/ingest/claude-code"] = json!({ "post": {
        "summary": "One Claude Code hook event (the body an \"type\": \"http\" hook posts). Creates the session's run (and a subagent's child run via agent_id) on first use, with project = cwd; moves its status through the same state_change rows as PATCH; UserPromptSubmit is a prompt the next Stop completes (its text, cut, is the run's title when it has none); PostToolUse/PostToolUseFailure the tool call's one tool_call log, shared with claude_code.tool_result by tool_use_id (input and response kept whole up to 64 KiB of JSON each, else an excerpt {excerpt, truncated, bytes}); StopFailure fails the run and prompt with last_assistant_message and the error category; Notification a milestone log. Unknown events and fields are kept as a DEBUG milestone, never an error. A redelivery changes nothing; a final run takes no more events.",
        "parameters": [
            query("agent", "Definition name, created on first use (default claude-code)"),
            query("agent_type", "Definition type on creation (default builder)"),
            query("session", "The run's session_id (default the hook's session_id)"),
        ],
        "requestBody": { "required": true, "content": { "application/json": { "schema": {
            "type": "object", "required": ["session_id"], "properties": {
                "session_id": { "type": "string" }, "hook_event_name": { "type": "string" },
                "agent_id": { "type": "string" }, "prompt": { "type": "string" },
                "tool_name": { "type": "string" }, "tool_use_id": { "type": "string" },
                "tool_input": {}, "tool_response": {}, "error": { "type": "string" },
                "message": { "type": "string" } } } } } },
        "responses": {
            "200": { "description": "Applied (or already applied). The answer is {} unless the agent is to be steered: {continue: false, stopReason} for a cancelled run or a budget reached (plus a deny at PreToolUse, a deny with interrupt at PermissionRequest); hookSpecificOutput with permissionDecision (PreToolUse) or decision.behavior (PermissionRequest) for a deny rule or a person's decision on an approval, the request held until then (up to APPROVAL_WAIT_SECS; undecided: {}); {decision: block, reason} at Stop for a follow-up (a Stop held up to the policy's hold_on_stop_secs for one)", "content": { "application/json": { "schema": { "type": "object" } } } },
            "400": error(400), "401": error(401), "405": error(405), "413": error(413), "415": error(415), "422": error(422), "503": error(503) } } });
}
