//! Claude Code HTTP hooks (`POST /api/ingest/claude-code`): one hook event's body in, the
//! runs, prompts and logs it stands for out.
//!
//! - One run per Claude Code session (key `run:cc:<session_id>`), created by whichever
//!   event comes first; an event with `agent_id` belongs to a subagent's child run (key
//!   `run:cc:<session_id>:<agent_id>`, parent the session's run).
//! - Status: SessionStart → initializing, UserPromptSubmit → planning, Pre/PostToolUse →
//!   executing, Stop → reviewing, StopFailure → failed, SessionEnd → completed;
//!   SubagentStart/SubagentStop start and complete the child run. A final run takes nothing.
//! - Idempotent: status moves and prompt completion are idempotent by state (the same
//!   status again is a no-op; a Stop with no open prompt completes nothing); a tool call
//!   is applied once per `tool_use_id`; a prompt equal to the run's open prompt, and a
//!   notification or unknown event already seen (same content), are redeliveries.

use serde_json::{json, Map, Value as Json};

use super::sink::{self, RunSpec};
use crate::db::Database;
use crate::domain::text::truncate;
use crate::domain::{AgentName, AgentType, DefinitionId, LogLevel, LogType, RunId, RunStatus};
use crate::error::ApiError;
use crate::http::Query;
use crate::steering::{self, Hook, Reply};
use crate::store::runs::{self, Run};
use crate::store::{ingest_keys, policies, prompts};

/// The most of a tool's input or response kept in its `tool_call` log, in bytes of its
/// JSON text; longer ones are cut at a character boundary and kept as a string.
pub const MAX_EXCERPT: usize = 65_536;

/// Where a delivery lands, from the query: `agent`, `agent_type`, `session`.
#[derive(Debug)]
pub struct Target {
    pub agent: String,
    pub agent_type: AgentType,
    pub session: Option<String>,
    /// The run a runner started this session for (`X-Orchestrator-Run-Id`, from
    /// `$ORCHESTRATOR_RUN_ID`): the session's run is created as its child.
    pub parent_run: Option<RunId>,
}

impl Target {
    /// Read the query; a bad value is a 400 naming the parameter (nothing is written).
    pub fn from_query(query: &Query) -> Result<Self, ApiError> {
        let agent = match query.get("agent") {
            None => "claude-code".to_owned(),
            Some(raw) => AgentName::parse(raw.to_owned())
                .map_err(|e| ApiError::bad_query("agent", format!("agent: {e}")))?
                .into_inner(),
        };
        let agent_type = match query.get("agent_type") {
            None => AgentType::Builder,
            Some(raw) => AgentType::parse(raw).ok_or_else(|| {
                ApiError::bad_query(
                    "agent_type",
                    format!("agent_type must be one of {}", AgentType::list()),
                )
            })?,
        };
        let session = query.text_filter("session")?;
        if let Some(s) = &session {
            if s.chars().count() > runs::MAX_SESSION_ID {
                return Err(ApiError::bad_query(
                    "session",
                    format!(
                        "session must be at most {} characters",
                        runs::MAX_SESSION_ID
                    ),
                ));
            }
        }
        Ok(Target {
            agent,
            agent_type,
            session,
            parent_run: None,
        })
    }
}

fn text<'a>(event: &'a Map<String, Json>, name: &str) -> Option<&'a str> {
    event
        .get(name)
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
}

