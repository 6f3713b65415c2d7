//! One claimed run, from start to reported exit: the argv (never a shell) in its own
//! process group if allowed, its output streamed, heartbeats, its timeout, a cancel or a
//! stopping runner ending the group, then the rest of the output and the exit.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value as Json};
use tokio::process::Command;
use tokio::sync::{mpsc, watch, Mutex};
use tokio::time::Instant;

use super::api::{report_exit, Api, Backoff, Beat, Claim, Sent, STOPPING_TRIES};
use super::group::terminate_group;
use super::output::{flush, read_lines, Pending, Told, BUFFERED_LINES, FLUSH_EVERY};
use super::{is_allowed, RunnerConfig};

/// The longest time between two heartbeats.
const HEARTBEAT_MAX: Duration = Duration::from_secs(2);

/// Why the runner ended a process itself.
#[derive(Debug, Clone, PartialEq)]
enum Ending {
    Cancelled,
    TimedOut(u64),
    /// The run is no longer this runner's (lost, deleted).
    Gone,
    Stopped,
}

pub(super) async fn run_one(
    api: &Api,
    config: &RunnerConfig,
    claim: Claim,
    stopping: watch::Receiver<bool>,
) {
    let run_id = claim.run.id.clone();
    let base = format!("/api/runner/runs/{run_id}");
    let lease = claim.lease.clone();
    let Some(program) = claim.argv.first().cloned() else {
        report_exit(
            api,
            &base,
            &lease,
            None,
            Some("the run has an empty argv".into()),
            &stopping,
        )
        .await;
        return;
    };
    if !is_allowed(&config.allow, &program) {
        tracing::warn!(program, "not allowed: never started");
        let error = format!(
            "program {program} is not allowed on runner {} (allowed: {})",
            config.name,
            config.allow.join(", ")
        );
        report_exit(api, &base, &lease, None, Some(error), &stopping).await;
        return;
    }
    let mut command = Command::new(&program);
    command
        .args(&claim.argv[1..])
        .envs(&claim.env)
        .env("ORCHESTRATOR_URL", &config.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    if let Some(token) = &config.token {
        command.env("ORCHESTRATOR_API_TOKEN", token);
    }
    if let Some(dir) = claim.working_dir.as_deref().filter(|d| !d.is_empty()) {
        command.current_dir(dir);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            tracing::warn!(program, %err, "cannot start");
            let error = format!("cannot start {program}: {err}");
            report_exit(api, &base, &lease, None, Some(error), &stopping).await;
            return;
        }
    };
    let pid = child.id().map(|p| p as i32).unwrap_or(0);
    tracing::info!(pid, argv = ?claim.argv, "started");

    // stdout and stderr into one channel, in arrival order.
    let (lines_tx, mut lines_rx) = mpsc::channel::<Json>(1024);
    let mut readers = tokio::task::JoinSet::new();
    if let Some(out) = child.stdout.take() {
        readers.spawn(read_lines(out, "stdout", lines_tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        readers.spawn(read_lines(err, "stderr", lines_tx.clone()));
    }
    drop(lines_tx);

    let pending = Arc::new(Mutex::new(Pending::default()));
    // What the output answers said: cancelled (Stop), or the run is no longer ours.
    let (gone_tx, mut gone) = watch::channel(Told::Nothing);
    // Collect lines (bounded) as they come.
    let collector = {
        let pending = pending.clone();
        tokio::spawn(async move {
            while let Some(line) = lines_rx.recv().await {
                let mut p = pending.lock().await;
                if p.lines.len() >= BUFFERED_LINES {
                    p.lines.pop_front();
                    p.first += 1;
                }
                p.lines.push_back(line);
            }
        })
    };
    // Send output every FLUSH_EVERY; a 404/409 means the run is gone. Stopped between
    // batches, never in the middle of one.
    let (sender_stop, mut sender_stopping) = watch::channel(false);
    let sender = {
        let (api, base, lease, pending, gone_tx) = (
            api.clone(),
            base.clone(),
            lease.clone(),
            pending.clone(),
            gone_tx.clone(),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = sender_stopping.changed() => return,
                }
                // Not taken: the next tick tries again (the lines stay buffered).
                flush(&api, &base, &lease, &pending, &gone_tx).await;
            }
        })
    };

    // A third of the lease, and at most 2 s: the heartbeat's answer is how a Stop reaches
    // a quiet process (a talkative one hears it in its output answers).
    let heartbeat_every = (Duration::from_secs(claim.lease_secs.max(1)) / 3).min(HEARTBEAT_MAX);
    let mut heartbeat = tokio::time::interval_at(Instant::now() + heartbeat_every, heartbeat_every);
    let timeout = claim
        .timeout_secs
        .map(|s| Instant::now() + Duration::from_secs(s));
    let mut waiting = stopping.clone();
    let mut ending: Option<Ending> = None;
    let status = loop {
        let mut beat_due = false;
        tokio::select! {
            status = child.wait() => break status,
            _ = heartbeat.tick() => beat_due = true,
            _ = sleep_until(timeout) => {
                ending = Some(Ending::TimedOut(claim.timeout_secs.unwrap_or(0)));
            }
            _ = waiting.changed() => {
                if *waiting.borrow() {
                    ending = Some(Ending::Stopped);
                }
            }
            _ = gone.changed() => {
                let told = *gone.borrow();
                match told {
                    Told::Cancelled => ending = Some(Ending::Cancelled),
                    Told::Gone => ending = Some(Ending::Gone),
                    Told::Nothing => {}
                }
            }
        }
        if beat_due {
            let body = json!({ "lease": lease });
            let url = format!("{base}/heartbeat");
            match api.post::<Beat>(&url, &body, Duration::from_secs(5)).await {
                Sent::Ok(beat) if beat.cancelled => ending = Some(Ending::Cancelled),
                Sent::Ok(_) => {}
                Sent::Gone(why) => {
                    tracing::warn!(%why, "the run is no longer this runner's");
                    ending = Some(Ending::Gone);
                }
                Sent::Retry(why) => {
                    tracing::warn!(%why, "heartbeat failed; the process keeps running")
                }
            }
        }
        if let Some(why) = &ending {
            tracing::info!(pid, reason = ?why, "ending the process group");
            break terminate_group(&mut child, pid, config.kill_grace).await;
        }
    };
    // The pipes close when the group is gone; a leftover process that holds them open
    // costs at most a moment.
    let drained = tokio::time::timeout(Duration::from_secs(2), async {
        while readers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        readers.abort_all();
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), collector).await;
    let _ = sender_stop.send(true);
    let _ = sender.await;
    let status = match status {
        Ok(status) => Some(status),
        Err(err) => {
            tracing::error!(%err, "cannot wait for the process");
            None
        }
    };
    tracing::info!(pid, ?status, reason = ?ending, "process ended");
    if ending == Some(Ending::Gone) {
        return;
    }
    // The rest of the output, then the exit: both sent until the API takes them.
    let mut backoff = Backoff::new();
    let mut failures = 0;
    loop {
        let empty = {
            let p = pending.lock().await;
            p.lines.is_empty()
        };
        if empty {
            break;
        }
        if flush(api, &base, &lease, &pending, &gone_tx).await {
            continue;
        }
        if *gone_tx.borrow() == Told::Gone {
            return;
        }
        failures += 1;
        if *stopping.borrow() && failures >= STOPPING_TRIES {
            break;
        }
        backoff.wait().await;
    }
    let (code, error) = describe(status, ending.as_ref());
    report_exit(api, &base, &lease, code, error, &stopping).await;
}

/// The exit code and the words of a process's end.
fn describe(status: Option<ExitStatus>, ending: Option<&Ending>) -> (Option<i64>, Option<String>) {
    let code = status.and_then(|s| s.code()).map(i64::from);
    let error = match ending {
        Some(Ending::TimedOut(secs)) => Some(format!("timed out after {secs} s")),
        Some(Ending::Cancelled) => Some("cancelled".to_owned()),
        Some(Ending::Stopped) => Some("the runner was stopped".to_owned()),
        Some(Ending::Gone) | None => match status {
            None => Some("the runner lost track of the process".to_owned()),
            Some(s) => s.signal().map(|sig| format!("killed by signal {sig}")),
        },
    };
    (code, error)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
