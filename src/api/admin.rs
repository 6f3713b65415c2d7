//! `POST /api/admin/prune`: retention on demand, for hosts other than `orchestrator up`
//! (which prunes by itself) — a cron calls it. Token-protected like every `/api` route.

use std::time::{Duration, Instant};

use super::Input;
use crate::db::Connector;
use crate::error::ApiError;
use crate::http::{Config, Field, Response};
use crate::store::retention::{self, Pacing};

/// How long one request prunes before it answers `"complete": false` (the caller calls
/// again): well under every host's request deadline, so a big backlog never ends in a 504.
pub const REQUEST_BUDGET: Duration = Duration::from_secs(20);

/// The body is optional: empty, `{}` or `{"dry_run": true|false}`.
pub fn prune<C: Connector>(
    connector: &C,
    config: &Config,
    input: &Input,
) -> Result<Response, ApiError> {
    let dry_run = match &input.body {
        None => false,
        Some(body) => {
            body.only(&["dry_run"])?;
            match body.any_json("dry_run")? {
                Field::Absent | Field::Null => false,
                Field::Value(v) if v == "true" => true,
                Field::Value(v) if v == "false" => false,
                Field::Value(_) => {
                    return Err(ApiError::validation("dry_run", "dry_run must be a boolean"))
                }
            }
        }
    };
    let db = crate::migrations::open(connector)?;
    let pacing = Pacing {
        deadline: Some(Instant::now() + REQUEST_BUDGET),
        ..Pacing::default()
    };
    let now = time::OffsetDateTime::now_utc();
    let pruned = retention::prune(&db, config.retention_days, now, dry_run, &pacing)?;
    Ok(Response::json(200, &pruned))
}

/// `POST /api/admin/prune` in the OpenAPI document (kept beside its handler).
pub(crate) fn describe(doc: &mut serde_json::Value) {
    use serde_json::json;
    let count = |what: &str| json!({ "type": "integer", "description": what });
    doc["components"]["schemas"]["Pruned"] = json!({ "type": "object", "properties": {
        "dry_run": { "type": "boolean" },
        "retention_days": { "type": "integer", "description": "The retention_days variable; 0 keeps everything" },
        "cutoff": { "type": ["string", "null"], "format": "date-time", "description": "Final runs and system logs with no activity since went; null when retention is off" },
        "runs": count("Final runs removed"),
        "prompts": count("Their prompts"),
        "agent_logs": count("Their logs (feed events among them)"),
        "system_logs": count("System logs older than the cutoff"),
        "complete": { "type": "boolean", "description": "false when the request's time budget ran out: call again for the rest" } } });
    let error = |code: u16| json!({ "$ref": format!("#/components/responses/E{code}") });
    doc["paths"]["/api/admin/prune"] = json!({ "post": {
        "summary": "Apply retention now (for a cron on hosts other than `orchestrator up`, which prunes hourly by itself)",
        "requestBody": { "required": false, "content": { "application/json": { "schema": {
            "type": "object", "additionalProperties": false,
            "properties": { "dry_run": { "type": "boolean", "default": false, "description": "Count only; delete nothing" } } } } } },
        "responses": {
            "200": { "description": "What was removed (or would be)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Pruned" } } } },
            "400": error(400), "401": error(401), "405": error(405), "413": error(413), "415": error(415), "422": error(422), "503": error(503) } } });
}
