//! `/api/runner/...`: the runner protocol (docs/dispatch.md). A runner claims a queued run
//! (long-poll), heartbeats, sends its output in batches and reports the exit; the
//! database is the only coordinator, so many runners can share one API.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value as Json;

use super::{path_id, Input, Open};
use crate::db::{Connector, Database};
use crate::domain::RunId;
use crate::error::ApiError;
use crate::http::{Config, JsonObject, Response};
use crate::store::dispatches::{self as store, Claim, Line, Stream};

/// How long a waiting claim sleeps between checks. Each check is one indexed read on a
/// fresh connection; no connection is held while sleeping.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// The longest `wait` a claim may ask for, in seconds (under every host's deadline).
pub const MAX_WAIT_SECONDS: i64 = 30;
/// The longest runner name, in characters.
pub const MAX_RUNNER_NAME: usize = 128;
/// The longest `error` an exit report may carry, in characters.
pub const MAX_ERROR: usize = 4_096;

#[derive(Serialize)]
struct ClaimAnswer {
    claim: Option<Claim>,
}

/// `POST /api/runner/claim {"runner", "wait"}`: the oldest queued run, claimed, or
/// `{"claim": null}` at the deadline.
pub(crate) fn claim<C: Connector>(
    connector: &C,
    config: &Config,
    input: &Input,
) -> Result<Response, ApiError> {
    let body = input.body()?;
    body.only(&["runner", "wait"])?;
    let runner = body
        .non_empty_string("runner", MAX_RUNNER_NAME)?
        .required("runner")?;
    let wait = field(body, "wait", |v| {
        v.as_i64()
            .filter(|n| (0..=MAX_WAIT_SECONDS).contains(n))
            .ok_or_else(|| {
                ApiError::validation(
                    "wait",
                    format!("wait must be a whole number of seconds, 0..={MAX_WAIT_SECONDS}"),
                )
            })
    })?
    .unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(wait as u64);
    let mut first = true;
    loop {
        let claim = {
            // The first check migrates a fresh database; later ones only connect.
            let db = if first {
                crate::migrations::open(connector)?
            } else {
                connector.connect()?
            };
            first = false;
            let (queued, expired) = store::pending_work(&db)?;
            if queued || expired {
                store::claim(&db, &runner, config.runner_lease)?
            } else {
                None
            }
        };
        let now = Instant::now();
        if claim.is_some() || now >= deadline {
            return Ok(Response::json(200, &ClaimAnswer { claim }));
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

/// A body field checked by `convert`; absent or null is `None`.
pub(crate) fn field<T>(
    body: &JsonObject,
    name: &str,
    convert: impl FnOnce(&Json) -> Result<T, ApiError>,
) -> Result<Option<T>, ApiError> {
    match body.fields().get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(value) => convert(value).map(Some),
    }
}

/// The `lease` every report carries.
fn lease(input: &Input) -> Result<String, ApiError> {
    input
        .body()?
        .non_empty_string("lease", 64)?
        .required("lease")
}

/// `POST /api/runner/runs/{id}/heartbeat {"lease"}`.
pub(crate) fn heartbeat<D: Database>(
    open: impl Open<D>,
    config: &Config,
    raw_id: &str,
    input: &Input,
) -> Result<Response, ApiError> {
    input.body()?.only(&["lease"])?;
    let lease = lease(input)?;
    let id = RunId::from(path_id(raw_id, "dispatched run")?);
    let beat = store::heartbeat(&open()?, &id, &lease, config.runner_lease)?;
    Ok(Response::json(200, &beat))
}

/// One output line of a batch: `{"stream": "stdout"|"stderr", "text"}`.
fn line(at: &str, value: &Json) -> Result<Line, ApiError> {
    let Json::Object(fields) = value else {
        return Err(ApiError::validation(
            at,
            format!("{at} must be an object {{stream, text}}"),
        ));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "stream" | "text"))
    {
        return Err(ApiError::validation(
            &format!("{at}.{unknown}"),
            format!("{at}.{unknown} is not an accepted field; accepted: stream, text"),
        ));
    }
    let stream = fields
        .get("stream")
        .and_then(Json::as_str)
        .and_then(Stream::parse)
        .ok_or_else(|| {
            ApiError::validation(
                &format!("{at}.stream"),
                format!("{at}.stream must be stdout or stderr"),
            )
        })?;
    let text = fields.get("text").and_then(Json::as_str).ok_or_else(|| {
        ApiError::validation(&format!("{at}.text"), format!("{at}.text must be a string"))
    })?;
    Ok(Line {
        stream,
        text: text.to_owned(),
    })
}

/// `POST /api/runner/runs/{id}/output {"lease", "lines": [{stream, text}]}`.
pub(crate) fn output<D: Database>(
    open: impl Open<D>,
    config: &Config,
    raw_id: &str,
    input: &Input,
) -> Result<Response, ApiError> {
    let body = input.body()?;
    body.only(&["lease", "lines", "from"])?;
    let lease = lease(input)?;
    let lines = field(body, "lines", |v| {
        let Json::Array(items) = v else {
            return Err(ApiError::validation("lines", "lines must be an array"));
        };
        if items.len() > store::MAX_LINES_PER_BATCH {
            return Err(ApiError::validation(
                "lines",
                format!(
                    "a batch holds at most {} lines (got {}); send more batches",
                    store::MAX_LINES_PER_BATCH,
                    items.len()
                ),
            ));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| line(&format!("lines[{i}]"), item))
            .collect::<Result<Vec<_>, _>>()
    })?
    .ok_or_else(|| ApiError::validation("lines", "lines is required"))?;
    let from = field(body, "from", |v| {
        v.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::validation(
                "from",
                "from must be a whole number ≥ 0 (lines sent before)",
            )
        })
    })?;
    let id = RunId::from(path_id(raw_id, "dispatched run")?);
    let answer = store::output(&open()?, &id, &lease, &lines, from, config.runner_lease)?;
    Ok(Response::json(200, &answer))
}

