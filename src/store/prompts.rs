//! `prompts`: one LLM call of a run. A change to a prompt's cost or tokens rolls up into
//! its run's `cost_usd` and token sums in the same transaction (by the triggers of
//! migration 0002, so rows other programs write roll up too).

use serde::Serialize;

use super::{bind, exists, status_change, stored_status, Update};
use crate::db::{write_transaction, Database, DbError, Row};
use crate::domain::{time::now_rfc3339, Id, Page, PromptStatus, PromptType};
use crate::error::ApiError;

/// A prompt as the API returns it.
#[derive(Debug, Serialize)]
pub struct Prompt {
    pub id: String,
    pub agent_id: String,
    pub prompt_type: String,
    pub prompt_name: Option<String>,
    pub prompt_text: String,
    pub response_text: Option<String>,
    pub status: String,
    pub model_used: Option<String>,
    pub tokens_input: i64,
    pub tokens_output: i64,
    pub cost_usd: f64,
    pub latency_ms: Option<i64>,
    pub created_at: String,
    pub completed_at: Option<String>,
    pub error_message: Option<String>,
    /// For a model call, the user prompt it served (`null` for a user prompt, and for a
    /// call whose user prompt is not known).
    pub parent_prompt_id: Option<String>,
}

const COLUMNS: &str = "id, agent_id, prompt_type, prompt_name, prompt_text, response_text, \
     status, model_used, tokens_input, tokens_output, cost_usd, latency_ms, created_at, \
     completed_at, error_message, parent_prompt_id";

fn from_row(mut row: Row<'_>) -> Result<Prompt, DbError> {
    Ok(Prompt {
        id: row.text(0)?,
        agent_id: row.text(1)?,
        prompt_type: row.text(2)?,
        prompt_name: row.opt_text(3)?,
        prompt_text: row.text(4)?,
        response_text: row.opt_text(5)?,
        status: row.text(6)?,
        model_used: row.opt_text(7)?,
        tokens_input: row.int(8)?,
        tokens_output: row.int(9)?,
        cost_usd: row.real(10)?,
        latency_ms: row.opt_int(11)?,
        created_at: row.time(12)?,
        completed_at: row.opt_time(13)?,
        error_message: row.opt_text(14)?,
        parent_prompt_id: row.opt_text(15)?,
    })
}

/// Filters of `GET /api/runtime/prompts`.
#[derive(Debug, Default)]
pub struct PromptFilter {
    pub agent_id: Option<Id>,
    pub status: Option<PromptStatus>,
    /// The model calls that served this user prompt.
    pub parent_prompt_id: Option<Id>,
}

/// A validated new prompt.
#[derive(Debug)]
pub struct NewPrompt {
    pub agent_id: Id,
    pub prompt_type: PromptType,
    pub prompt_text: String,
    pub prompt_name: Option<String>,
    pub model_used: Option<String>,
}

/// A validated PATCH: `None` leaves a column; `Some(None)` clears a nullable one.
#[derive(Debug, Default)]
pub struct PromptChanges {
    pub status: Option<PromptStatus>,
    pub response_text: Option<Option<String>>,
    pub model_used: Option<Option<String>>,
    pub tokens_input: Option<i64>,
    pub tokens_output: Option<i64>,
    pub cost_usd: Option<f64>,
    pub latency_ms: Option<Option<i64>>,
    pub error_message: Option<Option<String>>,
}

