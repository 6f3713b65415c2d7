//! `dispatches`: runs queued for runners, their claims, leases, output and ends
//! (docs/dispatch.md).
//!
//! Every move of a dispatched run's status goes through [`runs::move_status`], so it is a
//! `state_change` row and an event of the feed, with the dispatch as it is after the move
//! (a run's `dispatch` is read by a subquery, see `runs`).

use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;

use super::logs::{insert_agent_rows, AgentLogRow};
use super::runs::{self, Run};
use crate::db::{write_transaction, Database, DbError};
use crate::domain::text::truncate;
use crate::domain::time::now_rfc3339;
use crate::domain::{DefinitionId, Id, LogLevel, LogType, RunId, RunStatus};
use crate::error::ApiError;

/// The longest dispatch `input`, in characters.
pub const MAX_INPUT: usize = 65_536;
/// The longest output line kept, in bytes; a longer one is cut and says so.
pub const MAX_LINE_BYTES: usize = 8_192;
/// Output lines a run keeps; later ones are dropped (one line says so).
pub const MAX_LINES_PER_RUN: i64 = 20_000;
/// Lines one output batch may hold (more is a 422).
pub const MAX_LINES_PER_BATCH: usize = 1_000;
/// Output lines an `error_message` of a failed run ends with.
pub const TAIL_LINES: i64 = 20;
/// The placeholders a `command` may use.
pub const PLACEHOLDERS: &[&str] = &["input", "run_id", "session_id"];
/// The default lease (`RUNNER_LEASE_SECS`).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// The log type of output lines. `milestone` rows are events of the feed (approvals) and
/// the schema's CHECK admits no new type without rebuilding `agent_logs`; `performance`
/// is on no feed index and nothing else writes it for a run.
pub const OUTPUT_LOG_TYPE: LogType = LogType::Performance;

/// A definition's command, as a dispatch needs it.
#[derive(Debug, Clone)]
pub struct Command {
    pub argv: Vec<String>,
    pub working_dir: Option<String>,
    pub timeout_secs: Option<i64>,
}

/// The command of definition `definition`, checked: a 422 on `dispatch` when it has none
/// or the stored one is not a non-empty array of strings.
pub fn command_of<D: Database>(db: &D, definition: &DefinitionId) -> Result<Command, ApiError> {
    let mut rows = db.execute(
        "SELECT name, command, working_dir, timeout_secs FROM orchestrator_agents WHERE id = ?1",
        &[definition.into()],
    )?;
    let Some(mut row) = rows.first() else {
        return Err(ApiError::validation(
            "orchestrator_agent_id",
            format!("orchestrator_agent_id {definition} does not exist"),
        ));
    };
    let name = row.text(0)?;
    let Some(command) = row.opt_text(1)? else {
        return Err(ApiError::validation(
            "dispatch",
            format!(
                "agent {name:?} has no command: only a definition with a command can be dispatched"
            ),
        ));
    };
    let argv = serde_json::from_str::<Vec<String>>(&command)
        .ok()
        .filter(|argv| !argv.is_empty())
        .ok_or_else(|| {
            ApiError::validation(
                "dispatch",
                format!("agent {name:?} has a command that is not a non-empty array of strings"),
            )
        })?;
    Ok(Command {
        argv,
        working_dir: row.opt_text(2)?,
        timeout_secs: row.opt_int(3)?,
    })
}

/// Queue `run` (just inserted, in the caller's transaction) with the definition's
/// command resolved for it. A 422 on `dispatch` when the command cannot be resolved.
pub fn queue<D: Database>(
    db: &D,
    run: &Run,
    command: &Command,
    input: &str,
) -> Result<(), ApiError> {
    let argv =
        crate::domain::command::resolve(&command.argv, input, run.id.as_str(), &run.session_id)
            .map_err(|message| ApiError::validation("dispatch", message))?;
    let argv = serde_json::to_string(&argv)
        .map_err(|e| ApiError::internal(format!("cannot encode argv: {e}")))?;
    db.execute(
        "INSERT INTO dispatches (run_id, state, input, argv, working_dir, timeout_secs, \
         queued_at) VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6)",
        &[
            run.id.as_str().into(),
            input.into(),
            argv.into(),
            command.working_dir.clone().into(),
            command.timeout_secs.into(),
            run.started_at.as_str().into(),
        ],
    )?;
    Ok(())
}

