//! Steering a running agent through the answers to its own hooks (API.md, "Version 3 →
//! Steering"): stop, budgets, tool rules, approvals and follow-ups.
//!
//! Decided from the database inside the hook's write transaction ([`stopped`], [`steer`]);
//! a decision that waits for a person is a [`Reply::Approval`] or [`Reply::AwaitFollowUp`],
//! waited for by [`hold::wait`] after the transaction commits, with no connection held
//! while it sleeps. So it works on any Spin host, and the agent needs no code.

pub mod answer;
pub mod hold;

use serde_json::{json, Value as Json};

use crate::db::Database;
use crate::domain::{ApprovalId, LogLevel, LogType, Policy, Rule, RunId, RunStatus};
use crate::error::ApiError;
use crate::ingest::sink;
use crate::store::approvals::{self, NewApproval};
use crate::store::policies::{self, Link};
use crate::store::{prompts, runs};

/// Claude Code ignores a Stop hook's block after this many consecutive continuations.
pub const MAX_CONTINUATIONS: i64 = 8;

/// What a hook is answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// This answer, now.
    Now(Json),
    /// Hold the request until approval `id` is decided (or expires).
    Approval { id: ApprovalId, event: String },
    /// A Stop held up to `secs` for a follow-up to `run_id`.
    AwaitFollowUp { run_id: RunId, secs: u64 },
}

impl Reply {
    pub fn none() -> Reply {
        Reply::Now(answer::none())
    }
}

/// The hook event, as steering needs it.
#[derive(Debug, Clone, Copy)]
pub struct Hook<'a> {
    pub event: &'a str,
    /// The orchestrator's session id of the run (what approvals are scoped to).
    pub session: &'a str,
    pub tool: Option<&'a str>,
    pub input: &'a Json,
    pub cwd: Option<&'a str>,
    pub tool_use_id: Option<&'a str>,
    pub stop_hook_active: bool,
    pub approval_wait_secs: u64,
}

/// Whether the session must stop (or, for a stopped subagent, have its tools refused)
/// before anything of this event is applied: a cancelled run of the chain, or a budget
/// reached (which cancels the run whose budget it is, saying why). `chain` is the event's
/// run and its ancestors, nearest first ([`policies::chain`]).
pub fn stopped<D: Database>(
    db: &D,
    chain: &[Link],
    is_subagent: bool,
    event: &str,
) -> Result<Option<Json>, ApiError> {
    // The farthest first: the widest stop wins.
    for (depth, link) in chain.iter().enumerate().rev() {
        let own_subagent = depth == 0 && is_subagent;
        if link.status == Some(RunStatus::Cancelled) {
            let reason = stop_reason(link);
            return Ok(Some(if own_subagent {
                answer::deny(event, &reason)
            } else {
                answer::stop(event, &reason)
            }));
        }
        if link.status.is_some_and(RunStatus::is_final) {
            continue;
        }
        if let Some(reason) = over_budget(db, link)? {
            return Ok(Some(if own_subagent {
                answer::deny(event, &reason)
            } else {
                answer::stop(event, &reason)
            }));
        }
    }
    Ok(None)
}

/// What a stopped session is told: who or what stopped it.
pub(crate) fn stop_reason(link: &Link) -> String {
    match &link.error_message {
        Some(message) if !message.trim().is_empty() => {
            format!("Stopped by the orchestrator: {message}")
        }
        _ => format!("Stopped by the orchestrator: run {} was cancelled", link.id),
    }
}

/// A run whose tree has spent its `max_cost_usd`: cancelled now, with the reason.
fn over_budget<D: Database>(db: &D, link: &Link) -> Result<Option<String>, ApiError> {
    let Some(max) = link.policy.max_cost_usd else {
        return Ok(None);
    };
    let id = &link.id;
    let Some(tree) = runs::tree(db, id)? else {
        return Ok(None);
    };
    if tree.cost_usd < max {
        return Ok(None);
    }
    let message = format!(
        "budget reached: spent ${:.4} of max_cost_usd ${max:.4}",
        tree.cost_usd
    );
    if let Some(run) = runs::get(db, id)? {
        sink::move_run(db, run, RunStatus::Cancelled, Some(&message))?;
    }
    Ok(Some(format!("Stopped by the orchestrator: {message}")))
}

/// Check the budgets over `run_id` after its cost changed (late telemetry included): a
/// run whose tree reached its `max_cost_usd` is cancelled, so the session's next hook
/// stops it.
pub fn check_budgets<D: Database>(db: &D, run_id: &RunId) -> Result<(), ApiError> {
    for link in policies::chain(db, run_id)? {
        if link.policy.max_cost_usd.is_some() && !link.status.is_some_and(RunStatus::is_final) {
            over_budget(db, &link)?;
        }
    }
    Ok(())
}

