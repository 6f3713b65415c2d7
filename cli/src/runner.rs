//! `orchestrator runner`: claims dispatched runs from the API and runs their commands
//! (docs/dispatch.md). A native follower of the API, as the sidecar is: it knows only the
//! runner protocol's JSON, so it runs beside any Spin host and many runners can share one
//! API.
//!
//! Each run: the argv (never a shell) in its own process group, with ORCHESTRATOR_URL,
//! ORCHESTRATOR_RUN_ID, ORCHESTRATOR_SESSION_ID (and ORCHESTRATOR_API_TOKEN when the
//! runner has one); stdout and stderr streamed as batched output; heartbeats; its
//! `timeout_secs` enforced; a cancel ends the group (SIGTERM, then SIGKILL after a grace);
//! the exit reported. A program not in `--allow` is never started. While the API cannot be
//! reached, processes keep running, their output is kept (bounded) and every report is
//! sent again with a backoff.

use std::collections::VecDeque;
use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch, Mutex, Semaphore};
use tokio::time::Instant;
use tracing::Instrument;

/// `orchestrator runner`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunnerArgs {
    /// Base URL of the API, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    pub url: String,
    /// This runner's name, shown on the runs it claims (default: host name and pid).
    #[arg(long)]
    pub name: Option<String>,
    /// How many processes it runs at once.
    #[arg(long, default_value_t = 1)]
    pub capacity: usize,
    #[command(flatten)]
    pub allow: AllowArgs,
    /// Bearer token for the API.
    #[arg(long, env = "ORCHESTRATOR_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Seconds between SIGTERM and SIGKILL when a run is cancelled or times out.
    #[arg(long, default_value_t = 5)]
    pub kill_grace_secs: u64,
}

/// The allow-list, shared by `runner` and `up --runner`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AllowArgs {
    /// A program this runner may start (repeatable). A run's argv[0] must equal one
    /// exactly or have the same file name; anything else is never started.
    #[arg(long = "allow", value_name = "PROGRAM")]
    pub allow: Vec<String>,
}

/// What a runner needs to run.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub url: String,
    pub name: String,
    pub capacity: usize,
    pub allow: Vec<String>,
    pub token: Option<String>,
    pub kill_grace: Duration,
    /// How long one claim waits on the server (≤ 30 s).
    pub claim_wait: Duration,
}

impl RunnerConfig {
    pub fn new(url: impl Into<String>, allow: Vec<String>) -> Self {
        RunnerConfig {
            url: url.into().trim_end_matches('/').to_owned(),
            name: default_name(),
            capacity: 1,
            allow,
            token: None,
            kill_grace: Duration::from_secs(5),
            claim_wait: Duration::from_secs(25),
        }
    }
}

/// `host-pid`.
fn default_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates, and we stop at the first NUL or the end.
    let host = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "runner".to_owned()
    };
    format!("{host}-{}", std::process::id())
}

/// Whether `program` (a run's argv[0]) is allowed: equal to an entry, or with the same file
/// name as one.
pub fn is_allowed(allow: &[String], program: &str) -> bool {
    let name = |p: &str| {
        Path::new(p)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    };
    allow
        .iter()
        .any(|a| a == program || (name(a).is_some() && name(a) == name(program)))
}

pub async fn run(args: RunnerArgs) -> Result<()> {
    if args.allow.allow.is_empty() {
        bail!("a runner needs at least one --allow PROGRAM: it starts nothing else");
    }
    let mut config = RunnerConfig::new(args.url, args.allow.allow);
    if let Some(name) = args.name {
        config.name = name;
    }
    config.capacity = args.capacity.max(1);
    config.token = args.api_token.filter(|t| !t.is_empty());
    config.kill_grace = Duration::from_secs(args.kill_grace_secs);
    println!(
        "Runner {} following {} (capacity {}, allowed: {})",
        config.name,
        config.url,
        config.capacity,
        config.allow.join(", ")
    );
    serve(config, crate::shutdown::Shutdown::on_signals().wait()).await
}

/// The API as the runner sees it.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

/// How a report fared.
enum Sent<T> {
    Ok(T),
    /// 404 or 409: the run is not (or no longer) this runner's.
    Gone(String),
    /// Anything else (unreachable, 5xx, a 4xx that sending again will not fix is logged
    /// and treated as gone).
    Retry(String),
}