/// `now` plus `lease`, in the API's format.
fn lease_end(now: &str, lease: Duration) -> Result<String, ApiError> {
    use time::OffsetDateTime;
    let millis = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    OffsetDateTime::parse(now, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| t.checked_add(time::Duration::milliseconds(millis)))
        .filter(|t| t.year() <= 9999)
        .map(crate::domain::time::format_rfc3339)
        .ok_or_else(|| ApiError::internal("lease end out of range"))
}

/// What a claim gives a runner.
#[derive(Debug, Serialize)]
pub struct Claim {
    pub run: Run,
    pub lease: String,
    pub lease_secs: u64,
    pub argv: Box<RawValue>,
    pub working_dir: Option<String>,
    pub timeout_secs: Option<i64>,
    pub env: ClaimEnv,
}

/// The environment the process gets from the API (the runner adds `ORCHESTRATOR_URL` and
/// the token).
#[derive(Debug, Serialize)]
#[allow(non_snake_case)]
pub struct ClaimEnv {
    pub ORCHESTRATOR_RUN_ID: String,
    pub ORCHESTRATOR_SESSION_ID: String,
}

/// Whether there is a queued run, and whether a lease has passed: one cheap read, so a
/// waiting claim writes only when there is something to write.
pub fn pending_work<D: Database>(db: &D) -> Result<(bool, bool), DbError> {
    let mut rows = db.execute(
        "SELECT EXISTS (SELECT 1 FROM dispatches WHERE state = 'queued'), \
         EXISTS (SELECT 1 FROM dispatches WHERE state = 'running' AND lease_until < ?1)",
        &[now_rfc3339().into()],
    )?;
    match rows.first() {
        Some(row) => Ok((row.int(0)? != 0, row.int(1)? != 0)),
        None => Ok((false, false)),
    }
}

/// Claim the oldest queued run for `runner`, atomically: the run moves to `executing`,
/// its dispatch to `running` with a fresh lease. A queued run that was made final
/// meanwhile (cancelled) is never started: its dispatch becomes `exited` and the next is
/// tried. Leases that have passed are marked lost first.
pub fn claim<D: Database>(
    db: &D,
    runner: &str,
    lease: Duration,
) -> Result<Option<Claim>, ApiError> {
    write_transaction(db, |db| {
        expire_in(db)?;
        loop {
            let now = now_rfc3339();
            let lease_id = Id::new_v4().into_string();
            let until = lease_end(&now, lease)?;
            let mut rows = db.execute(
                "UPDATE dispatches SET state = 'running', runner = ?1, lease_id = ?2, \
                 lease_until = ?3, started_at = ?4 \
                 WHERE run_id = (SELECT run_id FROM dispatches WHERE state = 'queued' \
                                 ORDER BY queued_at, run_id LIMIT 1) \
                 AND state = 'queued' \
                 RETURNING run_id, argv, working_dir, timeout_secs",
                &[
                    runner.into(),
                    lease_id.as_str().into(),
                    until.into(),
                    now.as_str().into(),
                ],
            )?;
            let Some(mut row) = rows.first() else {
                return Ok(None);
            };
            let run_id = RunId::stored(row.text(0)?);
            let argv = row.json(1)?;
            let working_dir = row.opt_text(2)?;
            let timeout_secs = row.opt_int(3)?;
            let Some(run) = runs::get(db, &run_id)? else {
                continue;
            };
            if run.status.is_final() {
                db.execute(
                    "UPDATE dispatches SET state = 'exited', runner = NULL, lease_id = NULL, \
                     lease_until = NULL, started_at = NULL, ended_at = ?2 WHERE run_id = ?1",
                    &[(&run_id).into(), now.as_str().into()],
                )?;
                continue;
            }
            let from = run.status;
            let run = if from == RunStatus::Executing {
                run
            } else {
                runs::move_status(db, run, from, RunStatus::Executing, None)?
            };
            return Ok(Some(Claim {
                env: ClaimEnv {
                    ORCHESTRATOR_RUN_ID: run.id.to_string(),
                    ORCHESTRATOR_SESSION_ID: run.session_id.clone(),
                },
                run,
                lease: lease_id,
                lease_secs: lease.as_secs(),
                argv,
                working_dir,
                timeout_secs,
            }));
        }
    })
}

