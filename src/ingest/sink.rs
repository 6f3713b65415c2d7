//! Where ingested events land: definitions created on first use, runs found by the key of
//! the outside session they stand for, status moves with their `state_change` row, prompts
//! and logs. Every function runs inside the caller's write transaction, so one delivery is
//! applied whole or not at all, and a retried one finds its keys already there.
//!
//! Status moves write the same `state_change` row as `PATCH /api/runtime/agents/{id}`
//! ([`crate::store::runs::record_state_change`]), so the feed shows ingested runs live;
//! prompt costs roll up into the run by the triggers of migration 0002, as for the API.

use crate::db::{Database, DbError};
use crate::domain::text::truncate;
use crate::domain::AgentName;
use crate::domain::{
    time::now_rfc3339, AgentType, DefinitionId, LogLevel, LogType, RunId, RunStatus,
};
use crate::error::ApiError;
use crate::store::definitions::{self, NewDefinition};
use crate::store::ingest_keys;
use crate::store::logs::{self as log_store, AgentLogRow};
use crate::store::prompts::{self, FinishedCall};
use crate::store::runs::{self, NewRun, Run};

/// The id of the definition called `name`, created with `agent_type` on first use (an
/// existing definition keeps its own type).
pub fn definition<D: Database>(
    db: &D,
    name: &str,
    agent_type: AgentType,
) -> Result<DefinitionId, ApiError> {
    if let Some(id) = definitions::id_by_name(db, name)? {
        return Ok(DefinitionId::stored(id));
    }
    let name = AgentName::parse(name.to_owned()).map_err(ApiError::bad_request)?;
    let created = definitions::insert(
        db,
        NewDefinition {
            name,
            description: Some("created by ingest on first use".into()),
            agent_type,
            capabilities: "[]".into(),
            default_model: None,
            policy: None,
            command: None,
            working_dir: None,
            timeout_secs: None,
        },
    )?;
    Ok(created.id)
}

/// The run a key names, if one was recorded.
pub fn run_for_key<D: Database>(db: &D, key: &str) -> Result<Option<Run>, ApiError> {
    let Some(run_id) = ingest_keys::run_of(db, key)? else {
        return Ok(None);
    };
    Ok(runs::get(db, &run_id)?)
}

/// What a new run is made of.
pub struct RunSpec<'a> {
    pub key: &'a str,
    pub definition_id: &'a DefinitionId,
    pub session_id: &'a str,
    pub parent_agent_id: Option<&'a RunId>,
    pub context: serde_json::Value,
    pub title: Option<String>,
    pub project: Option<&'a str>,
}

/// The run `spec.key` names, created in `initializing` (with its first `state_change` row)
/// when there is none yet.
pub fn ensure_run<D: Database>(db: &D, spec: RunSpec<'_>) -> Result<Run, ApiError> {
    if let Some(run) = run_for_key(db, spec.key)? {
        return Ok(run);
    }
    let run = runs::insert(
        db,
        NewRun {
            orchestrator_agent_id: spec.definition_id.clone(),
            session_id: truncate(spec.session_id, runs::MAX_SESSION_ID),
            parent_agent_id: spec.parent_agent_id.cloned(),
            context: spec.context.to_string(),
            config: "{}".into(),
            title: spec.title.as_deref().and_then(title),
            project: spec.project.map(|p| cut_chars(p, runs::MAX_PROJECT)),
        },
    )?;
    ingest_keys::insert(db, spec.key, &run.id)?;
    Ok(run)
}

/// Fill what a run lacked of its title and project (a run created by telemetry learns its
/// folder from the first hook; a session's first prompt names it). Nothing else changes;
/// the next feed event carries them.
pub fn describe<D: Database>(
    db: &D,
    run: Run,
    new_title: Option<&str>,
    project: Option<&str>,
) -> Result<Run, ApiError> {
    let new_title = new_title.filter(|_| run.title.is_none()).and_then(title);
    let project = project
        .filter(|_| run.project.is_none())
        .map(|p| cut_chars(p, runs::MAX_PROJECT));
    if new_title.is_none() && project.is_none() {
        return Ok(run);
    }
    runs::fill_title_project(db, &run.id, new_title, project)?;
    runs::get(db, &run.id)?.ok_or_else(|| ApiError::internal("a run just updated is gone"))
}

/// The most of a prompt a title keeps, in characters (then `…`).
pub const TITLE_CHARS: usize = 80;

/// A title from free text: whitespace runs collapsed to one space, cut to
/// [`TITLE_CHARS`] characters with `…` when it was longer; `None` for blank text.
pub fn title(text: &str) -> Option<String> {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return None;
    }
    if flat.chars().count() <= TITLE_CHARS {
        return Some(flat);
    }
    let cut: String = flat.chars().take(TITLE_CHARS).collect();
    Some(format!("{}…", cut.trim_end()))
}