/// Apply one hook event, inside the caller's write transaction, and say what the hook is
/// answered (see [`crate::steering`]). A body without a `session_id` (and no `session` in
/// the query) cannot be placed: 422.
pub fn apply<D: Database>(
    db: &D,
    target: &Target,
    event: &Map<String, Json>,
    approval_wait_secs: u64,
) -> Result<Reply, ApiError> {
    let claude_session = text(event, "session_id")
        .map(str::to_owned)
        .or_else(|| target.session.clone())
        .ok_or_else(|| ApiError::validation("session_id", "a hook event needs its session_id"))?;
    let claude_session = truncate(&claude_session, runs::MAX_SESSION_ID);
    let session = target
        .session
        .clone()
        .unwrap_or_else(|| claude_session.clone());
    let name = text(event, "hook_event_name").unwrap_or("");
    // The definition is looked up only when a run has to be created: a known session's
    // event costs one statement less.
    let mut definition: Option<DefinitionId> = None;
    let mut definition_id = |db: &D| -> Result<DefinitionId, ApiError> {
        if let Some(id) = &definition {
            return Ok(id.clone());
        }
        let id = sink::definition(db, &target.agent, target.agent_type)?;
        definition = Some(id.clone());
        Ok(id)
    };
    let cwd = text(event, "cwd");
    let main_key = format!("run:cc:{claude_session}");
    let main = match sink::run_for_key(db, &main_key)? {
        // A run that telemetry created first learns its folder from the first hook.
        Some(run) => sink::describe(db, run, None, cwd)?,
        None => sink::ensure_run(
            db,
            RunSpec {
                key: &main_key,
                definition_id: &definition_id(db)?,
                session_id: &session,
                // A parent that does not exist (deleted, another database) is no parent.
                parent_agent_id: match &target.parent_run {
                    Some(parent) if crate::store::exists(db, "agents", parent.as_str())? => {
                        Some(parent)
                    }
                    _ => None,
                },
                context: json!({"claude_code": {
                    "session_id": claude_session,
                    "cwd": cwd,
                    "transcript_path": text(event, "transcript_path"),
                }}),
                title: None,
                project: cwd,
            },
        )?,
    };
    let main_id = main.id.clone();
    // Subagent events carry the subagent's id; SubagentStart/Stop always concern one.
    let run = match text(event, "agent_id") {
        Some(agent_id) if !main.status.is_final() || run_exists(db, &claude_session, agent_id)? => {
            let key = format!("run:cc:{claude_session}:{agent_id}");
            match sink::run_for_key(db, &key)? {
                Some(run) => sink::describe(db, run, text(event, "agent_type"), cwd)?,
                None => sink::ensure_run(
                    db,
                    RunSpec {
                        key: &key,
                        definition_id: &definition_id(db)?,
                        session_id: &session,
                        parent_agent_id: Some(&main.id),
                        context: json!({"claude_code": {
                            "session_id": claude_session,
                            "agent_id": agent_id,
                            "agent_type": text(event, "agent_type"),
                        }}),
                        // A subagent is named by its type ("Explore", "code-reviewer").
                        title: text(event, "agent_type").map(str::to_owned),
                        project: cwd,
                    },
                )?,
            }
        }
        // An unseen subagent of a final session: not created; stopped if the session was.
        Some(_) => {
            let chain = policies::chain(db, &main.id)?;
            return Ok(match steering::stopped(db, &chain, false, name)? {
                Some(answer) => Reply::Now(answer),
                None => Reply::none(),
            });
        }
        None => main,
    };
    let is_subagent = run.id != main_id;
    // A stopped session (or a budget reached) is told so before anything else happens.
    let chain = policies::chain(db, &run.id)?;
    if let Some(answer) = steering::stopped(db, &chain, is_subagent, name)? {
        return Ok(Reply::Now(answer));
    }
    if run.status.is_final() {
        // Final runs are unchanged by later events.
        return Ok(Reply::none());
    }
    match name {
        "SessionStart" => {}
        "UserPromptSubmit" => {
            let prompt = text(event, "prompt").unwrap_or("");
            // The session's first prompt names it, before the move that shows it.
            let run = sink::describe(db, run, Some(prompt), None)?;
            let run = sink::move_run(db, run, RunStatus::Planning, None)?;
            open_prompt(db, &run, prompt, text(event, "prompt_id"))?;
        }
        "PreToolUse" => {
            sink::move_run(db, run, RunStatus::Executing, None)?;
        }
        "PostToolUse" | "PostToolUseFailure" => {
            let run = sink::move_run(db, run, RunStatus::Executing, None)?;
            tool_call(
                db,
                &run,
                &claude_session,
                name == "PostToolUseFailure",
                event,
            )?;
        }
        "Stop" => {
            close_prompt(
                db,
                &run,
                "completed",
                text(event, "last_assistant_message"),
                None,
            )?;
            sink::move_run(db, run, RunStatus::Reviewing, None)?;
        }
        // Only a subagent's own run ends with SubagentStop (one without agent_id falls
        // through to the unknown events below, so it cannot end the session's run).
        "SubagentStop" if run.parent_agent_id.is_some() => {
            sink::move_run(db, run, RunStatus::Completed, None)?;
        }
        "StopFailure" => {
            let error = failure_message(event);
            close_prompt(db, &run, "failed", None, Some(&error))?;
            sink::move_run(db, run, RunStatus::Failed, Some(&error))?;
        }
        "SessionEnd" => {
            sink::move_run(db, run, RunStatus::Completed, None)?;
        }
        "SubagentStart" if run.parent_agent_id.is_some() => {}
        "Notification" => {
            let message = text(event, "message").unwrap_or("notification");
            once(db, &run, event, |db| {
                sink::log(
                    db,
                    &run.id,
                    LogLevel::Info,
                    LogType::Milestone,
                    message,
                    &json!({"hook_event_name": name,
                            "notification_type": text(event, "notification_type"),
                            "title": text(event, "title")}),
                )
            })?;
        }
        _ => {
            // Events this version does not map (PreCompact, PermissionRequest, new ones):
            // kept as a DEBUG milestone once, never an error.
            let label = if name.is_empty() {
                "(no hook_event_name)"
            } else {
                name
            };
            once(db, &run, event, |db| {
                sink::log(
                    db,
                    &run.id,
                    LogLevel::Debug,
                    LogType::Milestone,
                    &format!("Claude Code event {label}"),
                    &json!({"hook_event_name": name}),
                )
            })?;
        }
    }
    let empty = Json::Null;
    let hook = Hook {
        event: name,
        session: &session,
        tool: text(event, "tool_name"),
        input: event.get("tool_input").unwrap_or(&empty),
        cwd,
        tool_use_id: text(event, "tool_use_id"),
        stop_hook_active: event
            .get("stop_hook_active")
            .and_then(Json::as_bool)
            .unwrap_or(false),
        approval_wait_secs,
    };
    steering::steer(db, &chain, usize::from(is_subagent), &hook)
}