pub fn list<D: Database>(
    db: &D,
    filter: &PromptFilter,
    page: Page,
) -> Result<Vec<Prompt>, DbError> {
    let mut params = Vec::new();
    let mut conditions = Vec::new();
    if let Some(agent) = &filter.agent_id {
        conditions.push(format!("agent_id = {}", bind(&mut params, agent)));
    }
    if let Some(status) = filter.status {
        conditions.push(format!("status = {}", bind(&mut params, status.as_str())));
    }
    if let Some(parent) = &filter.parent_prompt_id {
        conditions.push(format!("parent_prompt_id = {}", bind(&mut params, parent)));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let limit = bind(&mut params, page.limit);
    let offset = bind(&mut params, page.offset);
    let sql = format!(
        "SELECT {COLUMNS} FROM prompts {filter} \
         ORDER BY created_at DESC, id DESC LIMIT {limit} OFFSET {offset}"
    );
    let rows = db.execute(&sql, &params)?;
    Ok(super::unreadable::collect(db, "prompts", 0, rows, from_row))
}

pub fn get<D: Database>(db: &D, id: &Id) -> Result<Option<Prompt>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM prompts WHERE id = ?1");
    let rows = db.execute(&sql, &[id.into()])?;
    // An unreadable row is reported and reads as absent (see `store::unreadable`).
    Ok(super::unreadable::collect(db, "prompts", 0, rows, from_row).pop())
}

/// Create a `pending` prompt; an unknown run is a 422 naming `agent_id`.
pub fn create<D: Database>(db: &D, new: NewPrompt) -> Result<Prompt, ApiError> {
    write_transaction(db, |db| {
        if !exists(db, "agents", new.agent_id.as_str())? {
            return Err(ApiError::validation(
                "agent_id",
                format!("agent_id {} does not exist", new.agent_id),
            ));
        }
        let sql = format!(
            "INSERT INTO prompts (id, agent_id, prompt_type, prompt_name, prompt_text, status, \
             model_used, tokens_input, tokens_output, cost_usd, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, 0, 0, 0, ?7) RETURNING {COLUMNS}"
        );
        let params = [
            Id::new_v4().into(),
            (&new.agent_id).into(),
            new.prompt_type.as_str().into(),
            new.prompt_name.as_deref().into(),
            new.prompt_text.as_str().into(),
            new.model_used.as_deref().into(),
            now_rfc3339().into(),
        ];
        super::returned(db.execute(&sql, &params)?, from_row)
    })
}

/// Apply a PATCH atomically with the cost roll-up. `None` for an unknown id; 409 for an
/// illegal transition. The same status again is a no-op.
pub fn update<D: Database>(
    db: &D,
    id: &Id,
    changes: PromptChanges,
) -> Result<Option<Prompt>, ApiError> {
    write_transaction(db, |db| {
        let Some(current) = get(db, id)? else {
            return Ok(None);
        };
        let from = stored_status(&current.status, PromptStatus::parse)?;
        let moving_to = status_change(
            &format!("prompt {id}"),
            from,
            changes.status,
            PromptStatus::can_move_to,
        )?;
        let mut update = Update::of(id);
        if let Some(next) = moving_to {
            update.set("status", next.as_str());
            if next.is_final() {
                update.set("completed_at", now_rfc3339());
            }
        }
        update.set_if("response_text", changes.response_text.clone());
        update.set_if("model_used", changes.model_used.clone());
        update.set_if("tokens_input", changes.tokens_input);
        update.set_if("tokens_output", changes.tokens_output);
        update.set_if("cost_usd", changes.cost_usd);
        update.set_if("latency_ms", changes.latency_ms);
        update.set_if("error_message", changes.error_message.clone());
        if update.is_empty() {
            return Ok(Some(current));
        }
        // The run's cost_usd, token sums and last_activity_at follow in this statement's
        // transaction: migration 0002's triggers roll them up for every writer.
        let prompt = super::returned(update.execute(db, "prompts", COLUMNS)?, from_row)?;
        let cost_changed = changes.cost_usd.is_some_and(|c| c != current.cost_usd)
            || changes
                .tokens_input
                .is_some_and(|t| t != current.tokens_input)
            || changes
                .tokens_output
                .is_some_and(|t| t != current.tokens_output);
        if cost_changed {
            if let Some(run) = Id::parse(&prompt.agent_id) {
                super::runs::record_cost_change(db, &run)?;
            }
        }
        Ok(Some(prompt))
    })
}
