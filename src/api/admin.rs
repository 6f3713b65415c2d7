//! `POST /api/admin/prune`: retention on demand, for hosts other than `orchestrator up`
//! (which prunes by itself) — a cron calls it. Token-protected like every `/api` route.

use std::time::{Duration, Instant};

use super::Input;
use crate::db::{self, Connector};
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
    let db = db::open(connector)?;
    let pacing = Pacing {
        deadline: Some(Instant::now() + REQUEST_BUDGET),
        ..Pacing::default()
    };
    let now = time::OffsetDateTime::now_utc();
    let pruned = retention::prune(&db, config.retention_days, now, dry_run, &pacing)?;
    Ok(Response::json(200, &pruned))
}
