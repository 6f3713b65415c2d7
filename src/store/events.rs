//! The live feed: the `state_change` rows of `agent_logs`, read by cursor (their id).

use serde::Serialize;
use serde_json::value::RawValue;

use super::runs;
use crate::db::{read_transaction, Database, DbError};
use crate::error::ApiError;

/// One feed event: the run as it was right after a status change.
#[derive(Debug, Serialize)]
pub struct Event {
    pub cursor: i64,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub data: Box<RawValue>,
}

/// Events with a cursor greater than `after`, oldest first, at most `limit`.
pub fn after<D: Database>(db: &D, after: i64, limit: i64) -> Result<Vec<Event>, DbError> {
    db.execute(
        "SELECT id, json_extract(details, '$.run') FROM agent_logs \
         WHERE log_type = 'state_change' AND id > ?1 ORDER BY id LIMIT ?2",
        &[after.into(), limit.into()],
    )?
    .iter()
    .map(|mut row| {
        Ok(Event {
            cursor: row.int(0)?,
            kind: "agent_update",
            data: row.json(1)?,
        })
    })
    .collect()
}

/// The newest cursor (0 when there are no events).
pub fn head<D: Database>(db: &D) -> Result<i64, DbError> {
    let mut rows = db.execute(
        "SELECT COALESCE(MAX(id), 0) FROM agent_logs WHERE log_type = 'state_change'",
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
