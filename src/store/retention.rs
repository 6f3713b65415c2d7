//! Retention: final runs whose last activity is older than the cutoff go, with their
//! prompts and logs, and so do system logs older than it. Active runs and definitions
//! never go. One code path for `orchestrator prune`, `orchestrator up` (at start, then
//! hourly) and `POST /api/admin/prune`.
//!
//! Why batches: deleting a month of logs in one transaction would hold SQLite's write lock
//! for as long as that takes, and every writer (the API, the ADW scripts) would wait. So
//! the candidates are chosen by a read (no lock), and deleted in write transactions of at
//! most [`Pacing::batch_rows`] rows each, every one re-checking that its runs are still
//! old and final (a run may get a log between batches), with a pause between them so that
//! writers waiting in SQLite's busy handler get the lock. `VACUUM` is never run here: it
//! rewrites the whole file under an exclusive lock. Feed cursors are `agent_logs` ids
//! (AUTOINCREMENT), so they never go back; a client resuming from a pruned cursor simply
//! gets what remains.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;

use crate::db::{read_transaction, write_transaction, Database, DbError, Value};
use crate::domain::time::format_rfc3339;
use crate::error::{ApiError, ErrorCode};

/// Days kept when `retention_days` is not set.
pub const DEFAULT_DAYS: u32 = 30;

/// The largest accepted `retention_days` (a century): the cutoff must stay a valid time.
pub const MAX_DAYS: u32 = 36_500;

/// Read a `retention_days` setting: unset or blank is [`DEFAULT_DAYS`], `0` keeps
/// everything. A malformed value is an operator error naming the variable.
pub fn parse_days(raw: Option<&str>) -> Result<u32, String> {
    match raw.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(DEFAULT_DAYS),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|d| *d <= MAX_DAYS)
            .ok_or_else(|| {
                format!("retention_days must be a number of days from 0 to {MAX_DAYS}, got {v:?}")
            }),
    }
}

/// How a prune spreads its deletes over time.
#[derive(Debug, Clone)]
pub struct Pacing {
    /// Most rows (runs, prompts and logs together) deleted in one write transaction.
    pub batch_rows: i64,
    /// Pause between write transactions, longer than SQLite's busy-handler steps early
    /// on, so a writer that found the lock taken gets it before the next batch.
    pub pause: Duration,
    /// Stop starting new batches after this instant (an HTTP request's budget); what is
    /// left is pruned by the next call.
    pub deadline: Option<Instant>,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            batch_rows: 500,
            pause: Duration::from_millis(20),
            deadline: None,
        }
    }
}

/// What a prune removed (or, with `dry_run`, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub dry_run: bool,
    pub retention_days: u32,
    /// Rows older than this went (`null` when retention is off).
    pub cutoff: Option<String>,
    pub runs: i64,
    pub prompts: i64,
    pub agent_logs: i64,
    pub system_logs: i64,
    /// `false` when the deadline stopped it early: call again for the rest.
    pub complete: bool,
}

/// The current time, for callers that have no `time` dependency of their own.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// The cutoff for `days` of retention at `now`; `None` for 0 (keep everything).
pub fn cutoff(now: OffsetDateTime, days: u32) -> Option<String> {
    if days == 0 {
        return None;
    }
    let t = now.checked_sub(time::Duration::days(i64::from(days)))?;
    Some(format_rfc3339(t))
}

/// "At or after the cutoff (`?1`), or not a time SQLite can read": such a time keeps its
/// row. Times are compared with `julianday`, which reads the API's RFC 3339 and a direct
/// writer's `datetime('now')` alike (as text they do not sort together).
macro_rules! recent {
    ($column:literal) => {
        concat!("COALESCE(julianday(", $column, ") >= julianday(?1), 1)")
    };
}

/// A final run (`agents a`) whose every time — its own start and completion, its prompts'
/// and its logs' — is older than the cutoff `?1`. (Migration 0002's `last_activity_at`
/// column could replace the subqueries once every database has it; this form works on
/// the columns of 0001 and on whatever a direct writer left in that column.)
const PRUNABLE: &str = concat!(
    "a.status IN ('completed', 'failed', 'cancelled') AND NOT ",
    recent!("a.started_at"),
    " AND NOT (a.completed_at IS NOT NULL AND ",
    recent!("a.completed_at"),
    ") AND NOT EXISTS (SELECT 1 FROM prompts p WHERE p.agent_id = a.id AND (",
    recent!("p.created_at"),
    " OR (p.completed_at IS NOT NULL AND ",
    recent!("p.completed_at"),
    "))) AND NOT EXISTS (SELECT 1 FROM agent_logs l WHERE l.agent_id = a.id AND ",
    recent!("l.created_at"),
    ")"
);

/// Old system logs. The text comparison lets the `created_at` index find the range; the
/// `julianday` one keeps a `datetime('now')`-form time from the cutoff's own day that is
/// in fact newer (a space sorts before `T`).
const OLD_SYSTEM_LOGS: &str =
    "FROM system_logs WHERE created_at < ?1 AND julianday(created_at) < julianday(?1)";