/// Mark the dispatches whose lease has passed `lost`, and fail their runs ("runner lost"),
/// when there are any: one indexed read when there are none. Called lazily by claims,
/// heartbeats and readers of runs and of the feed.
pub fn expire_leases<D: Database>(db: &D) -> Result<(), ApiError> {
    let mut rows = db.execute(
        "SELECT 1 FROM dispatches WHERE state = 'running' AND lease_until < ?1 LIMIT 1",
        &[now_rfc3339().into()],
    )?;
    if rows.first().is_none() {
        return Ok(());
    }
    write_transaction(db, |db| expire_in(db).map(|_| ()))
}

/// [`expire_leases`] inside the caller's write transaction; how many were lost.
fn expire_in<D: Database>(db: &D) -> Result<usize, ApiError> {
    let now = now_rfc3339();
    let mut rows = db.execute(
        "UPDATE dispatches SET state = 'lost', ended_at = ?1 \
         WHERE state = 'running' AND lease_until < ?1 \
         RETURNING run_id, runner, lease_until",
        &[now.as_str().into()],
    )?;
    let mut lost = Vec::new();
    for mut row in rows.iter() {
        lost.push((
            RunId::stored(row.text(0)?),
            row.opt_text(1)?,
            row.opt_text(2)?,
        ));
    }
    for (run_id, runner, until) in &lost {
        let Some(run) = runs::get(db, run_id)? else {
            continue;
        };
        if run.status.is_final() {
            continue;
        }
        let message = format!(
            "runner lost: {} stopped heartbeating (its lease ended at {})",
            runner.as_deref().unwrap_or("the runner"),
            until.as_deref().unwrap_or("?")
        );
        let from = run.status;
        runs::move_status(db, run, from, RunStatus::Failed, Some(message))?;
    }
    Ok(lost.len())
}

/// What the holder of a lease learns on each heartbeat and output batch.
#[derive(Debug, Serialize)]
pub struct Beat {
    /// The run is final (a person pressed Stop): end the process.
    pub cancelled: bool,
    pub status: RunStatus,
    pub lease_until: String,
}

/// The dispatch of `id` as held under `lease`: renewed to now + `lease_len`. 404 for a run
/// that is unknown or was not dispatched; 409 when `lease` is not the current holder's.
/// A holder whose lease passed unnoticed (no one marked it lost) renews it.
fn renew<D: Database>(
    db: &D,
    id: &RunId,
    lease: &str,
    lease_len: Duration,
) -> Result<(Beat, i64, i64), ApiError> {
    let mut rows = db.execute(
        "SELECT x.state, x.lease_id, x.output_lines, a.status, x.output_received \
         FROM dispatches x \
         JOIN agents a ON a.id = x.run_id WHERE x.run_id = ?1",
        &[id.into()],
    )?;
    let Some(mut row) = rows.first() else {
        return Err(ApiError::not_found(format!(
            "dispatched run {id} not found"
        )));
    };
    let state = row.text(0)?;
    let holder = row.opt_text(1)?;
    let output_lines = row.int(2)?;
    let status = row.parsed(3, RunStatus::parse)?;
    let received = row.int(4)?;
    if state != "running" || holder.as_deref() != Some(lease) {
        return Err(ApiError::conflict(format!(
            "run {id} is not held under this lease (its dispatch is {state}); stop its process"
        )));
    }
    let until = lease_end(&now_rfc3339(), lease_len)?;
    db.execute(
        "UPDATE dispatches SET lease_until = ?2 WHERE run_id = ?1",
        &[id.into(), until.as_str().into()],
    )?;
    Ok((
        Beat {
            cancelled: status.is_final(),
            status,
            lease_until: until,
        },
        output_lines,
        received,
    ))
}

