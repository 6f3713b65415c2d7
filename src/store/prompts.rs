//! `prompts`: one LLM call of a run. A change to a prompt's cost or tokens rolls up into
//! its run's `cost_usd` and token sums in the same transaction (by the triggers of
//! migration 0002, so rows other programs write roll up too).

use serde::Serialize;

use super::TimeColumns;
use super::{bind, exists, status_change, Update, ROWS_PER_STATEMENT};
use crate::db::{write_transaction, Database, DbError, Row, Value};
use crate::domain::{
    text::truncate, time::now_rfc3339, Id, Page, PromptId, PromptStatus, PromptType, RunId,
};
use crate::error::ApiError;

/// The longest `prompt_text`, `response_text` and `error_message` a prompt keeps, in
/// characters (the API refuses longer ones; ingest cuts texts to as many bytes).
pub const MAX_TEXT: usize = 1_000_000;
/// The longest `prompt_name` and `model_used`, in characters.
pub const MAX_NAME: usize = 256;
/// The longest `source_prompt_id` (an outside tool's id of a user prompt), in bytes.
pub const MAX_SOURCE_PROMPT_ID: usize = 256;
/// What ingest keeps of a failed call's or prompt's error, in bytes: less than the API's
/// [`MAX_TEXT`] (as it always was; see the report of issue 23).
pub const MAX_INGESTED_ERROR: usize = 65_536;

/// The `prompt_name` of a user prompt that an outside tool names (Claude Code's
/// UserPromptSubmit): the prompt a model call with the same `source_prompt_id` is the child
/// of.
pub const USER_PROMPT: &str = "UserPromptSubmit";

/// A prompt as the API returns it.
#[derive(Debug, Serialize)]
pub struct Prompt {
    pub id: PromptId,
    pub agent_id: RunId,
    pub prompt_type: String,
    pub prompt_name: Option<String>,
    pub prompt_text: String,
    pub response_text: Option<String>,
    pub status: PromptStatus,
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
    pub parent_prompt_id: Option<PromptId>,
}

const COLUMNS: &str = "id, agent_id, prompt_type, prompt_name, prompt_text, response_text, \
     status, model_used, tokens_input, tokens_output, cost_usd, latency_ms, created_at, \
     completed_at, error_message, parent_prompt_id";

