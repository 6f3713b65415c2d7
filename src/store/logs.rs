//! `agent_logs` and `system_logs`, read as one merged list.

use serde::Serialize;
use serde_json::value::RawValue;

use super::TimeColumns;
use super::{bind, placeholder_rows, unreadable, ROWS_PER_STATEMENT};
use crate::db::{Database, DbError, DbErrorKind, Row, Value};
use crate::domain::{
    text::truncate, time::now_rfc3339, Id, LogLevel, LogSource, LogType, Page, RunId,
};
use crate::error::ApiError;

/// The longest `message` a log line keeps, in characters (the API refuses a longer one,
/// ingest cuts it to as many bytes).
pub const MAX_MESSAGE: usize = 65_536;
/// The longest `component` of a system log line, in characters.
pub const MAX_COMPONENT: usize = 128;

/// A log line of either table. Agent lines carry `agent_id` and `log_type`, system lines
/// `component`; ids are unique within their source.
#[derive(Debug, Serialize)]
pub struct Log {
    pub id: i64,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    pub log_level: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_type: Option<String>,
    pub message: String,
    pub details: Box<RawValue>,
    pub created_at: String,
}

fn from_row(mut row: Row<'_>) -> Result<Log, DbError> {
    Ok(Log {
        source: row.text(0)?,
        id: row.int(1)?,
        agent_id: row.opt_text(2)?,
        component: row.opt_text(3)?,
        log_level: row.text(4)?,
        log_type: row.opt_text(5)?,
        message: row.text(6)?,
        details: row.opt_json(7)?,
        created_at: row.time(8)?,
    })
}

/// Filters of `GET /api/runtime/logs`, already checked for consistency: `agent_id` and
/// `log_type` imply the agent source.
#[derive(Debug, Default)]
pub struct LogFilter {
    pub source: Option<LogSource>,
    pub agent_id: Option<Id>,
    pub level: Option<LogLevel>,
    pub log_type: Option<LogType>,
}

/// A validated new log line. `details` is JSON text.
#[derive(Debug, Clone)]
pub enum NewLog {
    Agent {
        agent_id: Id,
        log_type: LogType,
        level: LogLevel,
        message: String,
        details: Option<String>,
    },
    System {
        component: String,
        level: LogLevel,
        message: String,
        details: Option<String>,
    },
}

/// Newest first across both tables (`created_at`, then `source`, then `id`, descending).
/// Each table is cut to `offset + limit` rows by its own index before the merge, so the
/// cost does not grow with the tables.
pub fn list<D: Database>(db: &D, filter: &LogFilter, page: Page) -> Result<Vec<Log>, DbError> {
    let mut params = Vec::new();
    let window = bind(&mut params, page.limit + page.offset);
    let mut branches = Vec::new();
    let agent_only = filter.agent_id.is_some() || filter.log_type.is_some();
    if filter.source != Some(LogSource::System) {
        let mut conditions = vec!["1 = 1".to_owned()];
        if let Some(agent) = &filter.agent_id {
            conditions.push(format!("agent_id = {}", bind(&mut params, agent)));
        }
        if let Some(level) = filter.level {
            conditions.push(format!("log_level = {}", bind(&mut params, level.as_str())));
        }
        if let Some(log_type) = filter.log_type {
            conditions.push(format!(
                "log_type = {}",
                bind(&mut params, log_type.as_str())
            ));
        }
        branches.push(format!(
            "SELECT * FROM (SELECT 'agent' AS source, id, agent_id, NULL AS component, \
             log_level, log_type, message, details, created_at FROM agent_logs \
             WHERE {} ORDER BY created_at DESC, id DESC LIMIT {window})",
            conditions.join(" AND ")
        ));
    }
    if filter.source != Some(LogSource::Agent) && !agent_only {
        let condition = match filter.level {
            Some(level) => format!("log_level = {}", bind(&mut params, level.as_str())),
            None => "1 = 1".to_owned(),
        };
        branches.push(format!(
            "SELECT * FROM (SELECT 'system' AS source, id, NULL AS agent_id, component, \
             log_level, NULL AS log_type, message, details, created_at FROM system_logs \
             WHERE {condition} ORDER BY created_at DESC, id DESC LIMIT {window})"
        ));
    }
    let limit = bind(&mut params, page.limit);
    let offset = bind(&mut params, page.offset);
    let sql = format!(
        "SELECT source, id, agent_id, component, log_level, log_type, message, details, \
         created_at FROM ({}) ORDER BY created_at DESC, source DESC, id DESC \
         LIMIT {limit} OFFSET {offset}",
        branches.join(" UNION ALL ")
    );
    let rows = db.execute(&sql, &params)?;
    let locate = |row: &Row<'_>| {
        let table = match unreadable::id_of(row, 0).as_str() {
            "agent" => "agent_logs",
            _ => "system_logs",
        };
        (table.to_owned(), unreadable::id_of(row, 1))
    };
    Ok(unreadable::collect_located(db, rows, locate, from_row))
}