/// A heartbeat: the lease renewed, and whether the run was cancelled.
pub fn heartbeat<D: Database>(
    db: &D,
    id: &RunId,
    lease: &str,
    lease_len: Duration,
) -> Result<Beat, ApiError> {
    let beat = write_transaction(db, |db| renew(db, id, lease, lease_len).map(|(b, _, _)| b))?;
    // Other runners' leases, now that this one is renewed.
    expire_leases(db)?;
    Ok(beat)
}

/// Which stream an output line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn parse(s: &str) -> Option<Stream> {
        match s {
            "stdout" => Some(Stream::Stdout),
            "stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One output line as the runner sent it.
#[derive(Debug, Clone)]
pub struct Line {
    pub stream: Stream,
    pub text: String,
}

/// What an output batch did.
#[derive(Debug, Serialize)]
pub struct OutputAnswer {
    pub kept: usize,
    pub cut: usize,
    pub dropped: usize,
    /// Lines skipped as sent before (`from`).
    pub duplicates: usize,
    pub cancelled: bool,
}

/// `text` within [`MAX_LINE_BYTES`]: cut at a character boundary, saying how much went.
pub fn bound_line(text: &str) -> (String, bool) {
    if text.len() <= MAX_LINE_BYTES {
        return (text.to_owned(), false);
    }
    let kept = truncate(text, MAX_LINE_BYTES);
    let cut = text.len() - kept.len();
    (format!("{kept} … [cut: {cut} bytes]"), true)
}

/// Keep a batch of output lines as logs of the run (bounded), renewing the lease.
/// `from` is the runner's count of the run's lines before this batch: lines it sent
/// before (a retry after an answer that never arrived) are skipped, and lines it could
/// not keep while the API was away are said to be lost. Without `from` every line is new.
pub fn output<D: Database>(
    db: &D,
    id: &RunId,
    lease: &str,
    lines: &[Line],
    from: Option<i64>,
    lease_len: Duration,
) -> Result<OutputAnswer, ApiError> {
    write_transaction(db, |db| {
        let (beat, already, received) = renew(db, id, lease, lease_len)?;
        let len = lines.len() as i64;
        let (skip, lost, now_received) = match from {
            None => (0, 0, received + len),
            Some(from) => (
                (received - from).clamp(0, len),
                (from - received).max(0),
                received.max(from + len),
            ),
        };
        let fresh = &lines[skip as usize..];
        // What is written: a line saying what was lost, then the new lines, as
        // (level, stream, text).
        let mut items: Vec<(LogLevel, &str, String, bool)> = Vec::with_capacity(fresh.len() + 1);
        if lost > 0 {
            items.push((
                LogLevel::Warning,
                "marker",
                format!("… {lost} lines lost while the runner could not reach the API"),
                false,
            ));
        }
        for line in fresh {
            let (text, was_cut) = bound_line(&line.text);
            let level = match line.stream {
                Stream::Stdout => LogLevel::Info,
                Stream::Stderr => LogLevel::Warning,
            };
            items.push((level, line.stream.as_str(), text, was_cut));
        }
        let room = usize::try_from((MAX_LINES_PER_RUN - already).max(0)).unwrap_or(0);
        let keep = items.len().min(room);
        let dropped = items.len() - keep;
        let run_id = id;
        let mut cut = 0;
        let mut rows = Vec::with_capacity(keep + 1);
        for (n, (level, stream, text, was_cut)) in items.into_iter().take(keep).enumerate() {
            cut += usize::from(was_cut);
            rows.push(AgentLogRow {
                run_id,
                level,
                log_type: OUTPUT_LOG_TYPE,
                message: text,
                details: serde_json::json!({ "output": stream, "seq": already + n as i64 + 1 })
                    .to_string(),
            });
        }
        let mut written = already + keep as i64;
        // The first batch that overflows says so, once (the marker takes the count past
        // the cap, so later batches drop without another).
        if dropped > 0 && written == MAX_LINES_PER_RUN {
            rows.push(AgentLogRow {
                run_id,
                level: LogLevel::Warning,
                log_type: OUTPUT_LOG_TYPE,
                message: format!("… output over {MAX_LINES_PER_RUN} lines: the rest is not kept"),
                details: serde_json::json!({"output": "marker", "seq": written + 1}).to_string(),
            });
            written += 1;
        }
        if !rows.is_empty() {
            insert_agent_rows(db, &rows, &now_rfc3339())?;
        }
        db.execute(
            "UPDATE dispatches SET output_lines = ?2, output_received = ?3 WHERE run_id = ?1",
            &[id.into(), written.into(), now_received.into()],
        )?;
        Ok(OutputAnswer {
            kept: keep,
            cut,
            dropped,
            duplicates: skip as usize,
            cancelled: beat.cancelled,
        })
    })
}

/// The run's last output lines, oldest first.
fn tail<D: Database>(db: &D, id: &RunId) -> Result<Vec<String>, DbError> {
    let mut rows = db.execute(
        "SELECT message FROM agent_logs WHERE agent_id = ?1 AND log_type = ?2 \
         AND json_extract(details, '$.output') IN ('stdout', 'stderr') \
         ORDER BY created_at DESC, id DESC LIMIT ?3",
        &[
            id.into(),
            OUTPUT_LOG_TYPE.as_str().into(),
            TAIL_LINES.into(),
        ],
    )?;
    let mut lines: Vec<String> = rows
        .iter()
        .map(|mut r| r.text(0))
        .collect::<Result<_, _>>()?;
    lines.reverse();
    Ok(lines)
}

/// The end of a dispatched run, as its runner reports it: exit code 0 (and no error)
/// completes the run, anything else fails it with what happened and the last lines; a
/// run already final keeps its status. The same report again answers the run, changing
/// nothing.
pub fn exit<D: Database>(
    db: &D,
    id: &RunId,
    lease: &str,
    exit_code: Option<i64>,
    error: Option<&str>,
) -> Result<Run, ApiError> {
    write_transaction(db, |db| {
        let mut rows = db.execute(
            "SELECT state, lease_id FROM dispatches WHERE run_id = ?1",
            &[id.into()],
        )?;
        let Some(mut row) = rows.first() else {
            return Err(ApiError::not_found(format!(
                "dispatched run {id} not found"
            )));
        };
        let (state, holder) = (row.text(0)?, row.opt_text(1)?);
        if holder.as_deref() != Some(lease) || !(state == "running" || state == "exited") {
            return Err(ApiError::conflict(format!(
                "run {id} is not held under this lease (its dispatch is {state})"
            )));
        }
        if state == "exited" {
            return runs::get(db, id)?.ok_or_else(|| ApiError::not_found("run gone"));
        }
        let now = now_rfc3339();
        db.execute(
            "UPDATE dispatches SET state = 'exited', exit_code = ?2, ended_at = ?3, \
             lease_until = NULL WHERE run_id = ?1",
            &[id.into(), exit_code.into(), now.as_str().into()],
        )?;
        let run = runs::get(db, id)?.ok_or_else(|| ApiError::not_found("run gone"))?;
        if run.status.is_final() {
            return Ok(run);
        }
        let from = run.status;
        if exit_code == Some(0) && error.is_none() {
            return runs::move_status(db, run, from, RunStatus::Completed, None);
        }
        let mut message = match (error, exit_code) {
            (Some(error), _) => error.to_owned(),
            (None, Some(code)) => format!("exited with code {code}"),
            (None, None) => "ended without an exit code".to_owned(),
        };
        let lines = tail(db, id)?;
        if !lines.is_empty() {
            message.push_str("\n--- last output ---\n");
            message.push_str(&lines.join("\n"));
        }
        let message = truncate(&message, runs::MAX_ERROR_MESSAGE);
        runs::move_status(db, run, from, RunStatus::Failed, Some(message))
    })
}
