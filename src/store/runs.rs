//! `agents`: runtime agents ("runs"), and the `state_change` log row each status change
//! writes in the same transaction (the live feed is made of those rows).

use serde::Serialize;
use serde_json::value::RawValue;

use super::{bind, exists, status_change, stored_status, Update};
use crate::db::{write_transaction, Database, DbError, Row};
use crate::domain::{time::now_rfc3339, Id, Page, RunStatus};
use crate::error::ApiError;

/// A runtime agent as the API returns it (and as the feed carries it).
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub id: String,
    pub orchestrator_agent_id: String,
    pub session_id: String,
    pub parent_agent_id: Option<String>,
    pub status: String,
    pub context: Box<RawValue>,
    pub config: Box<RawValue>,
    pub started_at: String,
    pub completed_at: Option<String>,
    pub cost_usd: f64,
    pub error_message: Option<String>,
}

pub(crate) const COLUMNS: &str = "id, orchestrator_agent_id, session_id, parent_agent_id, status, \
     context, config, started_at, completed_at, cost_usd, error_message";

pub(crate) fn from_row(mut row: Row<'_>) -> Result<Run, DbError> {
    Ok(Run {
        id: row.text(0)?,
        orchestrator_agent_id: row.text(1)?,
        session_id: row.text(2)?,
        parent_agent_id: row.opt_text(3)?,
        status: row.text(4)?,
        context: row.json(5)?,
        config: row.json(6)?,
        started_at: row.text(7)?,
        completed_at: row.opt_text(8)?,
        cost_usd: row.real(9)?,
        error_message: row.opt_text(10)?,
    })
}

/// Filters of `GET /api/runtime/agents`.
#[derive(Debug, Default)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub session_id: Option<String>,
    pub orchestrator_agent_id: Option<Id>,
}

/// A validated new run. `context` and `config` are JSON objects' text.
#[derive(Debug)]
pub struct NewRun {
    pub orchestrator_agent_id: Id,
    pub session_id: String,
    pub parent_agent_id: Option<Id>,
    pub context: String,
    pub config: String,
}

/// A validated PATCH: `None` leaves a column; `Some(None)` clears `error_message`.
#[derive(Debug, Default)]
pub struct RunChanges {
    pub status: Option<RunStatus>,
    pub error_message: Option<Option<String>>,
    pub context: Option<String>,
}

pub fn list<D: Database>(db: &D, filter: &RunFilter, page: Page) -> Result<Vec<Run>, DbError> {
    let mut params = Vec::new();
    let mut conditions = Vec::new();
    if let Some(status) = filter.status {
        conditions.push(format!("status = {}", bind(&mut params, status.as_str())));
    }
    if let Some(session) = &filter.session_id {
        conditions.push(format!(
            "session_id = {}",
            bind(&mut params, session.as_str())
        ));
    }
    if let Some(def) = &filter.orchestrator_agent_id {
        conditions.push(format!(
            "orchestrator_agent_id = {}",
            bind(&mut params, def)
        ));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let limit = bind(&mut params, page.limit);
    let offset = bind(&mut params, page.offset);
    let sql = format!(
        "SELECT {COLUMNS} FROM agents {filter} \
         ORDER BY started_at DESC, id DESC LIMIT {limit} OFFSET {offset}"
    );
    db.execute(&sql, &params)?.iter().map(from_row).collect()
}

pub fn get<D: Database>(db: &D, id: &Id) -> Result<Option<Run>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM agents WHERE id = ?1");
    db.execute(&sql, &[id.into()])?
        .first()
        .map(from_row)
        .transpose()
}

/// The runs that are not final, newest first (the feed's snapshot).
pub fn active<D: Database>(db: &D) -> Result<Vec<Run>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM agents \
         WHERE status IN ('initializing', 'planning', 'executing', 'reviewing') \
         ORDER BY started_at DESC, id DESC"
    );
    db.execute(&sql, &[])?.iter().map(from_row).collect()
}