/// Insert a log line; an agent line for an unknown run is a 422 naming `agent_id`.
pub fn insert<D: Database>(db: &D, new: NewLog) -> Result<Log, ApiError> {
    let now = now_rfc3339();
    let (sql, params): (&str, Vec<Value>) = match new {
        NewLog::Agent {
            agent_id,
            log_type,
            level,
            message,
            details,
        } => (
            "INSERT INTO agent_logs (agent_id, log_level, log_type, message, details, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING 'agent', id, agent_id, NULL, log_level, \
             log_type, message, details, created_at",
            vec![
                agent_id.into(),
                level.as_str().into(),
                log_type.as_str().into(),
                message.into(),
                details.into(),
                now.into(),
            ],
        ),
        NewLog::System {
            component,
            level,
            message,
            details,
        } => (
            "INSERT INTO system_logs (component, log_level, message, details, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING 'system', id, NULL, component, log_level, \
             NULL, message, details, created_at",
            vec![
                component.into(),
                level.as_str().into(),
                message.into(),
                details.into(),
                now.into(),
            ],
        ),
    };
    let rows = db.execute(sql, &params).map_err(|e| match e.kind {
        // The only foreign key of agent_logs is its run.
        DbErrorKind::ForeignKey => {
            ApiError::validation("agent_id", "agent_id does not exist".to_owned())
        }
        _ => e.into(),
    })?;
    super::returned(rows, from_row)
}

/// One `agent_logs` row written as it is (ingest's batches, the feed's rows). `details` is
/// JSON text; `message` is cut to [`MAX_MESSAGE`] bytes.
pub struct AgentLogRow<'a> {
    pub run_id: &'a RunId,
    pub level: LogLevel,
    pub log_type: LogType,
    pub message: String,
    pub details: String,
}

/// Write agent log rows created at `created_at`, a few hundred a statement.
pub fn insert_agent_rows<D: Database>(
    db: &D,
    rows: &[AgentLogRow<'_>],
    created_at: &str,
) -> Result<(), DbError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut params = Vec::with_capacity(chunk.len() * 6);
        for row in chunk {
            params.extend([
                row.run_id.into(),
                row.level.as_str().into(),
                row.log_type.as_str().into(),
                truncate(&row.message, MAX_MESSAGE).into(),
                row.details.as_str().into(),
                created_at.into(),
            ]);
        }
        db.execute(
            &format!(
                "INSERT INTO agent_logs (agent_id, log_level, log_type, message, details, \
                 created_at) VALUES {}",
                placeholder_rows(chunk.len(), 6)
            ),
            &params,
        )?;
    }
    Ok(())
}

/// One row of the live feed (a run's `state_change` or `cost_update`, written by
/// [`super::runs`] in the transaction of the change): an INFO line whose `details` (JSON
/// text) carry the run.
pub(crate) fn insert_feed_row<D: Database>(
    db: &D,
    run_id: &RunId,
    log_type: LogType,
    message: &str,
    details: &str,
    created_at: &str,
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO agent_logs (agent_id, log_level, log_type, message, details, created_at) \
         VALUES (?1, 'INFO', ?2, ?3, ?4, ?5)",
        &[
            run_id.into(),
            log_type.as_str().into(),
            message.into(),
            details.into(),
            created_at.into(),
        ],
    )?;
    Ok(())
}

/// A second report of a tool call whose `tool_call` log exists: the log of the run that
/// `key` (the call's ingest key) landed on, with this `tool_use_id`, gets `details` merged
/// into its details (RFC 7396), unless its details hold `marker` (a JSON path: this report
/// was applied before). A `failed` report also makes it an error with `message` (cut to
/// [`MAX_MESSAGE`] bytes).
pub fn merge_tool_call<D: Database>(
    db: &D,
    key: &str,
    tool_use_id: &str,
    marker: &str,
    details: &str,
    failed: bool,
    message: &str,
) -> Result<(), DbError> {
    db.execute(
        &format!(
            "UPDATE agent_logs SET details = json_patch(COALESCE(details, '{{}}'), ?3), \
             log_level = CASE WHEN ?4 THEN 'ERROR' ELSE log_level END, \
             message = CASE WHEN ?4 THEN ?5 ELSE message END \
             WHERE agent_id = (SELECT agent_id FROM ingest_keys WHERE key = ?1) \
             AND log_type = 'tool_call' AND json_extract(details, '$.tool_use_id') = ?2 \
             AND json_extract(details, '{marker}') IS NULL"
        ),
        &[
            key.into(),
            tool_use_id.into(),
            details.into(),
            i64::from(failed).into(),
            truncate(message, MAX_MESSAGE).into(),
        ],
    )?;
    Ok(())
}
