//! Where ingested events land: definitions created on first use, runs found by the key of
//! the outside session they stand for, status moves with their `state_change` row, prompts
//! and logs. Every function runs inside the caller's write transaction, so one delivery is
//! applied whole or not at all, and a retried one finds its keys already there.
//!
//! Status moves write the same `state_change` row as `PATCH /api/runtime/agents/{id}`
//! ([`crate::store::runs::record_state_change`]), so the feed shows ingested runs live;
//! prompt costs roll up into the run by the triggers of migration 0002, as for the API.

use crate::db::{Database, DbError, Value};
use crate::domain::AgentName;
use crate::domain::{time::now_rfc3339, AgentType, Id, LogLevel, LogType, RunStatus};
use crate::error::ApiError;
use crate::store::definitions::{self, NewDefinition};
use crate::store::runs::{self, NewRun, Run};

/// Text limits of what we copy from outside payloads (the API's own limits).
pub const MAX_SESSION_ID: usize = 256;
pub const MAX_MESSAGE: usize = 65_536;
pub const MAX_PROMPT_TEXT: usize = 1_000_000;
pub const MAX_MODEL: usize = 256;

/// The id of the definition called `name`, created with `agent_type` on first use (an
/// existing definition keeps its own type).
pub fn definition<D: Database>(
    db: &D,
    name: &str,
    agent_type: AgentType,
) -> Result<String, ApiError> {
    let mut found = db.execute(
        "SELECT id FROM orchestrator_agents WHERE name = ?1",
        &[name.into()],
    )?;
    if let Some(mut row) = found.first() {
        return Ok(row.text(0)?);
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
        },
    )?;
    Ok(created.id)
}

/// The run a key names, if one was recorded.
pub fn run_for_key<D: Database>(db: &D, key: &str) -> Result<Option<Run>, ApiError> {
    let mut rows = db.execute(
        "SELECT agent_id FROM ingest_keys WHERE key = ?1",
        &[key.into()],
    )?;
    let Some(mut row) = rows.first() else {
        return Ok(None);
    };
    match Id::parse(&row.text(0)?) {
        Some(id) => Ok(runs::get(db, &id)?),
        None => Ok(None),
    }
}

/// What a new run is made of.
pub struct RunSpec<'a> {
    pub key: &'a str,
    pub definition_id: &'a str,
    pub session_id: &'a str,
    pub parent_agent_id: Option<&'a str>,
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
    let id_of = |raw: &str, what: &str| {
        Id::parse(raw).ok_or_else(|| ApiError::internal(format!("stored {what} id {raw:?}")))
    };
    let run = runs::insert(
        db,
        NewRun {
            orchestrator_agent_id: id_of(spec.definition_id, "definition")?,
            session_id: truncate(spec.session_id, MAX_SESSION_ID),
            parent_agent_id: spec.parent_agent_id.map(|p| id_of(p, "run")).transpose()?,
            context: spec.context.to_string(),
            config: "{}".into(),
            title: spec.title.as_deref().and_then(title),
            project: spec.project.map(|p| cut_chars(p, runs::MAX_PROJECT)),
        },
    )?;
    db.execute(
        "INSERT INTO ingest_keys (key, agent_id) VALUES (?1, ?2)",
        &[spec.key.into(), run.id.as_str().into()],
    )?;
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
    db.execute(
        "UPDATE agents SET title = COALESCE(title, ?2), project = COALESCE(project, ?3) \
         WHERE id = ?1",
        &[run.id.as_str().into(), new_title.into(), project.into()],
    )?;
    let id = Id::parse(&run.id).ok_or_else(|| ApiError::internal("stored run id"))?;
    runs::get(db, &id)?.ok_or_else(|| ApiError::internal("a run just updated is gone"))
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
    let Some(from) = RunStatus::parse(&run.status) else {
        return Ok(run);
    };
    if from.is_final() || from == to || !from.can_move_to(to) {
        return Ok(run);
    }
    let now = now_rfc3339();
    let completed_at = to.is_final().then(|| now.clone());
    db.execute(
        "UPDATE agents SET status = ?2, completed_at = COALESCE(?3, completed_at), \
         error_message = COALESCE(?4, error_message), last_activity_at = ?5 WHERE id = ?1",
        &[
            run.id.as_str().into(),
            to.as_str().into(),
            completed_at.into(),
            error_message.map(|m| truncate(m, MAX_MESSAGE)).into(),
            now.as_str().into(),
        ],
    )?;
    let id = Id::parse(&run.id).ok_or_else(|| ApiError::internal("stored run id"))?;
    let moved =
        runs::get(db, &id)?.ok_or_else(|| ApiError::internal("a run just updated is gone"))?;
    runs::record_state_change(db, Some(from), &moved, &now)?;
    Ok(moved)
}

