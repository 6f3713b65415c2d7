//! `/api/approvals`: tool calls that wait for a person, and their decisions; and
//! `POST /api/runtime/agents/{id}/messages`, a person's follow-up to a running agent.

use super::{created, get_by_id, list_page, path_id, Input, Open};
use crate::db::{write_transaction, Database};
use crate::domain::{ApprovalId, ApprovalStatus, RunId};
use crate::error::ApiError;
use crate::http::Response;
use crate::store::approvals::{self as store, ApprovalFilter};
use crate::store::{prompts, runs};

/// The longest follow-up, in characters.
pub const MAX_FOLLOW_UP: usize = 100_000;

pub fn list<D: Database>(open: impl Open<D>, input: &Input) -> Result<Response, ApiError> {
    let q = &input.query;
    let filter = ApprovalFilter {
        status: q.enum_filter("status", ApprovalStatus::parse, ApprovalStatus::list)?,
        run_id: q.id_filter("run_id")?.map(RunId::from),
        session_id: q.text_filter("session_id")?,
    };
    list_page(open, q, |db, page| store::list(db, &filter, page))
}

pub fn get<D: Database>(open: impl Open<D>, raw_id: &str) -> Result<Response, ApiError> {
    get_by_id(open, raw_id, "approval", |db, id| {
        store::get(db, &ApprovalId::from(id))
    })
}

/// `POST /api/approvals/{id}/decision {"behavior", "message"?, "scope"?}`: 200 with the
/// approval as decided; 409 when it is no longer pending (someone decided first, it expired
/// or its run ended): exactly one decision wins.
pub fn decide<D: Database>(
    open: impl Open<D>,
    raw_id: &str,
    input: &Input,
) -> Result<Response, ApiError> {
    let body = input.body()?;
    body.only(&["behavior", "message", "scope"])?;
    let status = body
        .one_of(
            "behavior",
            |b| match b {
                "allow" => Some(ApprovalStatus::Allowed),
                "deny" => Some(ApprovalStatus::Denied),
                _ => None,
            },
            || "allow, deny".into(),
        )?
        .required("behavior")?;
    let message = body.string("message", store::MAX_MESSAGE)?.optional();
    let scope = body
        .one_of(
            "scope",
            |s| ["once", "session"].into_iter().find(|t| *t == s),
            || "once, session".into(),
        )?
        .optional()
        .unwrap_or("once");
    let id = ApprovalId::from(path_id(raw_id, "approval")?);
    let db = open()?;
    let decided = write_transaction(&db, |db| {
        let Some(current) = store::get(db, &id)? else {
            return Err(super::not_found("approval", raw_id));
        };
        if !current.is_pending() {
            return Err(ApiError::conflict(format!(
                "approval {raw_id} is no longer pending: it is {}",
                current.status
            ))
            .with_details(serde_json::json!({ "status": current.status })));
        }
        match store::decide(db, &id, status, message.as_deref(), Some(scope))? {
            Some(approval) => Ok(approval),
            None => Err(ApiError::conflict(format!(
                "approval {raw_id} is no longer pending"
            ))),
        }
    })?;
    Ok(Response::json(200, &decided))
}

/// `POST /api/runtime/agents/{id}/messages {"text"}`: 201, a pending `followup` prompt,
/// delivered at the session's next Stop; 409 when the run is final.
pub fn follow_up<D: Database>(
    open: impl Open<D>,
    raw_id: &str,
    input: &Input,
) -> Result<Response, ApiError> {
    let body = input.body()?;
    body.only(&["text"])?;
    let text = body
        .non_empty_string("text", MAX_FOLLOW_UP)?
        .required("text")?;
    let id = RunId::from(path_id(raw_id, "runtime agent")?);
    let db = open()?;
    let prompt = write_transaction(&db, |db| {
        let Some(run) = runs::get(db, &id)? else {
            return Err(super::not_found("runtime agent", raw_id));
        };
        if run.status.is_final() {
            return Err(ApiError::conflict(format!(
                "runtime agent {raw_id} is {}: a final run takes no follow-up",
                run.status.as_str()
            )));
        }
        prompts::insert_followup(db, &id, &text)
    })?;
    Ok(created(
        format!("/api/runtime/prompts/{}", prompt.id),
        &prompt,
    ))
}