fn from_row(mut row: Row<'_>) -> Result<Prompt, DbError> {
    Ok(Prompt {
        id: PromptId::stored(row.text(0)?),
        agent_id: RunId::stored(row.text(1)?),
        prompt_type: row.text(2)?,
        prompt_name: row.opt_text(3)?,
        prompt_text: row.text(4)?,
        response_text: row.opt_text(5)?,
        status: row.parsed(6, PromptStatus::parse)?,
        model_used: row.opt_text(7)?,
        tokens_input: row.int(8)?,
        tokens_output: row.int(9)?,
        cost_usd: row.real(10)?,
        latency_ms: row.opt_int(11)?,
        created_at: row.time(12)?,
        completed_at: row.opt_time(13)?,
        error_message: row.opt_text(14)?,
        parent_prompt_id: row.opt_text(15)?.map(PromptId::stored),
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

pub fn get<D: Database>(db: &D, id: &PromptId) -> Result<Option<Prompt>, DbError> {
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
    id: &PromptId,
    changes: PromptChanges,
) -> Result<Option<Prompt>, ApiError> {
    write_transaction(db, |db| {
        let Some(current) = get(db, id)? else {
            return Ok(None);
        };
        let from = current.status;
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
            super::runs::record_cost_change(db, &prompt.agent_id)?;
        }
        Ok(Some(prompt))
    })
}

/// A finished LLM call, as ingest reports it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FinishedCall {
    pub prompt_name: Option<String>,
    pub prompt_text: String,
    pub response_text: Option<String>,
    pub model_used: Option<String>,
    pub tokens_input: i64,
    pub tokens_output: i64,
    pub cost_usd: f64,
    pub latency_ms: Option<i64>,
    pub failed: Option<String>,
    /// When the call started and ended (the event's own times, API format); `None`: now.
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    /// The outside tool's id of the user prompt this call served (Claude Code's
    /// `prompt.id`): the call's `parent_prompt_id` is the user prompt recorded with it, now
    /// or when it arrives (see [`link_calls`]).
    pub source_prompt_id: Option<String>,
}

/// Insert finished calls of runs (`(run id, call)`), a few hundred a statement (the roll-up
/// triggers still run per row, inside SQLite), each tied to its user prompt when that is
/// known. Texts are cut to the column limits; negative counts and costs read as 0.
pub fn insert_finished<D: Database>(
    db: &D,
    calls: &[(RunId, FinishedCall)],
) -> Result<(), DbError> {
    let now = now_rfc3339();
    // The parent is looked up in SQL by the call's source prompt id, for the calls that
    // have one; a call without one (a GenAI span) costs no lookup.
    let linked = format!(
        "(?, ?, 'command', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
         (SELECT u.id FROM prompts u WHERE u.source_prompt_id = ? \
          AND u.prompt_name = '{USER_PROMPT}' AND u.parent_prompt_id IS NULL LIMIT 1))"
    );
    let unlinked = "(?, ?, 'command', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)";
    for chunk in calls.chunks(ROWS_PER_STATEMENT) {
        let mut params = Vec::with_capacity(chunk.len() * 16);
        for (run_id, call) in chunk {
            let status = if call.failed.is_some() {
                "failed"
            } else {
                "completed"
            };
            let ended = call.ended_at.clone().unwrap_or_else(|| now.clone());
            let started = call.started_at.clone().unwrap_or_else(|| ended.clone());
            let source = call
                .source_prompt_id
                .as_deref()
                .map(|p| truncate(p, MAX_SOURCE_PROMPT_ID));
            params.extend([
                Id::new_v4().into(),
                run_id.into(),
                call.prompt_name
                    .as_deref()
                    .map(|n| truncate(n, MAX_NAME))
                    .into(),
                truncate(&call.prompt_text, MAX_TEXT).into(),
                call.response_text
                    .as_deref()
                    .map(|t| truncate(t, MAX_TEXT))
                    .into(),
                status.into(),
                call.model_used
                    .as_deref()
                    .map(|m| truncate(m, MAX_NAME))
                    .into(),
                call.tokens_input.max(0).into(),
                call.tokens_output.max(0).into(),
                Value::Real(if call.cost_usd.is_finite() {
                    call.cost_usd.max(0.0)
                } else {
                    0.0
                }),
                call.latency_ms.map(|l| l.max(0)).into(),
                started.into(),
                ended.into(),
                call.failed
                    .as_deref()
                    .map(|m| truncate(m, MAX_INGESTED_ERROR))
                    .into(),
                source.clone().into(),
            ]);
            if source.is_some() {
                params.push(source.into());
            }
        }
        let rows: Vec<&str> = chunk
            .iter()
            .map(|(_, call)| {
                if call.source_prompt_id.is_some() {
                    linked.as_str()
                } else {
                    unlinked
                }
            })
            .collect();
        db.execute(
            &format!(
                "INSERT INTO prompts (id, agent_id, prompt_type, prompt_name, prompt_text, \
                 response_text, status, model_used, tokens_input, tokens_output, cost_usd, \
                 latency_ms, created_at, completed_at, error_message, source_prompt_id, \
                 parent_prompt_id) VALUES {}",
                rows.join(", ")
            ),
            &params,
        )?;
    }
    Ok(())
}

/// Whether the run has a user prompt with this `source_prompt_id`.
pub fn has_user_prompt<D: Database>(
    db: &D,
    run_id: &RunId,
    source_prompt_id: &str,
) -> Result<bool, DbError> {
    let rows = db.execute(
        "SELECT 1 FROM prompts WHERE agent_id = ?1 AND source_prompt_id = ?2 \
         AND prompt_name = 'UserPromptSubmit' LIMIT 1",
        &[
            run_id.into(),
            truncate(source_prompt_id, MAX_SOURCE_PROMPT_ID).into(),
        ],
    )?;
    Ok(!rows.is_empty())
}

/// Whether the run has an open (pending or streaming) prompt with exactly this text.
pub fn has_open_prompt<D: Database>(db: &D, run_id: &RunId, text: &str) -> Result<bool, DbError> {
    let rows = db.execute(
        "SELECT 1 FROM prompts WHERE agent_id = ?1 AND status IN ('pending', 'streaming') \
         AND prompt_text = ?2 LIMIT 1",
        &[run_id.into(), text.into()],
    )?;
    Ok(!rows.is_empty())
}

/// Insert a `pending` user prompt ([`USER_PROMPT`]) of the run; its id.
pub fn insert_user_prompt<D: Database>(
    db: &D,
    run_id: &RunId,
    text: &str,
    source_prompt_id: Option<&str>,
) -> Result<Id, DbError> {
    let id = Id::new_v4();
    db.execute(
        "INSERT INTO prompts (id, agent_id, prompt_type, prompt_name, prompt_text, status, \
         tokens_input, tokens_output, cost_usd, created_at, source_prompt_id) \
         VALUES (?1, ?2, 'command', 'UserPromptSubmit', ?3, 'pending', 0, 0, 0, ?4, ?5)",
        &[
            id.as_str().into(),
            run_id.into(),
            truncate(text, MAX_TEXT).into(),
            now_rfc3339().into(),
            source_prompt_id
                .map(|s| truncate(s, MAX_SOURCE_PROMPT_ID))
                .into(),
        ],
    )?;
    Ok(id)
}