/// Apply retention of `days` at `now`. With `dry_run`, count and delete nothing.
pub fn prune<D: Database>(
    db: &D,
    days: u32,
    now: OffsetDateTime,
    dry_run: bool,
    pacing: &Pacing,
) -> Result<Pruned, ApiError> {
    let mut pruned = Pruned {
        dry_run,
        retention_days: days,
        cutoff: cutoff(now, days),
        complete: true,
        ..Pruned::default()
    };
    let Some(cutoff) = pruned.cutoff.clone() else {
        return Ok(pruned);
    };
    let (candidates, counts) = read_transaction(db, |db| -> Result<_, DbError> {
        let sql = format!(
            "SELECT a.id, (SELECT count(*) FROM prompts WHERE agent_id = a.id), \
             (SELECT count(*) FROM agent_logs WHERE agent_id = a.id) \
             FROM agents a WHERE {PRUNABLE} ORDER BY a.id"
        );
        let mut rows = db.execute(&sql, &[cutoff.as_str().into()])?;
        let mut counts = Pruned::default();
        let mut ids = VecDeque::with_capacity(rows.rows.len());
        for row in rows.iter() {
            counts.runs += 1;
            counts.prompts += row.int(1)?;
            counts.agent_logs += row.int(2)?;
            // The id as stored (whatever its storage class), to match it exactly.
            ids.push_back(row.value(0)?.clone());
        }
        let mut system = db.execute(
            &format!("SELECT count(*) {OLD_SYSTEM_LOGS}"),
            &[cutoff.as_str().into()],
        )?;
        counts.system_logs = system.first().map_or(Ok(0), |r| r.int(0))?;
        Ok((ids, counts))
    })?;
    if dry_run {
        return Ok(Pruned {
            runs: counts.runs,
            prompts: counts.prompts,
            agent_logs: counts.agent_logs,
            system_logs: counts.system_logs,
            ..pruned
        });
    }
    let mut queue = candidates;
    let mut first = true;
    while !queue.is_empty() {
        if !pace(pacing, &mut first) {
            pruned.complete = false;
            return Ok(pruned);
        }
        // The queue moves on only once the batch has committed: a rerun of the
        // transaction (see `write_transaction`) starts from the same runs.
        let (batch, done) = retry_busy(pacing, || {
            write_transaction(db, |db| delete_runs(db, &cutoff, &queue, pacing.batch_rows))
        })?;
        queue.drain(..done);
        pruned.runs += batch.runs;
        pruned.prompts += batch.prompts;
        pruned.agent_logs += batch.agent_logs;
    }
    loop {
        if !pace(pacing, &mut first) {
            pruned.complete = false;
            return Ok(pruned);
        }
        let sql = format!(
            "DELETE FROM system_logs WHERE id IN (SELECT id {OLD_SYSTEM_LOGS} LIMIT ?2) \
             RETURNING 1"
        );
        let params = [cutoff.as_str().into(), pacing.batch_rows.into()];
        let deleted = retry_busy(pacing, || {
            write_transaction(db, |db| Ok(db.execute(&sql, &params)?.rows.len() as i64))
        })?;
        pruned.system_logs += deleted;
        if deleted < pacing.batch_rows {
            return Ok(pruned);
        }
    }
}

/// Wait between batches (not before the first); `false` once the deadline has passed.
fn pace(pacing: &Pacing, first: &mut bool) -> bool {
    if !std::mem::take(first) {
        std::thread::sleep(pacing.pause);
    }
    pacing.deadline.is_none_or(|d| Instant::now() < d)
}

/// Run one batch, trying again (after a pause) while the database stays busy: a prune is
/// in no hurry, and every batch is a whole transaction, so a retry repeats nothing.
fn retry_busy<T>(
    pacing: &Pacing,
    mut batch: impl FnMut() -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    const ATTEMPTS: u32 = 5;
    let mut attempt = 1;
    loop {
        match batch() {
            // 503-class: the lock stayed taken past the busy timeout.
            Err(err) if err.code == ErrorCode::Unavailable && attempt < ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(pacing.pause * attempt);
            }
            other => return other,
        }
    }
}

/// One write transaction's worth: for each queued run still prunable, its logs, then its
/// prompts, then the run, until `budget` rows are gone. A run with more children than
/// that is finished by later batches (it is checked again each time). Also returns how
/// many runs at the front of `queue` are done with (deleted, or no longer prunable).
fn delete_runs<D: Database>(
    db: &D,
    cutoff: &str,
    queue: &VecDeque<Value>,
    mut budget: i64,
) -> Result<(Pruned, usize), ApiError> {
    let mut done = Pruned::default();
    let mut taken = 0;
    let still_prunable = format!("SELECT 1 FROM agents a WHERE a.id = ?2 AND {PRUNABLE}");
    while budget > 0 {
        let Some(id) = queue.get(taken).cloned() else {
            break;
        };
        if db
            .execute(&still_prunable, &[cutoff.into(), id.clone()])?
            .is_empty()
        {
            // Active again, newer activity, or already gone: it stays.
            taken += 1;
            continue;
        }
        let logs = delete_children(db, "agent_logs", &id, budget)?;
        done.agent_logs += logs;
        budget -= logs;
        if budget <= 0 {
            break;
        }
        let prompts = delete_children(db, "prompts", &id, budget)?;
        done.prompts += prompts;
        budget -= prompts;
        if budget <= 0 {
            break;
        }
        done.runs += db
            .execute("DELETE FROM agents WHERE id = ?1 RETURNING 1", &[id])?
            .rows
            .len() as i64;
        budget -= 1;
        taken += 1;
    }
    Ok((done, taken))
}

/// Delete at most `limit` rows of `table` (a fixed, trusted name) that belong to a run.
fn delete_children<D: Database>(
    db: &D,
    table: &str,
    run_id: &Value,
    limit: i64,
) -> Result<i64, ApiError> {
    let sql = format!(
        "DELETE FROM {table} WHERE rowid IN \
         (SELECT rowid FROM {table} WHERE agent_id = ?1 LIMIT ?2) RETURNING 1"
    );
    Ok(db
        .execute(&sql, &[run_id.clone(), limit.into()])?
        .rows
        .len() as i64)
}