/// The steering routes and fields in `/openapi.json`.
pub(crate) fn describe(doc: &mut serde_json::Value) {
    use serde_json::json;
    let error = |code: u16| json!({ "$ref": format!("#/components/responses/E{code}") });
    let schema = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    let body = |name: &str| json!({ "required": true, "content": { "application/json": { "schema": schema(name) } } });
    let answer = |description: &str, name: &str| {
        json!({ "description": description,
        "content": { "application/json": { "schema": schema(name) } } })
    };
    let id = json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } });
    let filter = |name: &str, description: &str| {
        json!({ "name": name, "in": "query", "required": false,
        "description": description, "schema": { "type": "string" } })
    };
    let statuses: Vec<&str> = ApprovalStatus::ALL.iter().map(|s| s.as_str()).collect();
    doc["paths"]["/api/approvals"] = json!({ "get": {
        "summary": "Approvals, newest first: tool calls a connected agent waits on (PermissionRequest, or a PreToolUse matching an ask_tools rule) and their decisions",
        "parameters": [
            { "name": "status", "in": "query", "required": false, "schema": { "type": "string", "enum": statuses } },
            filter("run_id", "Only this run's (a UUID)"),
            filter("session_id", "Only this session's"),
            { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } },
            { "name": "offset", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0, "default": 0 } } ],
        "responses": { "200": { "description": "Approvals", "content": { "application/json": { "schema": { "type": "array", "items": schema("Approval") } } } },
            "400": error(400), "401": error(401) } } });
    doc["paths"]["/api/approvals/{id}"] = json!({ "get": {
        "summary": "One approval", "parameters": [id],
        "responses": { "200": answer("Approval", "Approval"), "401": error(401), "404": error(404) } } });
    doc["paths"]["/api/approvals/{id}/decision"] = json!({ "post": {
        "summary": "Decide a pending approval: the held hook answers at once in its event's shape (PermissionRequest: hookSpecificOutput.decision.behavior; PreToolUse: permissionDecision). scope session lets the same rule (or, for a PermissionRequest, the same tool) through for the rest of the session. Exactly one decision wins.",
        "parameters": [id], "requestBody": body("Decision"),
        "responses": { "200": answer("The approval as decided", "Approval"), "400": error(400), "401": error(401),
            "404": error(404), "409": error(409), "413": error(413), "415": error(415), "422": error(422) } } });
    doc["paths"]["/api/runtime/agents/{id}/messages"] = json!({ "post": {
        "summary": "A follow-up to a running agent: a pending followup prompt, delivered at the session's next Stop as {decision: block, reason: text} (the agent continues with it), completed at the Stop after that. Claude Code ignores a block after 8 consecutive continuations: a follow-up then waits for the session's next turn. A definition's hold_on_stop_secs makes a Stop wait that long for one.",
        "parameters": [id],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object",
            "additionalProperties": false, "required": ["text"], "properties": { "text": { "type": "string", "minLength": 1, "maxLength": MAX_FOLLOW_UP } } } } } },
        "responses": { "201": answer("The followup prompt (pending); Location header set", "Prompt"), "400": error(400),
            "401": error(401), "404": error(404), "409": error(409), "413": error(413), "415": error(415), "422": error(422) } } });
    let schemas = &mut doc["components"]["schemas"];
    schemas["Approval"] = json!({ "type": "object", "properties": {
        "id": { "type": "string", "format": "uuid" }, "run_id": { "type": "string", "format": "uuid" },
        "session_id": { "type": "string" },
        "hook_event": { "type": "string", "enum": ["PermissionRequest", "PreToolUse"] },
        "tool_name": { "type": "string" }, "tool_input": { "description": "The tool's input (an excerpt {excerpt, truncated, bytes} past 64 KiB)" },
        "rule": { "type": ["string", "null"], "description": "The ask_tools rule that asked; null for a PermissionRequest" },
        "status": { "type": "string", "enum": statuses, "description": "A pending approval past expires_at (APPROVAL_WAIT_SECS after created_at) reads as expired; a run that ends cancels its pending approvals" },
        "message": { "type": ["string", "null"] }, "scope": { "type": ["string", "null"], "enum": ["once", "session", null] },
        "created_at": { "type": "string", "format": "date-time" }, "expires_at": { "type": "string", "format": "date-time" },
        "decided_at": { "type": ["string", "null"], "format": "date-time" } } });
    schemas["Decision"] = json!({ "type": "object", "additionalProperties": false, "required": ["behavior"], "properties": {
        "behavior": { "type": "string", "enum": ["allow", "deny"] },
        "message": { "type": ["string", "null"], "maxLength": store::MAX_MESSAGE, "description": "What the agent is told" },
        "scope": { "type": "string", "enum": ["once", "session"], "default": "once" } } });
    schemas["Policy"] = json!({ "type": ["object", "null"], "additionalProperties": false,
        "description": "What the agents of a definition may do. Tool rules use Claude Code's permission-rule syntax: Tool, Tool(specifier), a :* prefix, * globs, gitignore-style paths for Read/Edit, WebFetch(domain:…), Tool(param:value); a rule that does not parse is a 422 naming it (policy.deny_tools[i]). A run's config.policy overrides its definition's field by field.",
        "properties": {
            "max_cost_usd": { "type": ["number", "null"], "minimum": 0, "description": "Once the run's tree (the session's run and its subagents, and a dispatched run's sessions) has spent this, the run is cancelled with the reason and the session's next hook stops it" },
            "deny_tools": { "type": ["array", "null"], "items": { "type": "string" }, "description": "PreToolUse and PermissionRequest answered deny, the rule as reason; a tool_call log records it" },
            "ask_tools": { "type": ["array", "null"], "items": { "type": "string" }, "description": "PreToolUse held for a person's approval" },
            "hold_on_stop_secs": { "type": ["integer", "null"], "minimum": 0, "maximum": crate::domain::policy::MAX_HOLD_ON_STOP_SECS, "description": "A Stop waits this long for a follow-up before the agent stops" } } });
    for name in ["Agent", "AgentInput", "AgentUpdate"] {
        let props = &mut schemas[name]["properties"];
        props["policy"] = schema("Policy");
        props["command"] = json!({ "type": ["array", "null"], "minItems": 1, "items": { "type": "string" },
            "description": "The argv a runner starts for a dispatched run (no shell); placeholders {input}, {run_id}, {session_id}; any other {name} is a 422 naming the element" });
        props["working_dir"] = json!({ "type": ["string", "null"], "maxLength": crate::store::definitions::MAX_WORKING_DIR });
        props["timeout_secs"] = json!({ "type": ["integer", "null"], "minimum": 1, "maximum": crate::store::definitions::MAX_TIMEOUT_SECS });
    }
    schemas["RunPatch"]["properties"]["config"] = json!({ "type": ["object", "null"],
        "description": "The run's whole config; its policy (a Policy) overrides the definition's, validated the same way" });
    schemas["ApprovalEvent"] = json!({ "type": "object",
        "description": "approval_update: an approval as it is after a change (requested, decided, expired, cancelled), in the same cursor sequence as agent_update",
        "properties": { "cursor": { "type": "integer" }, "type": { "const": "approval_update" }, "data": schema("Approval") } });
    let event = schemas["Event"].clone();
    schemas["EventBatch"]["properties"]["events"]["items"] =
        json!({ "oneOf": [event, schema("ApprovalEvent")] });
}