/// What the event asks of a person or a rule, once it is applied (the run is not final).
/// `chain` is the event's run and its ancestors; `session_link` the session's own run's
/// place in it (0 for the session's run, 1 when the event is a subagent's).
pub fn steer<D: Database>(
    db: &D,
    chain: &[Link],
    session_link: usize,
    hook: &Hook<'_>,
) -> Result<Reply, ApiError> {
    let Some(run) = chain.first() else {
        return Ok(Reply::none());
    };
    // Tool rules: the session's run's, and those of every run above it (a dispatched
    // workflow's rules hold for the sessions it starts).
    let rules = chain.get(session_link..).unwrap_or(&[]);
    match hook.event {
        "PreToolUse" | "PermissionRequest" => {
            let tool = hook.tool.unwrap_or("");
            let deny = rules.iter().find_map(|l| {
                Policy::first_match(&l.policy.deny_tools, tool, hook.input, hook.cwd)
            });
            if let Some(rule) = deny {
                record_denial(db, &run.id, hook, rule)?;
                let reason = format!(
                    "Denied by the orchestrator's policy: {tool} matches deny rule \"{}\"",
                    rule.as_str()
                );
                return Ok(Reply::Now(answer::deny(hook.event, &reason)));
            }
            // A PermissionRequest is Claude Code's own question: no rule of ours asked it.
            let rule = if hook.event == "PreToolUse" {
                let ask = rules.iter().find_map(|l| {
                    Policy::first_match(&l.policy.ask_tools, tool, hook.input, hook.cwd)
                });
                match ask {
                    Some(rule) => Some(rule.as_str()),
                    None => return Ok(Reply::none()),
                }
            } else {
                None
            };
            if approvals::session_grant(db, hook.session, tool, rule)? {
                return Ok(Reply::Now(answer::allow(
                    hook.event,
                    "Allowed for this session by a person in the orchestrator",
                )));
            }
            let approval = approvals::insert(
                db,
                NewApproval {
                    run_id: &run.id,
                    session_id: hook.session,
                    hook_event: hook.event,
                    tool_name: tool,
                    tool_input: hook.input,
                    rule,
                    wait_secs: hook.approval_wait_secs,
                },
            )?;
            Ok(Reply::Approval {
                id: approval.id,
                event: hook.event.to_owned(),
            })
        }
        // A subagent's stop is not its session's turn ending.
        "Stop" if session_link == 0 => {
            if let Some(answer) = deliver_follow_up(db, &run.id, hook.stop_hook_active)? {
                return Ok(Reply::Now(answer));
            }
            match run.policy.hold_on_stop_secs {
                0 => Ok(Reply::none()),
                secs => Ok(Reply::AwaitFollowUp {
                    run_id: run.id.clone(),
                    secs,
                }),
            }
        }
        _ => Ok(Reply::none()),
    }
}

/// The run's next follow-up as a Stop's block, marked delivered; `None` when there is none,
/// or when Claude Code would ignore one more consecutive continuation (it stays pending for
/// the session's next turn).
pub fn deliver_follow_up<D: Database>(
    db: &D,
    run_id: &RunId,
    stop_hook_active: bool,
) -> Result<Option<Json>, ApiError> {
    let Some((id, text)) = prompts::next_followup(db, run_id)? else {
        return Ok(None);
    };
    if stop_hook_active && prompts::followups_in_a_row(db, run_id)? >= MAX_CONTINUATIONS {
        return Ok(None);
    }
    prompts::mark_delivered(db, &id)?;
    Ok(Some(answer::follow_up(&text)))
}

/// A call a deny rule refused: a `tool_call` log of the run says so.
fn record_denial<D: Database>(
    db: &D,
    run_id: &RunId,
    hook: &Hook<'_>,
    rule: &Rule,
) -> Result<(), ApiError> {
    let tool = hook.tool.unwrap_or("(unnamed tool)");
    sink::log(
        db,
        run_id,
        LogLevel::Warning,
        LogType::ToolCall,
        &format!("{tool} denied by policy rule {}", rule.as_str()),
        &json!({
            "hook_event_name": hook.event,
            "tool_name": tool,
            "tool_use_id": hook.tool_use_id,
            "tool_input": crate::ingest::hooks::excerpt(Some(hook.input)),
            "denied": true,
            "rule": rule.as_str(),
        }),
    )?;
    Ok(())
}
