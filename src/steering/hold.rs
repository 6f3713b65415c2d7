//! Holding a hook request open while a person decides: after the hook's transaction has
//! committed (so the approval is visible to everyone), sleep between cheap checks on a
//! fresh connection each time, holding none while asleep. In a Spin component
//! `thread::sleep` is a wait in the host: it blocks no host thread, and `orchestrator up`
//! charges it to the request's wall-clock limit, not to its run-time deadline (README,
//! "Held requests").

use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::{answer, Reply};
use crate::db::{write_transaction, Database};
use crate::domain::{ApprovalId, ApprovalStatus, RunId, RunStatus};
use crate::error::ApiError;
use crate::store::{approvals, policies, prompts};

/// How often a held approval is checked: a decision reaches the agent within about this.
/// Each check is one primary-key read; 200 held hooks make 3,300 a second (bench-approvals
/// measures what that costs the other requests).
pub const APPROVAL_POLL: Duration = Duration::from_millis(60);
/// How often a Stop held for a follow-up checks for one.
pub const FOLLOW_UP_POLL: Duration = Duration::from_millis(200);

/// The answer to a held request, once it is decided, or at its deadline.
pub fn wait<D: Database>(
    open: &dyn Fn() -> Result<D, ApiError>,
    reply: Reply,
) -> Result<Json, ApiError> {
    match reply {
        Reply::Now(answer) => Ok(answer),
        Reply::Approval { id, event } => approval(open, &id, &event),
        Reply::AwaitFollowUp { run_id, secs } => follow_up(open, &run_id, secs),
    }
}

fn approval<D: Database>(
    open: &dyn Fn() -> Result<D, ApiError>,
    id: &ApprovalId,
    event: &str,
) -> Result<Json, ApiError> {
    loop {
        let db = open()?;
        let Some(current) = approvals::get(&db, id)? else {
            // Deleted with its run: nothing to say.
            return Ok(answer::none());
        };
        match current.status {
            ApprovalStatus::Pending => {}
            ApprovalStatus::Expired => {
                // Past its time: say so for everyone, unless a decision won the race (or
                // someone else closed it already): then what it is now.
                let closed = write_transaction(&db, |db| {
                    approvals::decide(db, id, ApprovalStatus::Expired, None, None)
                        .map_err(ApiError::from)
                })?;
                if closed.is_none() {
                    if let Some(now) = approvals::get(&db, id)? {
                        if now.status != ApprovalStatus::Expired && !now.is_pending() {
                            return answer_for(&db, &now, event);
                        }
                    }
                }
                return Ok(answer::none());
            }
            _ => return answer_for(&db, &current, event),
        }
        drop(db);
        std::thread::sleep(APPROVAL_POLL);
    }
}

/// A decided approval in the held event's shape.
fn answer_for<D: Database>(
    db: &D,
    approval: &approvals::Approval,
    event: &str,
) -> Result<Json, ApiError> {
    let message = approval.message.as_deref();
    Ok(match approval.status {
        ApprovalStatus::Allowed => answer::allow(
            event,
            message.unwrap_or("Allowed by a person in the orchestrator"),
        ),
        ApprovalStatus::Denied => answer::deny(
            event,
            message.unwrap_or("Denied by a person in the orchestrator"),
        ),
        // Cancelled because its run was stopped: stop the session; because it ended: nothing.
        ApprovalStatus::Cancelled => match stop_of(db, &approval.run_id)? {
            Some(reason) => answer::stop(event, &reason),
            None => answer::none(),
        },
        _ => answer::none(),
    })
}

/// Why the run (or a run above it) was stopped, if it was.
fn stop_of<D: Database>(db: &D, run_id: &RunId) -> Result<Option<String>, ApiError> {
    let chain = policies::chain(db, run_id)?;
    Ok(chain
        .iter()
        .find(|l| l.status == Some(RunStatus::Cancelled))
        .map(super::stop_reason))
}

fn follow_up<D: Database>(
    open: &dyn Fn() -> Result<D, ApiError>,
    run_id: &RunId,
    secs: u64,
) -> Result<Json, ApiError> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let db = open()?;
        if let Some(reason) = stop_of(&db, run_id)? {
            return Ok(answer::stop("Stop", &reason));
        }
        if prompts::next_followup(&db, run_id)?.is_some() {
            let delivered = write_transaction(&db, |db| {
                // Held Stops follow a turn the agent ended itself: not a continuation.
                super::deliver_follow_up(db, run_id, false)
            })?;
            if let Some(answer) = delivered {
                return Ok(answer);
            }
        }
        drop(db);
        let now = Instant::now();
        if now >= deadline {
            return Ok(answer::none());
        }
        std::thread::sleep(FOLLOW_UP_POLL.min(deadline - now));
    }
}
