//! Sessions: the `session_id` that groups runs (one ADW, one Claude Code session). A
//! session has no table of its own; it is an aggregate over `agents`, read in one query
//! (the runs' cost, token sums and `last_activity_at` are kept on their rows).

use serde::Serialize;

use super::TimeColumns;
use super::{bind, runs};
use crate::db::{read_transaction, Database, DbError, Row, Value};
use crate::domain::{Page, RunStatus};
use crate::error::ApiError;

/// One session in a response: `runs` is the count of its runs in a list, and the runs
/// themselves, newest first, in `GET /api/runtime/sessions/{id}` ([`SessionDetail`]).
#[derive(Debug, Serialize)]
pub struct Session<R = i64> {
    pub session_id: String,
    /// The title and project of the session's first top-level run that has one (the
    /// Claude Code session's run), `null` when none has.
    pub title: Option<String>,
    pub project: Option<String>,
    pub runs: R,
    pub active_runs: i64,
    pub agents_by_status: serde_json::Map<String, serde_json::Value>,
    pub cost_usd: f64,
    pub tokens_input: i64,
    pub tokens_output: i64,
    /// The first run's `started_at`.
    pub started_at: String,
    pub last_activity_at: String,
}

/// A session with its runs in place of their count.
pub type SessionDetail = Session<Vec<runs::Run>>;

impl<R> Session<R> {
    fn with_runs<T>(self, runs: T) -> Session<T> {
        Session {
            session_id: self.session_id,
            title: self.title,
            project: self.project,
            runs,
            active_runs: self.active_runs,
            agents_by_status: self.agents_by_status,
            cost_usd: self.cost_usd,
            tokens_input: self.tokens_input,
            tokens_output: self.tokens_output,
            started_at: self.started_at,
            last_activity_at: self.last_activity_at,
        }
    }
}

/// Filters of `GET /api/runtime/sessions`: `active` keeps sessions with (`true`) or
/// without (`false`) a run that is not final.
#[derive(Debug, Default)]
pub struct SessionFilter {
    pub active: Option<bool>,
}

/// `SELECT … FROM agents {WHERE} GROUP BY session_id`: the aggregate columns that
/// [`from_row`] reads. Status counts come from [`RunStatus::ALL`], so a new status cannot be
/// forgotten here.
fn aggregate_sql(condition: &str, having: &str, tail: &str) -> String {
    let by_status: Vec<String> = RunStatus::ALL
        .iter()
        .map(|s| format!("SUM(status = '{}')", s.as_str()))
        .collect();
    // started_at of rows written by other programs may be in SQLite's own datetime form;
    // normalising first keeps MIN a time order and the answer RFC 3339.
    format!(
        "SELECT session_id, count(*), {}, {}, \
         COALESCE(SUM(cost_usd), 0.0), COALESCE(SUM(tokens_input), 0), \
         COALESCE(SUM(tokens_output), 0), \
         COALESCE(MIN(strftime('%Y-%m-%dT%H:%M:%fZ', started_at)), MIN(started_at)), \
         MAX(COALESCE(last_activity_at, started_at)) AS newest, {}, {} \
         FROM agents {condition} GROUP BY session_id {having} {tail}",
        active_runs(),
        by_status.join(", "),
        first_of_session("title"),
        first_of_session("project"),
    )
}

/// The first non-null `column` among the group's runs, top-level runs first, oldest first.
fn first_of_session(column: &str) -> String {
    format!(
        "(SELECT f.{column} FROM agents f WHERE f.session_id = agents.session_id \
         AND f.{column} IS NOT NULL \
         ORDER BY f.parent_agent_id IS NOT NULL, f.started_at, f.id LIMIT 1)"
    )
}

/// The count of a group's runs that are not final.
fn active_runs() -> String {
    let not_final: Vec<String> = RunStatus::ALL
        .iter()
        .filter(|s| !s.is_final())
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("SUM(status IN ({}))", not_final.join(", "))
}

fn from_row(mut row: Row<'_>) -> Result<Session, DbError> {
    let statuses = RunStatus::ALL.len();
    let mut agents_by_status = serde_json::Map::new();
    for (i, status) in RunStatus::ALL.iter().enumerate() {
        agents_by_status.insert(status.as_str().to_owned(), row.int(3 + i)?.into());
    }
    let next = 3 + statuses;
    Ok(Session {
        session_id: row.text(0)?,
        runs: row.int(1)?,
        active_runs: row.int(2)?,
        agents_by_status,
        cost_usd: row.real(next)?,
        tokens_input: row.int(next + 1)?,
        tokens_output: row.int(next + 2)?,
        // Times a direct writer left in another form are returned in the API's.
        started_at: row.time(next + 3)?,
        last_activity_at: row.time(next + 4)?,
        title: row.opt_text(next + 5)?,
        project: row.opt_text(next + 6)?,
    })
}

/// Sessions, newest `last_activity_at` first (then session id, descending, for a stable
/// page order).
pub fn list<D: Database>(
    db: &D,
    filter: &SessionFilter,
    page: Page,
) -> Result<Vec<Session>, DbError> {
    let mut params: Vec<Value> = Vec::new();
    let having = match filter.active {
        None => String::new(),
        Some(true) => format!("HAVING {} > 0", active_runs()),
        Some(false) => format!("HAVING {} = 0", active_runs()),
    };
    let limit = bind(&mut params, page.limit);
    let offset = bind(&mut params, page.offset);
    let sql = aggregate_sql(
        "",
        &having,
        &format!("ORDER BY newest DESC, session_id DESC LIMIT {limit} OFFSET {offset}"),
    );
    db.execute(&sql, &params)?.iter().map(from_row).collect()
}

/// One session with its runs, read in one snapshot so the counts match the runs; `None`
/// when no run has this session id.
pub fn get<D: Database>(db: &D, session_id: &str) -> Result<Option<SessionDetail>, ApiError> {
    read_transaction(db, |db| {
        let sql = aggregate_sql("WHERE session_id = ?1", "", "");
        let mut rows = db.execute(&sql, &[session_id.into()])?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let session = from_row(row)?;
        Ok(Some(session.with_runs(runs::of_session(db, session_id)?)))
    })
}
