//! The OpenAPI 3.1 document served at `/openapi.json`, built from the same enums the
//! validation uses, so the documented sets cannot drift from the accepted ones.

use serde_json::{json, Value as Json};

use crate::domain::{AgentType, LogLevel, LogSource, LogType, PromptStatus, PromptType, RunStatus};
use crate::error::ErrorCode;

fn values<T: Copy>(all: &[T], text: impl Fn(T) -> &'static str) -> Json {
    Json::from(all.iter().map(|v| text(*v)).collect::<Vec<_>>())
}

fn schema_ref(name: &str) -> Json {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_content(schema: Json) -> Json {
    json!({ "application/json": { "schema": schema } })
}

fn ok(status: &str, description: &str, schema: Json) -> (String, Json) {
    (
        status.to_owned(),
        json!({ "description": description, "content": json_content(schema) }),
    )
}

fn error(status: u16) -> (String, Json) {
    (
        status.to_string(),
        json!({ "$ref": format!("#/components/responses/E{status}") }),
    )
}

fn operation(
    summary: &str,
    params: Vec<Json>,
    body: Option<&str>,
    responses: Vec<(String, Json)>,
) -> Json {
    let mut op = json!({
        "summary": summary,
        "parameters": params,
        "responses": responses.into_iter().collect::<serde_json::Map<_, _>>(),
    });
    if let Some(body) = body {
        op["requestBody"] = json!({ "required": true, "content": json_content(schema_ref(body)) });
    }
    op
}

fn query(name: &str, description: &str, schema: Json) -> Json {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn path_id() -> Json {
    json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } })
}

fn page() -> Vec<Json> {
    vec![
        query(
            "limit",
            "Page size",
            json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 }),
        ),
        query(
            "offset",
            "Rows to skip",
            json!({ "type": "integer", "minimum": 0, "default": 0 }),
        ),
    ]
}

fn list_of(name: &str) -> Json {
    json!({ "type": "array", "items": schema_ref(name) })
}

fn with_page(mut params: Vec<Json>) -> Vec<Json> {
    params.extend(page());
    params
}

fn string_enum(values: Json) -> Json {
    json!({ "type": "string", "enum": values })
}

fn nullable(t: &str) -> Json {
    json!({ "type": [t, "null"] })
}