impl Api {
    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Json,
        timeout: Duration,
    ) -> Sent<T> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .json(body)
            .timeout(timeout);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let response = match req.send().await {
            Ok(r) => r,
            Err(err) => return Sent::Retry(format!("{err}")),
        };
        let status = response.status();
        if status.is_success() {
            return match response.json::<T>().await {
                Ok(v) => Sent::Ok(v),
                Err(err) => Sent::Retry(format!("unreadable answer: {err}")),
            };
        }
        let text = response.text().await.unwrap_or_default();
        match status.as_u16() {
            404 | 409 => Sent::Gone(text),
            code if (400..500).contains(&code) && code != 408 && code != 429 => {
                tracing::error!(path, status = code, body = %text, "the API refused a report");
                Sent::Gone(text)
            }
            code => Sent::Retry(format!("HTTP {code}: {text}")),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ClaimAnswer {
    claim: Option<Claim>,
}

#[derive(Debug, Deserialize)]
struct Claim {
    run: ClaimedRun,
    lease: String,
    lease_secs: u64,
    argv: Vec<String>,
    working_dir: Option<String>,
    timeout_secs: Option<u64>,
    env: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct ClaimedRun {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Beat {
    cancelled: bool,
}

/// Backoff for reports and claims while the API is away: 0.5 s doubling to 10 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(Duration::from_millis(500))
    }
    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(10));
    }
}

