//! Ingest: agents report without code. Outside payloads — Claude Code's HTTP hooks and
//! (later) OpenTelemetry — mapped onto the same runs, prompts and logs the REST API writes,
//! through the same `state_change` machinery, so the feed shows them live.
//!
//! Each delivery is applied in one write transaction: a rejected request writes nothing,
//! and a retried one finds its keys (migration 0003's `ingest_keys`) and changes nothing.

pub mod hooks;
pub mod otlp_logs;
pub mod sink;

use crate::db::{write_transaction, Database};
use crate::error::ApiError;
use crate::http::{JsonObject, Query, Response};

/// `POST /api/ingest/claude-code`: apply one hook event; answers `{}` (200).
pub fn claude_code<D: Database>(
    open: impl FnOnce() -> Result<D, ApiError>,
    query: &Query,
    body: &JsonObject,
) -> Result<Response, ApiError> {
    // Query first: a bad parameter costs no connection.
    let target = hooks::Target::from_query(query)?;
    let db = open()?;
    write_transaction(&db, |db| hooks::apply(db, &target, body.fields()))?;
    Ok(Response::json(200, &serde_json::json!({})))
}

/// `POST /v1/logs` (OTLP/JSON): Claude Code's events; answers an
/// `ExportLogsServiceResponse` with `partialSuccess`.
pub fn otlp_logs<D: Database>(
    open: impl FnOnce() -> Result<D, ApiError>,
    body: &JsonObject,
) -> Result<Response, ApiError> {
    let records = otlp_logs::decode(&serde_json::Value::Object(body.fields().clone()))?;
    let db = open()?;
    let outcome = write_transaction(&db, |db| otlp_logs::apply(db, &records))?;
    Ok(Response::json(200, &outcome.to_json()))
}

/// `POST /v1/metrics`: accepted and ignored (an exporter must not see errors).
pub fn otlp_metrics() -> Response {
    Response::json(200, &serde_json::json!({"partialSuccess": {}}))
}

/// The ingest routes in `/openapi.json`.
pub(crate) fn describe(doc: &mut serde_json::Value) {
    use serde_json::json;
    let error = |code: u16| json!({ "$ref": format!("#/components/responses/E{code}") });
    let query = |name: &str, description: &str| {
        json!({ "name": name, "in": "query", "required": false, "description": description,
                "schema": { "type": "string" } })
    };
    let otlp = |summary: &str| {
        json!({ "post": {
        "summary": summary,
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } },
        "responses": {
            "200": { "description": "OTLP Export…ServiceResponse: {\"partialSuccess\": {}} or {rejectedLogRecords, errorMessage}", "content": { "application/json": { "schema": { "type": "object" } } } },
            "400": error(400), "401": error(401), "413": error(413), "415": error(415) } } })
    };
    doc["paths"]["/v1/logs"] = otlp("OTLP/HTTP logs, JSON encoding only in this version (application/x-protobuf is 415): claude_code.api_request → a completed prompt of the session's run (joined by session.id, even when the run is final; tokens_input includes cache read and creation tokens), tool_result → tool_call log, api_error → error log; records without session.id are counted in partialSuccess");
    doc["paths"]["/v1/metrics"] = otlp("OTLP/HTTP metrics: accepted and ignored");
    doc["paths"]["/api/ingest/claude-code"] = json!({ "post": {
        "summary": "One Claude Code hook event (the body an \"type\": \"http\" hook posts). Creates the session's run (and a subagent's child run via agent_id) on first use; moves its status through the same state_change rows as PATCH; UserPromptSubmit is a prompt the next Stop completes; PostToolUse/PostToolUseFailure a tool_call log (input and response kept whole up to 64 KiB of JSON each, else an excerpt {excerpt, truncated, bytes}); Notification a milestone log. Unknown events and fields are kept as a DEBUG milestone, never an error. A redelivery changes nothing; a final run takes no more events.",
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
            "200": { "description": "Applied (or already applied): {}", "content": { "application/json": { "schema": { "type": "object", "maxProperties": 0 } } } },
            "400": error(400), "401": error(401), "405": error(405), "413": error(413), "415": error(415), "422": error(422), "503": error(503) } } });
}