#[derive(Serialize)]
struct ExitAnswer {
    run: crate::store::runs::Run,
}

/// `POST /api/runner/runs/{id}/exit {"lease", "exit_code", "error"}`.
pub(crate) fn exit<D: Database>(
    open: impl Open<D>,
    raw_id: &str,
    input: &Input,
) -> Result<Response, ApiError> {
    let body = input.body()?;
    body.only(&["lease", "exit_code", "error"])?;
    let lease = lease(input)?;
    let exit_code = field(body, "exit_code", |v| {
        v.as_i64()
            .ok_or_else(|| ApiError::validation("exit_code", "exit_code must be an integer"))
    })?;
    let error = body.string("error", MAX_ERROR)?.optional();
    let id = RunId::from(path_id(raw_id, "dispatched run")?);
    let run = store::exit(&open()?, &id, &lease, exit_code, error.as_deref())?;
    Ok(Response::json(200, &ExitAnswer { run }))
}

/// The runner protocol's routes and schemas, and what dispatch adds to runs, for
/// `/openapi.json` (docs/dispatch.md says the same in prose).
pub(crate) fn describe(doc: &mut Json) {
    use serde_json::json;
    let error = |code: u16| json!({ "$ref": format!("#/components/responses/E{code}") });
    let schema = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    let body = |name: &str| json!({ "required": true, "content": { "application/json": { "schema": schema(name) } } });
    let answer = |description: &str, name: &str| {
        json!({ "description": description,
            "content": { "application/json": { "schema": schema(name) } } })
    };
    let id = json!({ "name": "id", "in": "path", "required": true,
        "description": "The dispatched run's id", "schema": { "type": "string", "format": "uuid" } });
    let report_errors = |mut responses: serde_json::Map<String, Json>| {
        for code in [400, 401, 404, 409, 413, 415, 422] {
            responses.insert(code.to_string(), error(code));
        }
        Json::Object(responses)
    };
    let one = |code: &str, value: Json| {
        let mut map = serde_json::Map::new();
        map.insert(code.to_owned(), value);
        map
    };
    doc["paths"]["/api/runner/claim"] = json!({ "post": {
        "summary": "A runner claims the oldest queued run (long-poll up to wait seconds, with no connection held while it sleeps). Atomic: two runners never get the same run. The run moves to executing, its dispatch to running, with a lease of runner_lease_secs renewed by heartbeats and output.",
        "requestBody": body("ClaimRequest"),
        "responses": { "200": answer("{\"claim\": null} at the deadline, or the claim", "ClaimAnswer"),
            "400": error(400), "401": error(401), "413": error(413), "415": error(415), "422": error(422) } } });
    doc["paths"]["/api/runner/runs/{id}/heartbeat"] = json!({ "post": {
        "summary": "Renew the lease; cancelled is true when the run was made final by someone else (Stop): end the process group. 409 when the lease is not (or no longer) the sender's: the run was declared lost or claimed again.",
        "parameters": [id.clone()], "requestBody": body("Lease"),
        "responses": report_errors(one("200", answer("The lease renewed", "Heartbeat"))) } });
    doc["paths"]["/api/runner/runs/{id}/output"] = json!({ "post": {
        "summary": "A batch of stdout/stderr lines (at most 1000), kept as logs of the run (log_type performance, details.output stdout|stderr|marker, details.seq); a line over 8192 bytes is cut and says so; a run keeps at most 20000 lines. from (the runner's count of lines before the batch) makes a batch sent again not kept twice. Renews the lease.",
        "parameters": [id.clone()], "requestBody": body("OutputBatch"),
        "responses": report_errors(one("200", answer("What was kept", "OutputAnswer"))) } });
    doc["paths"]["/api/runner/runs/{id}/exit"] = json!({ "post": {
        "summary": "The process ended: exit code 0 with no error completes the run; anything else fails it with error_message = the error or 'exited with code N', then the last output lines. A run already final (cancelled) keeps its status. The same report again answers the run unchanged.",
        "parameters": [id], "requestBody": body("ExitReport"),
        "responses": report_errors(one("200", answer("The run as it now is", "ExitAnswer"))) } });
    let time = json!({ "type": "string", "format": "date-time" });
    let nullable_time = json!({ "type": ["string", "null"], "format": "date-time" });
    let schemas = &mut doc["components"]["schemas"];
    schemas["Dispatch"] = json!({ "type": ["object", "null"],
        "description": "How a dispatched run is being run (null for a run that was not dispatched). state: queued (waiting; run initializing), running (a runner holds the lease; run executing), exited (the runner reported the end), lost (the lease passed without a heartbeat; run failed, 'runner lost').",
        "properties": {
            "state": { "type": "string", "enum": ["queued", "running", "exited", "lost"] },
            "runner": { "type": ["string", "null"] }, "exit_code": { "type": ["integer", "null"] },
            "input": { "type": "string" }, "argv": { "type": "array", "items": { "type": "string" },
                "description": "The definition's command with {input}, {run_id} and {session_id} replaced when the run was queued" },
            "queued_at": time, "started_at": nullable_time, "ended_at": nullable_time } });
    schemas["Tree"] = json!({ "type": "object",
        "description": "The run and every run under it by parent_agent_id, any depth (a dispatched workflow's Claude Code sessions and their subagents), summed. Only in GET /api/runtime/agents/{id}.",
        "properties": { "runs": { "type": "integer" }, "cost_usd": { "type": "number" },
            "tokens_input": { "type": "integer" }, "tokens_output": { "type": "integer" } } });
    schemas["Run"]["properties"]["dispatch"] = schema("Dispatch");
    schemas["Run"]["properties"]["tree"] = schema("Tree");
    schemas["RunInput"]["properties"]["dispatch"] = json!({ "type": ["object", "null"],
        "description": "Queue the run for a runner: the definition must have a command (else 422 on dispatch). session_id is then optional (default: a fresh UUID).",
        "additionalProperties": false,
        "properties": { "input": { "type": ["string", "null"], "maxLength": store::MAX_INPUT } } });
    schemas["RunInput"]["required"] = json!(["orchestrator_agent_id"]);
    schemas["RunInput"]["description"] = json!("session_id is required unless dispatch is given");
    schemas["ClaimRequest"] = json!({ "type": "object", "additionalProperties": false, "required": ["runner"],
        "properties": { "runner": { "type": "string", "minLength": 1, "maxLength": MAX_RUNNER_NAME },
            "wait": { "type": "integer", "minimum": 0, "maximum": MAX_WAIT_SECONDS, "default": 0 } } });
    schemas["ClaimAnswer"] = json!({ "type": "object", "properties": { "claim": { "type": ["object", "null"], "properties": {
        "run": schema("Run"), "lease": { "type": "string", "description": "Carried by every report about this run" },
        "lease_secs": { "type": "integer", "description": "Heartbeat every third of it" },
        "argv": { "type": "array", "items": { "type": "string" } },
        "working_dir": { "type": ["string", "null"] }, "timeout_secs": { "type": ["integer", "null"] },
        "env": { "type": "object", "properties": { "ORCHESTRATOR_RUN_ID": { "type": "string" },
            "ORCHESTRATOR_SESSION_ID": { "type": "string" } } } } } } });
    schemas["Lease"] = json!({ "type": "object", "additionalProperties": false, "required": ["lease"],
        "properties": { "lease": { "type": "string" } } });
    schemas["Heartbeat"] = json!({ "type": "object", "properties": { "cancelled": { "type": "boolean" },
        "status": { "type": "string" }, "lease_until": time } });
    schemas["OutputBatch"] = json!({ "type": "object", "additionalProperties": false, "required": ["lease", "lines"],
        "properties": { "lease": { "type": "string" }, "from": { "type": "integer", "minimum": 0 },
            "lines": { "type": "array", "maxItems": store::MAX_LINES_PER_BATCH, "items": { "type": "object",
                "additionalProperties": false, "required": ["stream", "text"], "properties": {
                    "stream": { "type": "string", "enum": ["stdout", "stderr"] }, "text": { "type": "string" } } } } } });
    schemas["OutputAnswer"] = json!({ "type": "object", "properties": {
        "kept": { "type": "integer" }, "cut": { "type": "integer" }, "dropped": { "type": "integer" },
        "duplicates": { "type": "integer" }, "cancelled": { "type": "boolean" } } });
    schemas["ExitReport"] = json!({ "type": "object", "additionalProperties": false, "required": ["lease"],
        "properties": { "lease": { "type": "string" }, "exit_code": { "type": ["integer", "null"] },
            "error": { "type": ["string", "null"], "maxLength": MAX_ERROR,
                "description": "What happened when there is no exit code to tell it: not allowed, timed out, could not start, killed by a signal" } } });
    schemas["ExitAnswer"] = json!({ "type": "object", "properties": { "run": schema("Run") } });
}