/// What a StopFailure says failed: Claude Code's `error` is only a category (`unknown`,
/// `rate_limit`…); the words a person needs are its `last_assistant_message` ("API Error:
/// 400 …"). Both when both are there: `API Error: 400 … (error: unknown)`.
pub fn failure_message(event: &Map<String, Json>) -> String {
    let category = text(event, "error").or_else(|| text(event, "error_message"));
    match (text(event, "last_assistant_message"), category) {
        (Some(words), Some(category)) => format!("{words} (error: {category})"),
        (Some(words), None) => words.to_owned(),
        (None, Some(category)) => format!("Claude Code stopped on an error: {category}"),
        (None, None) => "Claude Code reported StopFailure".to_owned(),
    }
}

/// Whether a subagent's run exists already (after its session's run is final, events of
/// a subagent seen before may still finish it; an unseen one is not created).
fn run_exists<D: Database>(db: &D, session: &str, agent_id: &str) -> Result<bool, ApiError> {
    Ok(sink::run_for_key(db, &format!("run:cc:{session}:{agent_id}"))?.is_some())
}

/// Apply `write` unless this exact event (by content) was applied to `run` before.
fn once<D: Database>(
    db: &D,
    run: &Run,
    event: &Map<String, Json>,
    write: impl FnOnce(&D) -> Result<(), crate::db::DbError>,
) -> Result<(), ApiError> {
    let key = format!("hash:{}", sink::digest(&Json::Object(event.clone())));
    if ingest_keys::claim(db, &key, &run.id)? {
        write(db)?;
    }
    Ok(())
}