/// The whole document.
pub fn document() -> Json {
    let agent_type = string_enum(values(AgentType::ALL, AgentType::as_str));
    let run_status = string_enum(values(RunStatus::ALL, RunStatus::as_str));
    let prompt_status = string_enum(values(PromptStatus::ALL, PromptStatus::as_str));
    let prompt_type = string_enum(values(PromptType::ALL, PromptType::as_str));
    let log_level = string_enum(values(LogLevel::ALL, LogLevel::as_str));
    let log_type = string_enum(values(LogType::ALL, LogType::as_str));
    let log_source = string_enum(values(LogSource::ALL, LogSource::as_str));
    let writable_log_type = string_enum(values(&LogType::ALL[1..], LogType::as_str));
    let time = json!({ "type": "string", "format": "date-time" });
    let uuid = json!({ "type": "string", "format": "uuid" });
    let object = json!({ "type": "object" });
    let common = |mut v: Vec<(String, Json)>, codes: &[u16]| {
        v.extend(codes.iter().map(|c| error(*c)));
        v
    };

    let mut responses = serde_json::Map::new();
    for code in [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::ValidationFailed,
        ErrorCode::Unavailable,
    ] {
        responses.insert(
            format!("E{}", code.status()),
            json!({ "description": code.as_str(), "content": json_content(schema_ref("Error")) }),
        );
    }

    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Agent orchestrator API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Agent definitions, runtime agents, prompts, logs and a live status feed, kept in SQLite. Errors are {\"error\": {\"code\", \"message\", \"details\"}}. Unknown body fields are 422; bad query parameters are 400."
        },
        "security": [{ "bearer": [] }, {}],
        "paths": {
            "/health": { "get": operation("Database reachable and schema current", vec![], None,
                vec![ok("200", "Healthy", json!({ "type": "object", "properties": { "status": { "const": "ok" } } })), error(503)]) },
            "/openapi.json": { "get": operation("This document", vec![], None, vec![ok("200", "OpenAPI 3.1", object.clone())]) },
            "/api/agents": {
                "get": operation("List agent definitions (created_at, id ascending)",
                    with_page(vec![query("agent_type", "Filter", agent_type.clone())]), None,
                    common(vec![ok("200", "Definitions", list_of("Agent"))], &[400, 401])),
                "post": operation("Create an agent definition", vec![], Some("AgentInput"),
                    common(vec![ok("201", "Created; Location header set", schema_ref("Agent"))], &[400, 401, 409, 413, 415, 422])),
            },
            "/api/agents/{id}": {
                "get": operation("One agent definition", vec![path_id()], None, common(vec![ok("200", "Definition", schema_ref("Agent"))], &[401, 404])),
                "put": operation("Update any subset of the writable fields", vec![path_id()], Some("AgentUpdate"),
                    common(vec![ok("200", "Updated", schema_ref("Agent"))], &[400, 401, 404, 409, 413, 415, 422])),
                "delete": operation("Delete, cascading to runs, prompts and logs", vec![path_id()], None,
                    common(vec![("204".into(), json!({ "description": "Deleted" }))], &[401, 404])),
            },
            "/api/runtime/agents": {
                "get": operation("List runtime agents (newest first)", with_page(vec![
                        query("status", "Filter", run_status.clone()),
                        query("session_id", "Filter", json!({ "type": "string" })),
                        query("orchestrator_agent_id", "Filter", uuid.clone()),
                        query("q", "Case-insensitive (ASCII) substring of the definition's name, the session id, the run's title or its project; % and _ match themselves; empty means no filter", json!({ "type": "string" })),
                        query("since", "RFC 3339 time: runs whose last_activity_at is at or after it (400 if unparseable)", time.clone())]), None,
                    common(vec![ok("200", "Runs", list_of("Run"))], &[400, 401])),
                "post": operation("Start a runtime agent (status initializing)", vec![], Some("RunInput"),
                    common(vec![ok("201", "Created; Location header set", schema_ref("Run"))], &[400, 401, 413, 415, 422])),
            },
            "/api/runtime/agents/{id}": {
                "get": operation("One runtime agent", vec![path_id()], None, common(vec![ok("200", "Run", schema_ref("Run"))], &[401, 404])),
                "patch": operation("Change status, error_message, context, title or project; leaving a final status is 409", vec![path_id()], Some("RunPatch"),
                    common(vec![ok("200", "Updated", schema_ref("Run"))], &[400, 401, 404, 409, 413, 415, 422])),
                "delete": operation("Delete, cascading to prompts and logs", vec![path_id()], None,
                    common(vec![("204".into(), json!({ "description": "Deleted" }))], &[401, 404])),
            },
            "/api/runtime/prompts": {
                "get": operation("List prompts (newest first)", with_page(vec![
                        query("agent_id", "Filter", uuid.clone()), query("status", "Filter", prompt_status.clone()),
                        query("parent_prompt_id", "The model calls that served this user prompt", uuid.clone())]), None,
                    common(vec![ok("200", "Prompts", list_of("Prompt"))], &[400, 401])),
                "post": operation("Record a prompt (status pending)", vec![], Some("PromptInput"),
                    common(vec![ok("201", "Created; Location header set", schema_ref("Prompt"))], &[400, 401, 413, 415, 422])),
            },
            "/api/runtime/prompts/{id}": {
                "get": operation("One prompt", vec![path_id()], None, common(vec![ok("200", "Prompt", schema_ref("Prompt"))], &[401, 404])),
                "patch": operation("Update a prompt; cost rolls up into its runtime agent", vec![path_id()], Some("PromptPatch"),
                    common(vec![ok("200", "Updated", schema_ref("Prompt"))], &[400, 401, 404, 409, 413, 415, 422])),
            },
            "/api/runtime/logs": {
                "get": operation("Agent and system logs merged, newest first", with_page(vec![
                        query("source", "Only one table", log_source.clone()),
                        query("agent_id", "Filter (implies source=agent)", uuid.clone()),
                        query("level", "Filter", log_level.clone()),
                        query("log_type", "Filter (implies source=agent)", log_type.clone())]), None,
                    common(vec![ok("200", "Logs", list_of("Log"))], &[400, 401])),
                "post": operation("Write an agent or system log line", vec![], Some("LogInput"),
                    common(vec![ok("201", "Created", schema_ref("Log"))], &[400, 401, 413, 415, 422])),
            },
            "/api/runtime/stats": {
                "get": operation("Counts by status, totals and per-definition cost", vec![], None,
                    common(vec![ok("200", "Stats", schema_ref("Stats"))], &[401])),
            },
            "/api/events": {
                "get": operation("Long-poll the status feed", vec![
                        query("after", "Cursor to read after", json!({ "type": "integer", "minimum": 0, "default": 0 })),
                        query("wait", "Seconds to wait for a first event", json!({ "type": "integer", "minimum": 0, "maximum": 30, "default": 0 })),
                        query("limit", "Most events", json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 }))], None,
                    common(vec![ok("200", "Events after the cursor", schema_ref("EventBatch"))], &[400, 401])),
            },
            "/api/events/snapshot": {
                "get": operation("Runs not final, and the cursor to follow from", vec![], None,
                    common(vec![ok("200", "Snapshot", schema_ref("Snapshot"))], &[401])),
            },
            "/api/events/stream": {
                "get": {
                    "summary": "The feed as Server-Sent Events (Last-Event-ID resumes; ends itself within 50 s)",
                    "parameters": [query("after", "Cursor to start after (default: the head)", json!({ "type": "integer", "minimum": 0 }))],
                    "responses": { "200": { "description": "text/event-stream of agent_update events", "content": { "text/event-stream": { "schema": { "type": "string" } } } }, "401": { "$ref": "#/components/responses/E401" } }
                }
            }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "Required when ORCHESTRATOR_API_TOKEN is set" } },
            "responses": responses,
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": { "code": { "type": "string" }, "message": { "type": "string" }, "details": { "type": "object" } } } } },
                "Agent": { "type": "object", "properties": {
                    "id": uuid, "name": { "type": "string" }, "description": nullable("string"), "agent_type": agent_type,
                    "capabilities": { "type": "array", "items": { "type": "string" } }, "default_model": nullable("string"),
                    "created_at": time, "updated_at": time } },
                "AgentInput": { "type": "object", "additionalProperties": false, "required": ["name", "agent_type"], "properties": {
                    "name": { "type": "string", "minLength": 1, "maxLength": 128 }, "description": nullable("string"), "agent_type": agent_type,
                    "capabilities": { "type": ["array", "null"], "items": { "type": "string" } }, "default_model": nullable("string") } },
                "AgentUpdate": { "type": "object", "additionalProperties": false, "properties": {
                    "name": { "type": "string", "minLength": 1, "maxLength": 128 }, "description": nullable("string"), "agent_type": agent_type,
                    "capabilities": { "type": ["array", "null"], "items": { "type": "string" } }, "default_model": nullable("string") } },
                "Run": { "type": "object", "properties": {
                    "id": uuid, "orchestrator_agent_id": uuid, "session_id": { "type": "string" }, "parent_agent_id": nullable("string"),
                    "status": run_status, "context": object, "config": object, "started_at": time,
                    "completed_at": nullable("string"), "cost_usd": { "type": "number" }, "error_message": nullable("string"),
                    "agent_name": { "type": ["string", "null"], "description": "The definition's name at read time (the feed: at the change)" },
                    "agent_type": { "type": ["string", "null"], "description": "The definition's agent_type at read time (the feed: at the change)" },
                    "tokens_input": { "type": "integer", "description": "Sum over its prompts, kept with cost_usd" },
                    "tokens_output": { "type": "integer", "description": "Sum over its prompts, kept with cost_usd" },
                    "last_activity_at": { "type": "string", "format": "date-time", "description": "Newest of its own change, its prompts' and its logs' times" },
                    "title": { "type": ["string", "null"], "description": "What the run is about: set by its creator, or by ingest (a Claude Code session's first prompt, whitespace collapsed, cut to 80 characters with …; a subagent's agent_type; an OTel agent span's gen_ai.agent.description)" },
                    "project": { "type": ["string", "null"], "description": "Where the agent worked: set by its creator, or a Claude Code hook's cwd" } } },
                "RunInput": { "type": "object", "additionalProperties": false, "required": ["orchestrator_agent_id", "session_id"], "properties": {
                    "orchestrator_agent_id": uuid, "session_id": { "type": "string", "minLength": 1 }, "parent_agent_id": nullable("string"),
                    "context": { "type": ["object", "null"] }, "config": { "type": ["object", "null"] },
                    "title": { "type": ["string", "null"], "maxLength": 256 }, "project": { "type": ["string", "null"], "maxLength": 4096 } } },
                "RunPatch": { "type": "object", "additionalProperties": false, "properties": {
                    "status": run_status, "error_message": nullable("string"), "context": { "type": ["object", "null"] },
                    "title": { "type": ["string", "null"], "maxLength": 256 }, "project": { "type": ["string", "null"], "maxLength": 4096 } } },
                "Prompt": { "type": "object", "properties": {
                    "id": uuid, "agent_id": uuid, "prompt_type": prompt_type, "prompt_name": nullable("string"),
                    "prompt_text": { "type": "string" }, "response_text": nullable("string"), "status": prompt_status,
                    "model_used": nullable("string"), "tokens_input": { "type": "integer" }, "tokens_output": { "type": "integer" },
                    "cost_usd": { "type": "number" }, "latency_ms": nullable("integer"), "created_at": time,
                    "completed_at": nullable("string"), "error_message": nullable("string"),
                    "parent_prompt_id": { "type": ["string", "null"], "format": "uuid", "description": "For a model call, the user prompt it served (Claude Code: joined on its prompt_id / prompt.id, whichever report came first); null for a user prompt" } } },
                "PromptInput": { "type": "object", "additionalProperties": false, "required": ["agent_id", "prompt_type", "prompt_text"], "properties": {
                    "agent_id": uuid, "prompt_type": prompt_type, "prompt_text": { "type": "string" },
                    "prompt_name": nullable("string"), "model_used": nullable("string") } },
                "PromptPatch": { "type": "object", "additionalProperties": false, "properties": {
                    "status": prompt_status, "response_text": nullable("string"), "model_used": nullable("string"),
                    "tokens_input": { "type": "integer", "minimum": 0 }, "tokens_output": { "type": "integer", "minimum": 0 },
                    "cost_usd": { "type": "number", "minimum": 0 }, "latency_ms": { "type": ["integer", "null"], "minimum": 0 },
                    "error_message": nullable("string") } },
                "Log": { "type": "object", "properties": {
                    "id": { "type": "integer" }, "source": log_source, "agent_id": uuid, "component": { "type": "string" },
                    "log_level": log_level, "log_type": log_type, "message": { "type": "string" }, "details": {}, "created_at": time } },
                "LogInput": { "type": "object", "required": ["source", "message"], "properties": {
                    "source": log_source, "agent_id": uuid, "log_type": writable_log_type, "component": { "type": "string" },
                    "message": { "type": "string" }, "log_level": log_level, "details": {} } },
                "Stats": { "type": "object", "properties": {
                    "agents_by_status": { "type": "object", "additionalProperties": { "type": "integer" } },
                    "prompts_by_status": { "type": "object", "additionalProperties": { "type": "integer" } },
                    "cost_usd": { "type": "number" }, "tokens_input": { "type": "integer" }, "tokens_output": { "type": "integer" },
                    "by_definition": { "type": "array", "items": { "type": "object", "properties": {
                        "orchestrator_agent_id": uuid, "name": { "type": "string" }, "runs": { "type": "integer" }, "cost_usd": { "type": "number" } } } } } },
                "Event": { "type": "object", "description": "agent_update: a run as it was right after a status change, or after a change of its cost or tokens (at most one per run per ingest delivery or PATCH)", "properties": { "cursor": { "type": "integer" }, "type": { "const": "agent_update" }, "data": schema_ref("Run") } },
                "EventBatch": { "type": "object", "properties": { "cursor": { "type": "integer" }, "events": list_of("Event") } },
                "Snapshot": { "type": "object", "properties": { "cursor": { "type": "integer" }, "data": list_of("Run") } }
            }
        }
    });
    add_sessions(&mut doc, &run_status, &time);
    super::admin::describe(&mut doc);
    super::approvals::describe(&mut doc);
    super::runner::describe(&mut doc);
    crate::ingest::describe(&mut doc);
    doc
}