/// Claim and run until `stop` resolves; then end the running processes (as a cancel
/// does), report them, and return.
pub async fn serve(config: RunnerConfig, stop: impl Future<Output = ()>) -> Result<()> {
    let http = reqwest::Client::builder()
        .build()
        .context("cannot build the HTTP client")?;
    let api = Api {
        http,
        url: config.url.clone(),
        token: config.token.clone(),
    };
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.capacity));
    let (stopping_tx, stopping) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    let mut backoff = Backoff::new();
    loop {
        let permit = tokio::select! {
            _ = &mut stop => break,
            permit = slots.clone().acquire_owned() => permit.expect("never closed"),
        };
        let body = json!({ "runner": config.name, "wait": config.claim_wait.as_secs() });
        let answer = tokio::select! {
            _ = &mut stop => break,
            answer = api.post::<ClaimAnswer>(
                "/api/runner/claim",
                &body,
                config.claim_wait + Duration::from_secs(15),
            ) => answer,
        };
        match answer {
            Sent::Ok(ClaimAnswer { claim: Some(claim) }) => {
                backoff = Backoff::new();
                let (api, config, stopping) = (api.clone(), config.clone(), stopping.clone());
                let span = tracing::info_span!("run", run = %claim.run.id);
                tasks.spawn(
                    async move {
                        run_one(&api, &config, claim, stopping).await;
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
            Sent::Ok(ClaimAnswer { claim: None }) => backoff = Backoff::new(),
            Sent::Gone(why) | Sent::Retry(why) => {
                tracing::warn!(error = %why, "cannot claim; trying again");
                drop(permit);
                tokio::select! {
                    _ = &mut stop => break,
                    _ = backoff.wait() => {}
                }
            }
        }
        // Reap finished tasks so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    tracing::info!("runner stopping: ending its processes");
    let _ = stopping_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// The longest time between two heartbeats.
const HEARTBEAT_MAX: Duration = Duration::from_secs(2);

/// What output answers told the run's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    Nothing,
    Cancelled,
    Gone,
}

/// Why the runner ended a process itself.
#[derive(Debug, Clone, PartialEq)]
enum Ending {
    Cancelled,
    TimedOut(u64),
    /// The run is no longer this runner's (lost, deleted).
    Gone,
    Stopped,
}

/// The longest line the runner reads in one piece (the API cuts further).
const READ_LINE_BYTES: u64 = 64 * 1024;
/// Lines kept while the API cannot take them; older ones are dropped (the API is told by
/// the next batch's `from`, and says so in the run's output).
const BUFFERED_LINES: usize = 10_000;
/// Lines per output request.
const BATCH_LINES: usize = 500;
/// Reports tried while the runner is stopping (it does not wait forever for an API that
/// is going away with it).
const STOPPING_TRIES: u32 = 3;
/// How often output is sent.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Output waiting to be sent. Lines are numbered in the order they were read; `first`
/// is the number of the oldest one kept, which is the `from` of the next batch (the API
/// skips what it has and says what was lost in between).
#[derive(Default)]
struct Pending {
    lines: VecDeque<Json>,
    first: u64,
}

async fn run_one(api: &Api, config: &RunnerConfig, claim: Claim, stopping: watch::Receiver<bool>) {
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

/// Read `pipe` line by line (a line over [`READ_LINE_BYTES`] comes in pieces), as
/// `{"stream", "text"}`; invalid UTF-8 is replaced.
async fn read_lines(pipe: impl AsyncRead + Unpin, stream: &'static str, tx: mpsc::Sender<Json>) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader)
            .take(READ_LINE_BYTES)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while matches!(buf.last(), Some(b'\n' | b'\r')) {
                    buf.pop();
                }
                let text = String::from_utf8_lossy(&buf).into_owned();
                if tx
                    .send(json!({ "stream": stream, "text": text }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Send one batch of pending output; true when it was taken (or there was nothing).
async fn flush(
    api: &Api,
    base: &str,
    lease: &str,
    pending: &Mutex<Pending>,
    gone: &watch::Sender<Told>,
) -> bool {
    let (batch, from) = {
        let p = pending.lock().await;
        let batch: Vec<Json> = p.lines.iter().take(BATCH_LINES).cloned().collect();
        (batch, p.first)
    };
    if batch.is_empty() {
        return true;
    }
    let body = json!({ "lease": lease, "lines": batch, "from": from });
    match api
        .post::<Json>(&format!("{base}/output"), &body, Duration::from_secs(10))
        .await
    {
        Sent::Ok(answer) => {
            // The API has every line before from + len: drop those still kept.
            let upto = from + batch.len() as u64;
            let mut p = pending.lock().await;
            while p.first < upto && p.lines.pop_front().is_some() {
                p.first += 1;
            }
            if answer["cancelled"] == json!(true) {
                gone.send_if_modified(|told| {
                    let first = *told == Told::Nothing;
                    if first {
                        tracing::info!("the run was cancelled");
                        *told = Told::Cancelled;
                    }
                    first
                });
            }
            true
        }
        Sent::Gone(why) => {
            tracing::warn!(%why, "output refused: the run is no longer this runner's");
            let _ = gone.send(Told::Gone);
            false
        }
        Sent::Retry(why) => {
            tracing::warn!(%why, "cannot send output; keeping it");
            false
        }
    }
}

/// Report the end, again with a backoff until the API answers (a runner that lost the API
/// reports when it is back).
async fn report_exit(
    api: &Api,
    base: &str,
    lease: &str,
    exit_code: Option<i64>,
    error: Option<String>,
    stopping: &watch::Receiver<bool>,
) {
    let body = json!({ "lease": lease, "exit_code": exit_code, "error": error });
    let mut backoff = Backoff::new();
    let mut tries = 0;
    loop {
        tries += 1;
        match api
            .post::<Json>(&format!("{base}/exit"), &body, Duration::from_secs(10))
            .await
        {
            Sent::Ok(answer) => {
                tracing::info!(
                    exit_code,
                    error = error.as_deref().unwrap_or(""),
                    status = %answer["run"]["status"],
                    "exit reported"
                );
                return;
            }
            Sent::Gone(why) => {
                tracing::warn!(%why, "exit refused: the run is no longer this runner's");
                return;
            }
            Sent::Retry(why) if *stopping.borrow() && tries >= STOPPING_TRIES => {
                tracing::warn!(%why, "cannot report the exit; the runner is stopping");
                return;
            }
            Sent::Retry(why) => {
                tracing::warn!(%why, "cannot report the exit; trying again");
                backoff.wait().await;
            }
        }
    }
}

/// SIGTERM to the process group, then SIGKILL once `grace` has passed, and wait until no
/// process of the group is left (or the grace after the KILL).
async fn terminate_group(
    child: &mut Child,
    pgid: i32,
    grace: Duration,
) -> std::io::Result<ExitStatus> {
    signal_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    let mut status = None;
    loop {
        if status.is_none() {
            status = child.try_wait()?;
        }
        if status.is_some() && !group_alive(pgid) {
            break;
        }
        if Instant::now() >= deadline {
            signal_group(pgid, libc::SIGKILL);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    match status {
        Some(status) => Ok(status),
        None => child.wait().await,
    }
}

fn signal_group(pgid: i32, signal: i32) {
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Whether any process of group `pgid` exists (zombies included until reaped).
fn group_alive(pgid: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: signal 0 checks existence only.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_allowed_by_exact_name_or_file_name() {
        let allow = vec!["uv".to_owned(), "/usr/bin/python3".to_owned()];
        assert!(is_allowed(&allow, "uv"));
        assert!(is_allowed(&allow, "/usr/local/bin/uv"));
        assert!(is_allowed(&allow, "python3"));
        assert!(is_allowed(&allow, "/usr/bin/python3"));
        assert!(!is_allowed(&allow, "rm"));
        assert!(!is_allowed(&allow, "/bin/sh"));
        assert!(!is_allowed(&allow, "uvx"));
        assert!(!is_allowed(&allow, ""));
        assert!(!is_allowed(&[], "uv"));
    }
}