/// Complete (`status`) every open prompt of the run, with the response and error when
/// given (cut to the column limits) and the latency since each was created. A follow-up
/// not yet delivered stays pending: it is the next turn's, not this one's.
pub fn close_open<D: Database>(
    db: &D,
    run_id: &RunId,
    status: &str,
    response: Option<&str>,
    error: Option<&str>,
) -> Result<(), DbError> {
    db.execute(
        "UPDATE prompts SET status = ?2, completed_at = ?3, \
         response_text = COALESCE(?4, response_text), error_message = COALESCE(?5, error_message), \
         latency_ms = CAST(MAX(0, (julianday(?3) - julianday(created_at)) * 86400000) AS INTEGER) \
         WHERE agent_id = ?1 AND status IN ('pending', 'streaming') \
         AND NOT (prompt_type = 'followup' AND status = 'pending')",
        &[
            run_id.into(),
            status.into(),
            now_rfc3339().into(),
            response.map(|r| truncate(r, MAX_TEXT)).into(),
            error.map(|e| truncate(e, MAX_INGESTED_ERROR)).into(),
        ],
    )?;
    Ok(())
}

/// A user prompt `user_prompt` that an outside tool calls `source_prompt_id` became known:
/// the model calls that arrived before it and named it become its children.
pub fn link_calls<D: Database>(
    db: &D,
    user_prompt: &str,
    source_prompt_id: &str,
) -> Result<(), DbError> {
    db.execute(
        "UPDATE prompts SET parent_prompt_id = ?1 WHERE source_prompt_id = ?2 \
         AND parent_prompt_id IS NULL AND id <> ?1 AND prompt_name IS NOT 'UserPromptSubmit'",
        &[
            user_prompt.into(),
            truncate(source_prompt_id, MAX_SOURCE_PROMPT_ID).into(),
        ],
    )?;
    Ok(())
}

/// A message a person sent to a running agent: a pending `followup` prompt of the run,
/// delivered at the session's next Stop.
pub fn insert_followup<D: Database>(
    db: &D,
    run_id: &RunId,
    text: &str,
) -> Result<Prompt, ApiError> {
    let sql = format!(
        "INSERT INTO prompts (id, agent_id, prompt_type, prompt_name, prompt_text, status, \
         tokens_input, tokens_output, cost_usd, created_at) \
         VALUES (?1, ?2, 'followup', ?3, ?4, 'pending', 0, 0, 0, ?5) RETURNING {COLUMNS}"
    );
    let params = [
        Id::new_v4().into(),
        run_id.into(),
        FOLLOWUP.into(),
        truncate(text, MAX_TEXT).into(),
        now_rfc3339().into(),
    ];
    super::returned(db.execute(&sql, &params)?, from_row)
}

/// The prompt name of a person's follow-up (`POST …/messages`).
pub const FOLLOWUP: &str = "FollowUp";

/// The oldest follow-up of the run not yet delivered: `(id, text)`.
pub fn next_followup<D: Database>(
    db: &D,
    run_id: &RunId,
) -> Result<Option<(PromptId, String)>, DbError> {
    let mut rows = db.execute(
        "SELECT id, prompt_text FROM prompts WHERE agent_id = ?1 AND prompt_type = 'followup' \
         AND status = 'pending' ORDER BY created_at, id LIMIT 1",
        &[run_id.into()],
    )?;
    match rows.first() {
        Some(mut row) => Ok(Some((PromptId::stored(row.text(0)?), row.text(1)?))),
        None => Ok(None),
    }
}

/// A follow-up handed to the agent: `streaming` until the Stop that ends its turn.
pub fn mark_delivered<D: Database>(db: &D, id: &PromptId) -> Result<(), DbError> {
    db.execute(
        "UPDATE prompts SET status = 'streaming' WHERE id = ?1 AND status = 'pending'",
        &[id.into()],
    )?;
    Ok(())
}

/// How many follow-ups the run was handed since its last user prompt: Claude Code ignores
/// a Stop hook's block after 8 consecutive continuations.
pub fn followups_in_a_row<D: Database>(db: &D, run_id: &RunId) -> Result<i64, DbError> {
    let mut rows = db.execute(
        "SELECT count(*) FROM prompts WHERE agent_id = ?1 AND prompt_type = 'followup' \
         AND status IN ('streaming', 'completed') AND created_at >= COALESCE(\
           (SELECT max(created_at) FROM prompts WHERE agent_id = ?1 \
            AND prompt_name = 'UserPromptSubmit'), '')",
        &[run_id.into()],
    )?;
    rows.first().map_or(Ok(0), |row| row.int(0))
}
