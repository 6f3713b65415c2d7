//! `approvals`: tool calls that wait for a person (migration 0006).
//!
//! Every change of an approval also writes a `milestone` log row of its run whose details
//! carry the approval as it now is: the feed delivers it as an `approval_update` event, in
//! the same cursor sequence as the runs' events, and the run's logs keep its history.

use serde::Serialize;
use serde_json::{json, value::RawValue};

use super::unreadable;
use super::TimeColumns;
use crate::db::{Database, DbError, Row, Value};
use crate::domain::text::truncate;
use crate::domain::time::now_rfc3339;
use crate::domain::{ApprovalId, ApprovalStatus, Id, LogLevel, LogType, Page, RunId};

/// The most of a tool's input an approval keeps, in bytes of JSON text (larger inputs keep
/// an excerpt, as tool_call logs do).
pub const MAX_TOOL_INPUT: usize = 65_536;
/// The longest message a decision may carry, in characters.
pub const MAX_MESSAGE: usize = 4096;
/// The most of a tool's name an approval keeps, in bytes.
pub const MAX_TOOL_NAME: usize = 256;

/// An approval as the API returns it (and as an `approval_update` event carries it).
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    pub id: ApprovalId,
    pub run_id: RunId,
    pub session_id: String,
    /// `PermissionRequest` or `PreToolUse`: the hook that waits.
    pub hook_event: String,
    pub tool_name: String,
    pub tool_input: Box<RawValue>,
    /// The `ask_tools` rule that asked, or null for a PermissionRequest.
    pub rule: Option<String>,
    /// A pending approval past its `expires_at` reads as expired.
    pub status: ApprovalStatus,
    pub message: Option<String>,
    pub scope: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    pub decided_at: Option<String>,
}

impl Approval {
    pub fn is_pending(&self) -> bool {
        self.status == ApprovalStatus::Pending
    }
}

const TABLE: &str = "approvals";

/// SQLite's "now" in the API's time format: what a pending approval's `expires_at` is
/// compared with, and what a decision's `decided_at` is set to.
macro_rules! now {
    () => {
        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    };
}
const NOW: &str = now!();

/// The columns, with a stale pending row read as expired: the hook that held it may have
/// been cut off (a host's deadline, a restart) before it could say so.
const COLUMNS: &str = concat!(
    "id, run_id, session_id, hook_event, tool_name, COALESCE(tool_input, 'null'), rule, \
     CASE WHEN status = 'pending' AND expires_at <= ",
    now!(),
    " THEN 'expired' ELSE status END, \
     message, scope, created_at, expires_at, decided_at"
);

fn from_row(mut row: Row<'_>) -> Result<Approval, DbError> {
    Ok(Approval {
        id: ApprovalId::stored(row.text(0)?),
        run_id: RunId::stored(row.text(1)?),
        session_id: row.text(2)?,
        hook_event: row.text(3)?,
        tool_name: row.text(4)?,
        tool_input: row.json(5)?,
        rule: row.opt_text(6)?,
        status: row.parsed(7, ApprovalStatus::parse)?,
        message: row.opt_text(8)?,
        scope: row.opt_text(9)?,
        created_at: row.time(10)?,
        expires_at: row.time(11)?,
        decided_at: row.opt_time(12)?,
    })
}

/// What a list may be narrowed to.
#[derive(Debug, Default, Clone)]
pub struct ApprovalFilter {
    pub status: Option<ApprovalStatus>,
    pub run_id: Option<RunId>,
    pub session_id: Option<String>,
}

/// Newest first.
pub fn list<D: Database>(
    db: &D,
    filter: &ApprovalFilter,
    page: Page,
) -> Result<Vec<Approval>, DbError> {
    let mut params: Vec<Value> = Vec::new();
    let mut clauses = Vec::new();
    match filter.status {
        Some(ApprovalStatus::Pending) => {
            clauses.push(format!("status = 'pending' AND expires_at > {NOW}"))
        }
        Some(ApprovalStatus::Expired) => clauses.push(format!(
            "(status = 'expired' OR (status = 'pending' AND expires_at <= {NOW}))"
        )),
        Some(status) => {
            params.push(status.as_str().into());
            clauses.push(format!("status = ?{}", params.len()));
        }
        None => {}
    }
    if let Some(run) = &filter.run_id {
        params.push(run.as_str().into());
        clauses.push(format!("run_id = ?{}", params.len()));
    }
    if let Some(session) = &filter.session_id {
        params.push(session.as_str().into());
        clauses.push(format!("session_id = ?{}", params.len()));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    params.push(page.limit.into());
    let limit = params.len();
    params.push(page.offset.into());
    let offset = params.len();
    let sql = format!(
        "SELECT {COLUMNS} FROM approvals {filter} \
         ORDER BY created_at DESC, id DESC LIMIT ?{limit} OFFSET ?{offset}"
    );
    let rows = db.execute(&sql, &params)?;
    Ok(unreadable::collect(db, TABLE, 0, rows, from_row))
}

pub fn get<D: Database>(db: &D, id: &ApprovalId) -> Result<Option<Approval>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1");
    let rows = db.execute(&sql, &[id.into()])?;
    Ok(unreadable::collect(db, TABLE, 0, rows, from_row).pop())
}