/// The sessions routes and schemas (version 2), added to `doc`.
fn add_sessions(doc: &mut Json, run_status: &Json, time: &Json) {
    let status_counts = json!({ "type": "object", "description": "Every run status, zero included",
        "propertyNames": run_status, "additionalProperties": { "type": "integer" } });
    let common = |mut fields: serde_json::Map<String, Json>| {
        for (k, v) in [
            ("session_id", json!({ "type": "string" })),
            (
                "title",
                json!({ "type": ["string", "null"], "description": "The title of its first top-level run that has one" }),
            ),
            (
                "project",
                json!({ "type": ["string", "null"], "description": "The project of its first top-level run that has one" }),
            ),
            (
                "active_runs",
                json!({ "type": "integer", "description": "Runs not final" }),
            ),
            ("agents_by_status", status_counts.clone()),
            ("cost_usd", json!({ "type": "number" })),
            ("tokens_input", json!({ "type": "integer" })),
            ("tokens_output", json!({ "type": "integer" })),
            (
                "started_at",
                json!({ "type": "string", "format": "date-time", "description": "The first run's" }),
            ),
            ("last_activity_at", time.clone()),
        ] {
            fields.insert(k.to_owned(), v);
        }
        json!({ "type": "object", "properties": fields })
    };
    let mut count = serde_json::Map::new();
    count.insert(
        "runs".into(),
        json!({ "type": "integer", "description": "How many runs" }),
    );
    let mut array = serde_json::Map::new();
    array.insert("runs".into(), json!({ "type": "array", "items": schema_ref("Run"), "description": "Its runs, newest first" }));
    doc["components"]["schemas"]["Session"] = common(count);
    doc["components"]["schemas"]["SessionDetail"] = common(array);
    let session_id = json!({ "name": "session_id", "in": "path", "required": true,
        "description": "Percent-encoded", "schema": { "type": "string" } });
    let with_errors = |mut v: Vec<(String, Json)>, codes: &[u16]| {
        v.extend(codes.iter().map(|c| error(*c)));
        v
    };
    doc["paths"]["/api/runtime/sessions"] = json!({ "get": operation(
        "Sessions (runs grouped by session_id), newest last_activity_at first",
        with_page(vec![query("active", "true: has a run that is not final; false: has none", json!({ "type": "boolean" }))]),
        None,
        with_errors(vec![ok("200", "Sessions", list_of("Session"))], &[400, 401])) });
    doc["paths"]["/api/runtime/sessions/{session_id}"] = json!({ "get": operation(
        "One session with its runs (404 when no run has this session id)",
        vec![session_id], None,
        with_errors(vec![ok("200", "Session", schema_ref("SessionDetail"))], &[401, 404])) });
}