/// A UserPromptSubmit: a `pending` prompt, unless it was recorded before — by Claude
/// Code's `prompt_id` when the event has one, else by its text among the run's open
/// prompts (an older Claude Code sends nothing else that tells two identical prompts apart,
/// so an identical prompt counts as new only once the previous one is closed). Model calls
/// that arrived first naming this `prompt_id` become its children.
fn open_prompt<D: Database>(
    db: &D,
    run: &Run,
    prompt: &str,
    source_prompt_id: Option<&str>,
) -> Result<(), ApiError> {
    let prompt = truncate(prompt, prompts::MAX_TEXT);
    let seen = match source_prompt_id {
        Some(source) => prompts::has_user_prompt(db, &run.id, source)?,
        None => prompts::has_open_prompt(db, &run.id, &prompt)?,
    };
    if seen {
        return Ok(());
    }
    let id = prompts::insert_user_prompt(db, &run.id, &prompt, source_prompt_id)?;
    if let Some(source) = source_prompt_id {
        prompts::link_calls(db, id.as_str(), source)?;
    }
    Ok(())
}

/// A Stop (StopFailure): the run's open prompts are completed (failed). None open: nothing.
fn close_prompt<D: Database>(
    db: &D,
    run: &Run,
    status: &str,
    response: Option<&str>,
    error: Option<&str>,
) -> Result<(), ApiError> {
    prompts::close_open(db, &run.id, status, response, error)?;
    Ok(())
}

/// A PostToolUse / PostToolUseFailure: one `tool_call` log per `tool_use_id` (else per
/// content), with excerpts of the input and the response. When Claude Code's telemetry
/// reported the call first (`claude_code.tool_result`, same `tool_use_id`), its log is
/// completed with what the hook adds instead of a second log.
fn tool_call<D: Database>(
    db: &D,
    run: &Run,
    session: &str,
    failed: bool,
    event: &Map<String, Json>,
) -> Result<(), ApiError> {
    let tool = text(event, "tool_name").unwrap_or("(unnamed tool)");
    let tool_use_id = text(event, "tool_use_id");
    let error = text(event, "error");
    let mut details = json!({
        "hook_event_name": text(event, "hook_event_name"),
        "tool_name": tool,
        "tool_use_id": tool_use_id,
        "tool_input": excerpt(event.get("tool_input")),
        "tool_response": excerpt(event.get("tool_response")),
    });
    if failed {
        details["error"] = json!(error.map(|e| truncate(e, MAX_EXCERPT)));
        details["is_interrupt"] = event.get("is_interrupt").cloned().unwrap_or(Json::Null);
    }
    let (level, message) = if failed {
        (
            LogLevel::Error,
            format!("{tool} failed: {}", error.unwrap_or("no error message")),
        )
    } else {
        (LogLevel::Info, tool.to_owned())
    };
    let Some(tool_use_id) = tool_use_id else {
        let key = format!("hash:{}", sink::digest(&Json::Object(event.clone())));
        if ingest_keys::claim(db, &key, &run.id)? {
            sink::log(db, &run.id, level, LogType::ToolCall, &message, &details)?;
        }
        return Ok(());
    };
    let call = sink::ToolCall {
        session,
        tool_use_id,
        part: sink::ToolCallPart::Hook,
        level,
        message,
        details,
    };
    sink::tool_call(db, &run.id, call)?;
    Ok(())
}

/// A value kept whole when its JSON text fits in [`MAX_EXCERPT`]; else the text's first
/// [`MAX_EXCERPT`] bytes as a string (`{"excerpt": …, "truncated": true, "bytes": n}`).
pub fn excerpt(value: Option<&Json>) -> Json {
    let Some(value) = value else {
        return Json::Null;
    };
    let text = value.to_string();
    if text.len() <= MAX_EXCERPT {
        return value.clone();
    }
    json!({
        "excerpt": truncate(&text, MAX_EXCERPT),
        "truncated": true,
        "bytes": text.len(),
    })
}