/// A new pending approval.
pub struct NewApproval<'a> {
    pub run_id: &'a RunId,
    pub session_id: &'a str,
    pub hook_event: &'a str,
    pub tool_name: &'a str,
    pub tool_input: &'a serde_json::Value,
    pub rule: Option<&'a str>,
    pub wait_secs: u64,
}

/// Insert a pending approval (and its event).
pub fn insert<D: Database>(db: &D, new: NewApproval<'_>) -> Result<Approval, DbError> {
    let now = now_rfc3339();
    let input = new.tool_input.to_string();
    let input = if input.len() <= MAX_TOOL_INPUT {
        input
    } else {
        json!({"excerpt": truncate(&input, MAX_TOOL_INPUT), "truncated": true, "bytes": input.len()})
            .to_string()
    };
    let sql = format!(
        "INSERT INTO approvals (id, run_id, session_id, hook_event, tool_name, tool_input, rule, \
                                created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
                 strftime('%Y-%m-%dT%H:%M:%fZ', ?8, '+' || ?9 || ' seconds')) \
         RETURNING {COLUMNS}"
    );
    let rows = db.execute(
        &sql,
        &[
            Id::new_v4().into(),
            new.run_id.into(),
            new.session_id.into(),
            new.hook_event.into(),
            truncate(new.tool_name, MAX_TOOL_NAME).into(),
            input.into(),
            new.rule.into(),
            now.into(),
            (new.wait_secs as i64).into(),
        ],
    )?;
    let approval = returned(rows)?;
    record(db, &approval, LogLevel::Warning)?;
    Ok(approval)
}

/// A person's (or the server's) decision on a pending approval: `None` when it is no longer
/// pending (decided, expired or cancelled meanwhile), so exactly one decision wins.
pub fn decide<D: Database>(
    db: &D,
    id: &ApprovalId,
    status: ApprovalStatus,
    message: Option<&str>,
    scope: Option<&str>,
) -> Result<Option<Approval>, DbError> {
    let sql = format!(
        "UPDATE approvals SET status = ?2, message = COALESCE(?3, message), scope = ?4, \
                decided_at = {NOW} \
         WHERE id = ?1 AND status = 'pending' \
           AND (?2 = 'expired' OR expires_at > {NOW}) \
         RETURNING {COLUMNS}"
    );
    let mut rows = db.execute(
        &sql,
        &[
            id.into(),
            status.as_str().into(),
            message.into(),
            scope.into(),
        ],
    )?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let approval = from_row(row)?;
    record(db, &approval, LogLevel::Info)?;
    Ok(Some(approval))
}

/// Close every pending approval of `run_id` (the run ended, or was stopped): `cancelled`.
pub fn cancel_pending<D: Database>(db: &D, run_id: &RunId, message: &str) -> Result<(), DbError> {
    let sql = format!(
        "UPDATE approvals SET status = CASE WHEN expires_at <= {NOW} \
                THEN 'expired' ELSE 'cancelled' END, message = ?2, \
                decided_at = {NOW} \
         WHERE run_id = ?1 AND status = 'pending' RETURNING {COLUMNS}"
    );
    let mut rows = db.execute(&sql, &[run_id.into(), message.into()])?;
    let closed: Vec<Approval> = rows.iter().filter_map(|row| from_row(row).ok()).collect();
    for approval in &closed {
        record(db, approval, LogLevel::Info)?;
    }
    Ok(())
}

/// Whether the session was allowed `rule` (or, with no rule, `tool`) for the rest of it.
pub fn session_grant<D: Database>(
    db: &D,
    session_id: &str,
    tool: &str,
    rule: Option<&str>,
) -> Result<bool, DbError> {
    let rows = db.execute(
        "SELECT 1 FROM approvals WHERE session_id = ?1 AND status = 'allowed' \
           AND scope = 'session' AND tool_name = ?2 AND rule IS ?3 LIMIT 1",
        &[session_id.into(), tool.into(), rule.into()],
    )?;
    Ok(!rows.is_empty())
}

fn returned(mut rows: crate::db::Rows) -> Result<Approval, DbError> {
    match rows.first() {
        Some(row) => from_row(row),
        None => Err(DbError::new(
            crate::db::DbErrorKind::Other,
            "an approval just written is gone",
        )),
    }
}

/// The approval's event: a milestone of its run carrying it.
fn record<D: Database>(db: &D, approval: &Approval, level: LogLevel) -> Result<(), DbError> {
    let what = match approval.status {
        ApprovalStatus::Pending => "waits for approval",
        ApprovalStatus::Allowed => "allowed",
        ApprovalStatus::Denied => "denied",
        ApprovalStatus::Expired => "approval expired",
        ApprovalStatus::Cancelled => "approval cancelled",
    };
    let message = format!("{} {what}", approval.tool_name);
    let details = json!({ "approval": approval });
    super::logs::insert_agent_rows(
        db,
        &[super::logs::AgentLogRow {
            run_id: &approval.run_id,
            level,
            log_type: LogType::Milestone,
            message,
            details: details.to_string(),
        }],
        &now_rfc3339(),
    )
}