/// Create a run in `initializing`, with its first `state_change` row, atomically.
/// A definition or parent that does not exist is a 422 naming the field.
pub fn create<D: Database>(db: &D, new: NewRun) -> Result<Run, ApiError> {
    write_transaction(db, |db| {
        if !exists(
            db,
            "orchestrator_agents",
            new.orchestrator_agent_id.as_str(),
        )? {
            return Err(ApiError::validation(
                "orchestrator_agent_id",
                format!(
                    "orchestrator_agent_id {} does not exist",
                    new.orchestrator_agent_id
                ),
            ));
        }
        if let Some(parent) = &new.parent_agent_id {
            if !exists(db, "agents", parent.as_str())? {
                return Err(ApiError::validation(
                    "parent_agent_id",
                    format!("parent_agent_id {parent} does not exist"),
                ));
            }
        }
        let sql = format!(
            "INSERT INTO agents (id, orchestrator_agent_id, session_id, parent_agent_id, status, \
             context, config, started_at, cost_usd) \
             VALUES (?1, ?2, ?3, ?4, 'initializing', ?5, ?6, ?7, 0) RETURNING {COLUMNS}"
        );
        let params = [
            Id::new_v4().into(),
            new.orchestrator_agent_id.into(),
            new.session_id.into(),
            new.parent_agent_id.into(),
            new.context.into(),
            new.config.into(),
            now_rfc3339().into(),
        ];
        let run = super::returned(db.execute(&sql, &params)?, from_row)?;
        record_state_change(db, None, &run)?;
        Ok(run)
    })
}

/// Apply a PATCH atomically with its `state_change` row. `None` for an unknown id; 409 for
/// leaving a final status. The same status again changes nothing and logs nothing.
pub fn update<D: Database>(db: &D, id: &Id, changes: RunChanges) -> Result<Option<Run>, ApiError> {
    write_transaction(db, |db| {
        let Some(current) = get(db, id)? else {
            return Ok(None);
        };
        let from = stored_status(&current.status, RunStatus::parse)?;
        let moving_to = status_change(
            &format!("run {id}"),
            from,
            changes.status,
            RunStatus::can_move_to,
        )?;
        let mut update = Update::of(id);
        if let Some(next) = moving_to {
            update.set("status", next.as_str());
            if next.is_final() {
                update.set("completed_at", now_rfc3339());
            }
        }
        update.set_if("error_message", changes.error_message);
        update.set_if("context", changes.context);
        if update.is_empty() {
            return Ok(Some(current));
        }
        let run = super::returned(update.execute(db, "agents", COLUMNS)?, from_row)?;
        if moving_to.is_some() {
            record_state_change(db, Some(from), &run)?;
        }
        Ok(Some(run))
    })
}

/// Delete a run (cascading to its prompts and logs, and its events with them).
pub fn delete<D: Database>(db: &D, id: &Id) -> Result<bool, DbError> {
    let rows = db.execute(
        "DELETE FROM agents WHERE id = ?1 RETURNING id",
        &[id.into()],
    )?;
    Ok(!rows.is_empty())
}

/// Set a run's `cost_usd` to the sum of its prompts' costs (called in the transaction that
/// changed a prompt's cost).
pub fn roll_up_cost<D: Database>(db: &D, run_id: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE agents SET cost_usd = \
         (SELECT COALESCE(SUM(cost_usd), 0) FROM prompts WHERE agent_id = ?1) WHERE id = ?1",
        &[run_id.into()],
    )?;
    Ok(())
}

#[derive(Serialize)]
struct StateChange<'a> {
    from: Option<&'a str>,
    to: &'a str,
    run: &'a Run,
}

/// Write the `state_change` row of a status change: `{"from", "to", "run"}`, `run` being
/// the runtime agent right after the change. Its id is the event's cursor.
fn record_state_change<D: Database>(
    db: &D,
    from: Option<RunStatus>,
    run: &Run,
) -> Result<(), ApiError> {
    let details = serde_json::to_string(&StateChange {
        from: from.map(RunStatus::as_str),
        to: &run.status,
        run,
    })
    .map_err(|e| ApiError::internal(format!("cannot encode state change: {e}")))?;
    let message = match from {
        None => format!("created in {}", run.status),
        Some(from) => format!("{from} → {}", run.status),
    };
    db.execute(
        "INSERT INTO agent_logs (agent_id, log_level, log_type, message, details, created_at) \
         VALUES (?1, 'INFO', 'state_change', ?2, ?3, ?4)",
        &[
            run.id.as_str().into(),
            message.into(),
            details.into(),
            now_rfc3339().into(),
        ],
    )?;
    Ok(())
}
