//! Ingest: agents report without code. Outside payloads — Claude Code's HTTP hooks and
//! (later) OpenTelemetry — mapped onto the same runs, prompts and logs the REST API writes,
//! through the same `state_change` machinery, so the feed shows them live.
//!
//! Each delivery is applied in one write transaction: a rejected request writes nothing,
//! and a retried one finds its keys (migration 0003's `ingest_keys`) and changes nothing.

pub mod hooks;
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