/// Record `key` as applied for `run_id`; `false` when it already was (a redelivery).
pub fn claim<D: Database>(db: &D, key: &str, run_id: &str) -> Result<bool, DbError> {
    let rows = db.execute(
        "INSERT INTO ingest_keys (key, agent_id) VALUES (?1, ?2) \
         ON CONFLICT (key) DO NOTHING RETURNING key",
        &[key.into(), run_id.into()],
    )?;
    Ok(!rows.is_empty())
}

/// Record each `(key, run id)` not recorded yet, in as few statements as possible (a batch
/// of spans claims all its keys at once rather than one round trip each).
pub fn claim_all<D: Database>(db: &D, claims: &[(String, String)]) -> Result<(), DbError> {
    for chunk in claims.chunks(ROWS_PER_STATEMENT) {
        let mut params = Vec::with_capacity(chunk.len() * 2);
        for (key, run_id) in chunk {
            params.push(key.as_str().into());
            params.push(run_id.as_str().into());
        }
        db.execute(
            &format!(
                "INSERT INTO ingest_keys (key, agent_id) VALUES {} ON CONFLICT (key) DO NOTHING",
                rows(chunk.len(), 2)
            ),
            &params,
        )?;
    }
    Ok(())
}

/// Rows per multi-row INSERT: far below SQLite's 32,766 parameters for every table here.
const ROWS_PER_STATEMENT: usize = 200;

/// `(?, ?), (?, ?), …`: `count` rows of `width` parameters.
fn rows(count: usize, width: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    vec![row; count].join(", ")
}

/// One agent log row to write (never `state_change`: those come from [`move_run`]).
pub struct LogRow<'a> {
    pub run_id: &'a str,
    pub level: LogLevel,
    pub log_type: LogType,
    pub message: String,
    pub details: serde_json::Value,
}

