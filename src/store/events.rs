//! The live feed: the `state_change` rows of `agent_logs`, the server's `cost_update`
//! rows (`agent_update` events) and the milestones that carry an approval
//! (`approval_update` events), read by cursor (their id).

use serde::Serialize;
use serde_json::value::RawValue;

use super::runs;
use crate::db::{read_transaction, Database, DbError};
use crate::domain::RunId;
use crate::error::ApiError;

/// One feed event: the run as it was right after a status change.
#[derive(Debug, Serialize)]
pub struct Event {
    pub cursor: i64,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub data: Box<RawValue>,
}

/// What one read of the feed found: its events, and the cursor to resume from — the id
/// of the last `state_change` row read, which is past the last event when rows at the
/// end were skipped (so a client never reads a skipped row twice).
#[derive(Debug, Default)]
pub struct Feed {
    pub cursor: i64,
    pub events: Vec<Event>,
}

/// A feed row's run as the API wrote it: `details.run`, when it is an object naming the
/// row's own run. Anything else (NULL, a scalar, an array, another shape — a direct
/// writer's row) reads as NULL here and is resolved in Rust. The feed is every
/// `state_change` row, and the `cost_update` rows that carry their run (the server's, see
/// [`runs::record_cost_change`]); a `cost_update` log a client posted with other details
/// is a log, not an event.
const FEED: &str = "SELECT id, agent_id, log_type, \
     CASE WHEN log_type = 'milestone' THEN json_extract(details, '$.approval') \
          WHEN json_type(details, '$.run') = 'object' \
          AND json_extract(details, '$.run.id') = agent_id \
     THEN json_extract(details, '$.run') END \
     FROM agent_logs WHERE (log_type IN ('state_change', 'cost_update') \
          OR (log_type = 'milestone' AND json_type(details, '$.approval') = 'object')) \
     AND id > ?1 \
     AND (log_type = 'state_change' OR (json_valid(details) AND ( \
          (log_type = 'cost_update' AND json_extract(details, '$.run.id') = agent_id) \
          OR (log_type = 'milestone' AND json_type(details, '$.approval') = 'object' \
              AND json_extract(details, '$.approval.run_id') = agent_id)))) \
     ORDER BY id LIMIT ?2";

/// The feed's query, for the test that it reads only the feed's partial index.
#[cfg(test)]
pub(crate) const FEED_SQL: &str = FEED;

/// Events with a cursor greater than `after`, oldest first, at most `limit` rows read.
/// A row whose details are not a run is delivered with the run as it is now, or skipped
/// if that run is gone (or unreadable); either way the cursor moves past it.
pub fn after<D: Database>(db: &D, after: i64, limit: i64) -> Result<Feed, DbError> {
    let mut rows = db.execute(FEED, &[after.into(), limit.into()])?;
    let mut feed = Feed {
        cursor: after,
        events: Vec::with_capacity(rows.rows.len()),
    };
    for mut row in rows.iter() {
        let cursor = row.int(0)?;
        feed.cursor = cursor;
        if row.opt_text(2)?.as_deref() == Some("milestone") {
            // An approval's change: its details carry the approval as it then was.
            if let Some(data) = row.opt_text(3)?.and_then(|a| RawValue::from_string(a).ok()) {
                feed.events.push(Event {
                    cursor,
                    kind: "approval_update",
                    data,
                });
            }
            continue;
        }
        let data = match row.opt_text(3)? {
            Some(run) => RawValue::from_string(run).ok(),
            None => None,
        };
        let data = match data {
            Some(data) => Some(data),
            None => {
                let agent_id = row.opt_text(1)?.unwrap_or_default();
                run_now(db, &agent_id)?
            }
        };
        if let Some(data) = data {
            feed.events.push(Event {
                cursor,
                kind: "agent_update",
                data,
            });
        }
    }
    Ok(feed)
}

/// The run as it is now, for an event whose row does not carry it; `None` when it is gone
/// or its id cannot name a run.
fn run_now<D: Database>(db: &D, agent_id: &str) -> Result<Option<Box<RawValue>>, DbError> {
    match runs::get(db, &RunId::stored(agent_id.to_owned())) {
        Ok(run) => Ok(run.and_then(|run| serde_json::value::to_raw_value(&run).ok())),
        Err(err) if err.kind.is_unavailable() => Err(err),
        // The run's own row cannot be read: that costs this event, not the feed.
        Err(err) => {
            super::unreadable::report(db, "agents", agent_id, &err.message);
            Ok(None)
        }
    }
}

/// The newest cursor: the highest `agent_logs` id ever given out (0 when none). Ids are
/// AUTOINCREMENT, so this never goes back, even when retention deletes the newest events;
/// any row inserted later has a higher id.
pub fn head<D: Database>(db: &D) -> Result<i64, DbError> {
    let mut rows = db.execute(
        "SELECT MAX(\
           COALESCE((SELECT MAX(id) FROM agent_logs \
                     WHERE log_type IN ('state_change', 'cost_update') \
                        OR (log_type = 'milestone' \
                            AND json_type(details, '$.approval') = 'object')), 0), \
           COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'agent_logs'), 0))",
        &[],
    )?;
    rows.first().map_or(Ok(0), |row| row.int(0))
}

/// The non-final runs and the cursor, read in one transaction: following the feed from
/// that cursor loses nothing and repeats nothing.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub cursor: i64,
    pub data: Vec<runs::Run>,
}

pub fn snapshot<D: Database>(db: &D) -> Result<Snapshot, ApiError> {
    read_transaction(db, |db| {
        Ok(Snapshot {
            cursor: head(db)?,
            data: runs::active(db)?,
        })
    })
}
