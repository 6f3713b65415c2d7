//! `ingest_keys`: what ingest has applied, by a key of its own (an outside session, a span,
//! the digest of a delivery that carries no id), and the run each landed on. A key is
//! claimed in the transaction that applies it, so a redelivery finds it and changes nothing.

use std::collections::HashMap;

use super::{placeholder_rows, ROWS_PER_STATEMENT};
use crate::db::{Database, DbError};
use crate::domain::RunId;

/// The id of the run `key` landed on, if it was recorded.
pub fn run_of<D: Database>(db: &D, key: &str) -> Result<Option<RunId>, DbError> {
    let mut rows = db.execute(
        "SELECT agent_id FROM ingest_keys WHERE key = ?1",
        &[key.into()],
    )?;
    match rows.first() {
        Some(mut row) => Ok(Some(RunId::stored(row.text(0)?))),
        None => Ok(None),
    }
}

/// Key → run id for those of `keys` that were recorded, in one query per 500 keys rather
/// than one per key.
pub fn runs_of<D: Database>(db: &D, keys: &[String]) -> Result<HashMap<String, RunId>, DbError> {
    let mut found = HashMap::new();
    for chunk in keys.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let params: Vec<_> = chunk.iter().map(|k| k.as_str().into()).collect();
        let mut rows = db.execute(
            &format!("SELECT key, agent_id FROM ingest_keys WHERE key IN ({marks})"),
            &params,
        )?;
        for mut row in rows.iter() {
            found.insert(row.text(0)?, RunId::stored(row.text(1)?));
        }
    }
    Ok(found)
}

/// Record `key` for `run_id` (a key known to be new: a run's own key, written with it).
pub fn insert<D: Database>(db: &D, key: &str, run_id: &RunId) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO ingest_keys (key, agent_id) VALUES (?1, ?2)",
        &[key.into(), run_id.into()],
    )?;
    Ok(())
}

/// Record `key` as applied for `run_id`; `false` when it already was (a redelivery).
pub fn claim<D: Database>(db: &D, key: &str, run_id: &RunId) -> Result<bool, DbError> {
    let rows = db.execute(
        "INSERT INTO ingest_keys (key, agent_id) VALUES (?1, ?2) \
         ON CONFLICT (key) DO NOTHING RETURNING key",
        &[key.into(), run_id.into()],
    )?;
    Ok(!rows.is_empty())
}

/// Record each `(key, run id)` not recorded yet, in as few statements as possible (a batch
/// of spans claims all its keys at once rather than one round trip each).
pub fn claim_all<D: Database>(db: &D, claims: &[(String, RunId)]) -> Result<(), DbError> {
    for chunk in claims.chunks(ROWS_PER_STATEMENT) {
        let mut params = Vec::with_capacity(chunk.len() * 2);
        for (key, run_id) in chunk {
            params.push(key.as_str().into());
            params.push(run_id.into());
        }
        db.execute(
            &format!(
                "INSERT INTO ingest_keys (key, agent_id) VALUES {} ON CONFLICT (key) DO NOTHING",
                placeholder_rows(chunk.len(), 2)
            ),
            &params,
        )?;
    }
    Ok(())
}