/// Write one agent log row.
pub fn log<D: Database>(
    db: &D,
    run_id: &str,
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
    let now = now_rfc3339();
    for chunk in logs.chunks(ROWS_PER_STATEMENT) {
        let mut params = Vec::with_capacity(chunk.len() * 6);
        for log in chunk {
            params.extend([
                log.run_id.into(),
                log.level.as_str().into(),
                log.log_type.as_str().into(),
                truncate(&log.message, MAX_MESSAGE).into(),
                log.details.to_string().into(),
                now.as_str().into(),
            ]);
        }
        db.execute(
            &format!(
                "INSERT INTO agent_logs (agent_id, log_level, log_type, message, details, \
                 created_at) VALUES {}",
                rows(chunk.len(), 6)
            ),
            &params,
        )?;
    }
    Ok(())
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
pub fn tool_call<D: Database>(db: &D, run_id: &str, call: ToolCall<'_>) -> Result<(), DbError> {
    let key = format!("tool:{}:{}", call.session, call.tool_use_id);
    if claim(db, &key, run_id)? {
        return log(
            db,
            run_id,
            call.level,
            LogType::ToolCall,
            &call.message,
            &call.details,
        );
    }
    let failed = call.level == LogLevel::Error;
    db.execute(
        &format!(
            "UPDATE agent_logs SET details = json_patch(COALESCE(details, '{{}}'), ?3), \
             log_level = CASE WHEN ?4 THEN 'ERROR' ELSE log_level END, \
             message = CASE WHEN ?4 THEN ?5 ELSE message END \
             WHERE agent_id = (SELECT agent_id FROM ingest_keys WHERE key = ?1) \
             AND log_type = 'tool_call' AND json_extract(details, '$.tool_use_id') = ?2 \
             AND json_extract(details, '{}') IS NULL",
            call.part.marker()
        ),
        &[
            key.into(),
            call.tool_use_id.into(),
            call.details.to_string().into(),
            i64::from(failed).into(),
            truncate(&call.message, MAX_MESSAGE).into(),
        ],
    )?;
    Ok(())
}

/// A finished LLM call, as OTLP reports it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Call {
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

/// A user prompt that an outside tool names (Claude Code's UserPromptSubmit): the prompt a
/// model call with the same `source_prompt_id` is the child of.
const USER_PROMPT: &str = "UserPromptSubmit";

/// Insert finished prompts of runs, a few hundred a statement (the roll-up triggers still
/// run per row, inside SQLite), each tied to its user prompt when that is known. Every run
/// whose cost or tokens this changed gets one `cost_update` feed event, however many of its
/// calls the batch held.
pub fn finished_prompts<D: Database>(db: &D, calls: &[(&str, &Call)]) -> Result<(), ApiError> {
    let now = now_rfc3339();
    // One placeholder row: the parent is looked up by the call's source prompt id in SQL.
    let row = format!(
        "(?, ?, 'command', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
         (SELECT u.id FROM prompts u WHERE u.source_prompt_id = ? AND u.prompt_name = '{USER_PROMPT}' \
          AND u.parent_prompt_id IS NULL ORDER BY u.created_at LIMIT 1))"
    );
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
                .map(|p| truncate(p, MAX_SESSION_ID));
            params.extend([
                Id::new_v4().into(),
                (*run_id).into(),
                call.prompt_name
                    .as_deref()
                    .map(|n| truncate(n, MAX_MODEL))
                    .into(),
                truncate(&call.prompt_text, MAX_PROMPT_TEXT).into(),
                call.response_text
                    .as_deref()
                    .map(|t| truncate(t, MAX_PROMPT_TEXT))
                    .into(),
                status.into(),
                call.model_used
                    .as_deref()
                    .map(|m| truncate(m, MAX_MODEL))
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
                    .map(|m| truncate(m, MAX_MESSAGE))
                    .into(),
                source.clone().into(),
                source.into(),
            ]);
        }
        db.execute(
            &format!(
                "INSERT INTO prompts (id, agent_id, prompt_type, prompt_name, prompt_text, \
                 response_text, status, model_used, tokens_input, tokens_output, cost_usd, \
                 latency_ms, created_at, completed_at, error_message, source_prompt_id, \
                 parent_prompt_id) VALUES {}",
                rows_with(chunk.len(), &row)
            ),
            &params,
        )?;
    }
    let mut changed: Vec<&str> = calls
        .iter()
        .filter(|(_, c)| c.cost_usd > 0.0 || c.tokens_input > 0 || c.tokens_output > 0)
        .map(|(run, _)| *run)
        .collect();
    changed.sort_unstable();
    changed.dedup();
    for run in changed {
        if let Some(id) = Id::parse(run) {
            runs::record_cost_change(db, &id)?;
        }
    }
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
            truncate(source_prompt_id, MAX_SESSION_ID).into(),
        ],
    )?;
    Ok(())
}

/// `count` copies of one row's placeholder text.
fn rows_with(count: usize, row: &str) -> String {
    vec![row; count].join(", ")
}

/// `text` cut to at most `max` bytes at a character boundary.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
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