/// `text` cut to at most `max` characters.
fn cut_chars(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Move a run to `to` as a PATCH would: a final run and the same status change nothing
/// (and write no row); entering a final status sets `completed_at`.
pub fn move_run<D: Database>(
    db: &D,
    run: Run,
    to: RunStatus,
    error_message: Option<&str>,
) -> Result<Run, ApiError> {
    let from = run.status;
    if from.is_final() || from == to || !from.can_move_to(to) {
        return Ok(run);
    }
    let error_message = error_message.map(|m| truncate(m, runs::MAX_ERROR_MESSAGE));
    runs::move_status(db, run, from, to, error_message)
}

/// One agent log row to write (never `state_change`: those come from [`move_run`]).
pub struct LogRow<'a> {
    pub run_id: &'a RunId,
    pub level: LogLevel,
    pub log_type: LogType,
    pub message: String,
    pub details: serde_json::Value,
}

/// Write one agent log row.
pub fn log<D: Database>(
    db: &D,
    run_id: &RunId,
    level: LogLevel,
    log_type: LogType,
    message: &str,
    details: &serde_json::Value,
) -> Result<(), DbError> {
    logs(
        db,
        &[LogRow {
            run_id,
            level,
            log_type,
            message: message.to_owned(),
            details: details.clone(),
        }],
    )
}

/// Write agent log rows, a few hundred a statement.
pub fn logs<D: Database>(db: &D, logs: &[LogRow<'_>]) -> Result<(), DbError> {
    let rows: Vec<AgentLogRow<'_>> = logs
        .iter()
        .map(|log| AgentLogRow {
            run_id: log.run_id,
            level: log.level,
            log_type: log.log_type,
            message: log.message.clone(),
            details: log.details.to_string(),
        })
        .collect();
    log_store::insert_agent_rows(db, &rows, &now_rfc3339())
}

/// Which report of a tool call this is: Claude Code sends two for each call, a
/// PostToolUse hook and a `claude_code.tool_result` telemetry record, with the same
/// `tool_use_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolCallPart {
    Hook,
    Telemetry,
}

impl ToolCallPart {
    /// The key of `details` only this part writes: present once this part was applied.
    fn marker(self) -> &'static str {
        match self {
            ToolCallPart::Hook => "$.hook_event_name",
            ToolCallPart::Telemetry => "$.telemetry",
        }
    }
}

/// One report of a tool call, as its `tool_call` log would have it.
pub struct ToolCall<'a> {
    pub session: &'a str,
    pub tool_use_id: &'a str,
    pub part: ToolCallPart,
    pub level: LogLevel,
    pub message: String,
    /// Must hold `tool_use_id` at the top, and the part's marker key.
    pub details: serde_json::Value,
}

/// One `tool_call` log per tool call, whichever report comes first: the first writes the
/// log (on `run_id`), the other completes it — its details merged in (RFC 7396), an error
/// level and message kept — and never writes a second log. A report applied before
/// changes nothing.
pub fn tool_call<D: Database>(db: &D, run_id: &RunId, call: ToolCall<'_>) -> Result<(), DbError> {
    let key = format!("tool:{}:{}", call.session, call.tool_use_id);
    if ingest_keys::claim(db, &key, run_id)? {
        return log(
            db,
            run_id,
            call.level,
            LogType::ToolCall,
            &call.message,
            &call.details,
        );
    }
    log_store::merge_tool_call(
        db,
        &key,
        call.tool_use_id,
        call.part.marker(),
        &call.details.to_string(),
        call.level == LogLevel::Error,
        &call.message,
    )
}

/// Insert finished prompts of runs, a few hundred a statement (the roll-up triggers still
/// run per row, inside SQLite), each tied to its user prompt when that is known. Returns
/// the runs whose cost or tokens this changed, each once: the caller gives each one feed
/// event ([`cost_changed`]) unless a status change later in its transaction carries the
/// new cost anyway.
pub fn finished_prompts<D: Database>(
    db: &D,
    calls: &[(RunId, FinishedCall)],
) -> Result<Vec<RunId>, ApiError> {
    prompts::insert_finished(db, calls)?;
    let mut changed: Vec<RunId> = calls
        .iter()
        .filter(|(_, c)| c.cost_usd > 0.0 || c.tokens_input > 0 || c.tokens_output > 0)
        .map(|(run, _)| run.clone())
        .collect();
    changed.sort_unstable();
    changed.dedup();
    Ok(changed)
}

/// One `cost_update` feed event for each run, with the run as it now is; and the budgets
/// over it checked (a run whose tree reached its `max_cost_usd` is cancelled, so its
/// session's next hook stops it: late telemetry counts when it arrives).
pub fn cost_changed<D: Database>(db: &D, runs_changed: &[RunId]) -> Result<(), ApiError> {
    for run in runs_changed {
        runs::record_cost_change(db, run)?;
        crate::steering::check_budgets(db, run)?;
    }
    Ok(())
}

/// A stable digest of a JSON value (keys in sorted order: serde_json's map is a BTreeMap),
/// for deduplicating deliveries that carry no id of their own.
pub fn digest(value: &serde_json::Value) -> String {
    digest_bytes(value.to_string().as_bytes())
}

/// A stable digest of bytes (hex SHA-256).
pub fn digest_bytes(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(bytes);
    hash.iter().map(|b| format!("{b:02x}")).collect()
}
