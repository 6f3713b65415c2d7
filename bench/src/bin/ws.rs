//! `bench-ws`: the live feed's latency through the WebSocket sidecar, with many clients.
//!
//! ```sh
//! cargo run --release -p orchestrator-bench --bin bench-ws -- [--clients 1000] [--updates 200]
//! ```
//!
//! A benchmark command, not a test: bounded in count and time, loopback only. It starts
//! the real `orchestrator up --no-sidecar` on a temporary database and
//! `orchestrator sidecar` as its own process (so its RSS and CPU can be read from
//! `/proc/PID`), both on free ports in 18200–18299. Then it opens `--clients` WebSocket
//! clients to `/ws/agent-status` (each reads continuously and records every
//! `agent_update` it gets) plus one measuring client, creates a definition and a run over
//! HTTP, and `--updates` times: sleeps a random jitter, PATCHes the run to another
//! non-final status and measures the time from the PATCH *response* to the arrival of the
//! matching `agent_update` at the measuring client (timestamped on arrival by a reader
//! task; an update that overtakes the response counts as negative).
//!
//! It prints the latency percentiles, the delivery to all clients, how many clients got
//! every update, the sidecar's memory and CPU, and the number of upstream connections from
//! the sidecar to the API. Exit status 1 when a target (p99 < 100 ms, every client held
//! and complete, one upstream connection while updating) is missed.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

/// Non-final statuses the run moves between.
const STATUSES: [&str; 3] = ["planning", "executing", "reviewing"];
const PORT_RANGE: std::ops::RangeInclusive<u16> = 18200..=18299;

#[derive(Parser, Debug)]
#[command(
    name = "bench-ws",
    about = "PATCH -> agent_update latency through the WebSocket sidecar with many clients"
)]
struct Args {
    /// Concurrent WebSocket clients that read the feed (besides the measuring one).
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Status changes to measure.
    #[arg(long, default_value_t = 200)]
    updates: usize,
    /// Largest random sleep before each PATCH, in milliseconds (uniform from 0), so the
    /// PATCHes are not phase-locked to the API's poll interval.
    #[arg(long, default_value_t = 50)]
    jitter_ms: u64,
    /// Longest wait for one update at the measuring client, in seconds.
    #[arg(long, default_value_t = 5)]
    update_timeout_secs: u64,
    /// Clients connecting at the same time.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// The `orchestrator` binary (default: target/release/orchestrator of this workspace).
    #[arg(long)]
    orchestrator: Option<PathBuf>,
    /// The Spin manifest (default: spin.toml of this workspace).
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// The runtime config (default: runtime-config.toml of this workspace).
    #[arg(long)]
    runtime_config: Option<PathBuf>,
    /// Seed of the jitter and status choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

// ---------------------------------------------------------------------------------------
// Child processes

/// A child process that is stopped (SIGTERM, then SIGKILL after 5 s) when dropped.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn spawn(name: &'static str, command: &mut Command) -> Result<Proc> {
        let child = command
            .spawn()
            .with_context(|| format!("cannot start the {name}: {command:?}"))?;
        Ok(Proc { name, child })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            Some(status) => bail!("the {} exited early: {status}", self.name),
            None => Ok(()),
        }
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: kill(2) with our own child's pid and a valid signal number.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "the {} did not stop within 5 s of SIGTERM; killing it",
            self.name
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `n` ports of `PORT_RANGE` that could be bound just now (from a random start, so two
/// benchmarks started together are unlikely to pick the same ones).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let len = PORT_RANGE.len();
    let start = fastrand::usize(..len);
    let mut held = Vec::new();
    for i in 0..len {
        let port = PORT_RANGE.start() + ((start + i) % len) as u16;
        if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            held.push((port, listener));
            if held.len() == n {
                return Ok(held.into_iter().map(|(p, _)| p).collect());
            }
        }
    }
    bail!("fewer than {n} free ports in {PORT_RANGE:?}")
}

/// A command for the `orchestrator` binary with a clean environment for this run.
fn orchestrator(binary: &Path, dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .current_dir(dir) // no stray .env
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for name in [
        "ORCHESTRATOR_API_TOKEN",
        "HTTP_PORT",
        "WEBSOCKET_PORT",
        "CORS_ORIGINS",
        "HEARTBEAT_SECS",
    ] {
        command.env_remove(name);
    }
    command
}

async fn wait_ready(
    http: &reqwest::Client,
    proc: &mut Proc,
    url: &str,
    ready: impl Fn(&Value) -> bool,
    within: Duration,
) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        proc.check_alive()?;
        if let Ok(response) = http.get(url).send().await {
            if response.status().is_success() {
                if let Ok(body) = response.json::<Value>().await {
                    if ready(&body) {
                        return Ok(());
                    }
                }
            }
        }
        if Instant::now() > deadline {
            bail!("{} not ready at {url} within {within:?}", proc.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// /proc

#[derive(Clone, Copy, Debug)]
struct ProcSample {
    at: Instant,
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
    rss_kb: u64,
    hwm_kb: u64,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

fn sample(pid: u32) -> Result<ProcSample> {
    let at = Instant::now();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    let rest = &stat[stat.rfind(')').context("odd /proc/PID/stat")? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        Ok(fields
            .get(n - 3)
            .context("short /proc/PID/stat")?
            .parse::<u64>()?)
    };
    let cpu_ticks = field(14)? + field(15)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcSample {
        at,
        cpu_ticks,
        rss_kb: kb("VmRSS:"),
        hwm_kb: kb("VmHWM:"),
    })
}

/// CPU seconds and percent of one core between two samples.
fn cpu_between(a: &ProcSample, b: &ProcSample, ticks: f64) -> (f64, f64, f64) {
    let secs = (b.cpu_ticks - a.cpu_ticks) as f64 / ticks;
    let wall = (b.at - a.at).as_secs_f64();
    (secs, wall, 100.0 * secs / wall.max(1e-9))
}

/// Inodes of ESTABLISHED TCP sockets whose remote port is `port`, with their local ports.
fn established_to(port: u16) -> HashMap<u64, u16> {
    let mut found = HashMap::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != "01" {
                continue;
            }
            let port_of = |addr: &str| {
                addr.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if port_of(cols[2]) != Some(port) {
                continue;
            }
            if let (Some(local), Ok(inode)) = (port_of(cols[1]), cols[9].parse::<u64>()) {
                found.insert(inode, local);
            }
        }
    }
    found
}

/// Local ports of the ESTABLISHED connections from process `pid` to `port`.
fn connections_to(pid: u32, port: u16) -> Vec<u16> {
    let sockets = established_to(port);
    if sockets.is_empty() {
        return Vec::new();
    }
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut ports = Vec::new();
    for entry in dir.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
            .and_then(|s| s.parse::<u64>().ok())
        {
            if let Some(local) = sockets.get(&inode) {
                ports.push(*local);
            }
        }
    }
    ports
}

/// `bytes_sent` per local port of the ESTABLISHED connections to `port`, from `ss -tni`
/// (None when `ss` is not there).
fn bytes_sent_to(port: u16) -> Option<HashMap<u16, u64>> {
    let output = Command::new("ss")
        .args(["-tniH", "state", "established"])
        .arg(format!("( dport = :{port} )"))
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut sent = HashMap::new();
    let mut local: Option<u16> = None;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            // "Recv-Q Send-Q Local:Port Peer:Port": the first address is ours.
            local = line
                .split_whitespace()
                .find(|t| t.contains(':'))
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok());
            if let Some(local) = local {
                sent.insert(local, 0);
            }
        } else if let Some(local) = local {
            if let Some(n) = line
                .split_whitespace()
                .find_map(|t| t.strip_prefix("bytes_sent:"))
                .and_then(|n| n.parse().ok())
            {
                sent.insert(local, n);
            }
        }
    }
    Some(sent)
}

/// What the connection monitor saw in one phase.
#[derive(Default, Clone, Debug)]
struct ConnStats {
    samples: usize,
    max_concurrent: usize,
    min_concurrent: Option<usize>,
    distinct: BTreeSet<u16>,
}

/// Samples the sidecar's upstream connections every 100 ms into the current phase's
/// stats until stopped.
struct ConnMonitor {
    phase: Arc<Mutex<Vec<ConnStats>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ConnMonitor {
    fn start(pid: u32, port: u16) -> ConnMonitor {
        let phase = Arc::new(Mutex::new(vec![ConnStats::default()]));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let phase = phase.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let ports = connections_to(pid, port);
                    {
                        let mut phases = phase.lock().unwrap();
                        let stats = phases.last_mut().unwrap();
                        stats.samples += 1;
                        stats.max_concurrent = stats.max_concurrent.max(ports.len());
                        stats.min_concurrent = Some(
                            stats
                                .min_concurrent
                                .map_or(ports.len(), |m| m.min(ports.len())),
                        );
                        stats.distinct.extend(ports);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        ConnMonitor {
            phase,
            stop,
            thread: Some(thread),
        }
    }

    /// Closes the current phase and starts a new one.
    fn next_phase(&self) {
        self.phase.lock().unwrap().push(ConnStats::default());
    }

    fn finish(mut self) -> Vec<ConnStats> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.phase.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------
// Clients

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    cursor: Option<u64>,
}

/// What one reading client saw.
struct ClientLog {
    /// `agent_update` cursors and their arrival, in arrival order.
    updates: Vec<(u64, Instant)>,
    /// Connection still open when the benchmark stopped reading.
    held: bool,
    error: Option<String>,
}

/// One reading client: connects, reports when its first message (the snapshot) is in,
/// then records every `agent_update` until `stop`.
async fn reading_client(
    url: String,
    permits: Arc<Semaphore>,
    connected: mpsc::UnboundedSender<Result<(), String>>,
    last_cursor: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> ClientLog {
    let mut log = ClientLog {
        updates: Vec::with_capacity(256),
        held: false,
        error: None,
    };
    let ws = {
        let _permit = permits.acquire().await.expect("semaphore never closed");
        let attempt = async {
            let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .map_err(|e| format!("connect: {e}"))?;
            match ws.next().await {
                Some(Ok(Message::Text(text))) if text.contains(r#""type":"snapshot""#) => Ok(ws),
                Some(Ok(other)) => Err(format!("first message is not a snapshot: {other:?}")),
                Some(Err(e)) => Err(format!("read: {e}")),
                None => Err("closed before the snapshot".to_string()),
            }
        };
        match tokio::time::timeout(Duration::from_secs(30), attempt).await {
            Ok(Ok(ws)) => ws,
            failed => {
                let error = match failed {
                    Ok(Err(error)) => error,
                    _ => "no snapshot within 30 s".to_string(),
                };
                let _ = connected.send(Err(error.clone()));
                log.error = Some(error);
                return log;
            }
        }
    };
    let _ = connected.send(Ok(()));
    let (_sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => {
                log.held = true;
                return log;
            }
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let at = Instant::now();
                    if let Ok(head) = serde_json::from_str::<Head>(&text) {
                        if head.kind == "agent_update" {
                            if let Some(cursor) = head.cursor {
                                log.updates.push((cursor, at));
                                last_cursor.store(cursor, Ordering::Release);
                            }
                        }
                    }
                }
                Some(Ok(_)) => {} // pings (answered by tungstenite), pongs
                Some(Err(e)) => {
                    log.error = Some(format!("read: {e}"));
                    return log;
                }
                None => {
                    log.error = Some("closed by the sidecar".into());
                    return log;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The measuring side (its own thread and runtime, so the readers' wake-ups don't delay
// its timestamps)

struct Measurement {
    /// Cursor of the run's creation event.
    created_cursor: u64,
    samples: Vec<UpdateSample>,
}

struct UpdateSample {
    cursor: u64,
    /// When the PATCH response was in.
    t0: Instant,
    latency_ms: f64,
    patch_rtt_ms: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn signed_ms(at: Instant, from: Instant) -> f64 {
    if at >= from {
        ms(at - from)
    } else {
        -ms(from - at)
    }
}

/// Connects the measuring client, says so on `connected`, waits for `go`, then creates the
/// run and measures the updates.
async fn measure(
    api: String,
    ws_url: String,
    args: MeasureArgs,
    connected: oneshot::Sender<()>,
    go: oneshot::Receiver<()>,
) -> Result<Measurement> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let (ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .context("measuring client: cannot connect")?;
    let (_sink, mut stream) = ws.split();
    // Every message timestamped on arrival.
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, String)>();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Text(text) = message {
                if tx.send((Instant::now(), text)).is_err() {
                    break;
                }
            }
        }
    });
    let first = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .context("measuring client: no snapshot within 30 s")?
        .context("measuring client: closed before the snapshot")?;
    if !first.1.contains(r#""type":"snapshot""#) {
        bail!(
            "measuring client: first message is not a snapshot: {}",
            first.1
        );
    }
    let _ = connected.send(());
    go.await.context("the benchmark gave up")?;

    let name = format!("bench-ws-{}", fastrand::u64(..));
    let definition: Value = http
        .post(format!("{api}/api/agents"))
        .json(&json!({"name": name, "agent_type": "utility"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let definition_id = definition["id"].as_str().context("definition without id")?;
    let run: Value = http
        .post(format!("{api}/api/runtime/agents"))
        .json(&json!({"orchestrator_agent_id": definition_id, "session_id": "bench-ws"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let run_id = run["id"].as_str().context("run without id")?.to_string();
    let mut current = run["status"].as_str().unwrap_or("initializing").to_string();
    let timeout = Duration::from_secs(args.update_timeout_secs);
    let created_cursor = wait_for(&mut rx, &run_id, &current, Instant::now() + timeout)
        .await
        .context("the run's creation event did not arrive")?
        .1;

    let mut rng = fastrand::Rng::with_seed(args.seed);
    let mut samples = Vec::with_capacity(args.updates);
    for i in 0..args.updates {
        let jitter = Duration::from_micros(rng.u64(..=args.jitter_ms * 1000));
        tokio::time::sleep(jitter).await;
        let choices: Vec<&str> = STATUSES.iter().copied().filter(|s| *s != current).collect();
        let target = choices[rng.usize(..choices.len())];
        let sent = Instant::now();
        let response = http
            .patch(format!("{api}/api/runtime/agents/{run_id}"))
            .json(&json!({"status": target}))
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        let t0 = Instant::now();
        if !status.is_success() {
            bail!(
                "PATCH {i} -> {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        current = target.to_string();
        let (at, cursor) = wait_for(&mut rx, &run_id, target, t0 + timeout)
            .await
            .with_context(|| format!("update {i} ({target})"))?;
        samples.push(UpdateSample {
            cursor,
            t0,
            latency_ms: signed_ms(at, t0),
            patch_rtt_ms: ms(t0 - sent),
        });
    }
    reader.abort();
    Ok(Measurement {
        created_cursor,
        samples,
    })
}

#[derive(Clone, Copy)]
struct MeasureArgs {
    updates: usize,
    jitter_ms: u64,
    update_timeout_secs: u64,
    seed: u64,
}

/// The arrival time and cursor of the next `agent_update` of `id` with `status`.
async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<(Instant, String)>,
    id: &str,
    status: &str,
    deadline: Instant,
) -> Result<(Instant, u64)> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (at, text) = tokio::time::timeout(left, rx.recv())
            .await
            .map_err(|_| anyhow!("no agent_update with status {status} in time"))?
            .context("the measuring client's socket closed")?;
        let message: Value = serde_json::from_str(&text)?;
        if message["type"] == "agent_update"
            && message["data"]["id"] == id
            && message["data"]["status"] == status
        {
            let cursor = message["cursor"]
                .as_u64()
                .context("update without cursor")?;
            return Ok((at, cursor));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Statistics and output

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[k]
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(|a, b| a.total_cmp(b));
    values
}

fn summary(values: &[f64]) -> String {
    format!(
        "p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  (min {:.1}, mean {:.1}, n={})",
        pct(values, 50.0),
        pct(values, 90.0),
        pct(values, 99.0),
        values.last().copied().unwrap_or(f64::NAN),
        values.first().copied().unwrap_or(f64::NAN),
        values.iter().sum::<f64>() / values.len().max(1) as f64,
        values.len()
    )
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

// ---------------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.updates == 0 {
        bail!("--updates must be at least 1");
    }
    let root = workspace();
    let binary = args.orchestrator.clone().unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"))
            .join("release/orchestrator")
    });
    let manifest = args
        .manifest
        .clone()
        .unwrap_or_else(|| root.join("spin.toml"));
    let runtime_config = args
        .runtime_config
        .clone()
        .unwrap_or_else(|| root.join("runtime-config.toml"));
    if !binary.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release -p orchestrator-cli` (or pass --orchestrator)",
            binary.display()
        );
    }
    let limit = orchestrator_sidecar::raise_open_file_limit()
        .context("cannot raise the open-file limit")?;
    if limit < args.clients as u64 + 64 {
        bail!(
            "the open-file limit is {limit}: too low for {} clients",
            args.clients
        );
    }
    let ticks = clock_ticks();
    let load_start = loadavg();

    // --- the two processes
    let dir = tempfile::tempdir()?;
    let ports = free_ports(2)?;
    let (api_port, ws_port) = (ports[0], ports[1]);
    let api = format!("http://127.0.0.1:{api_port}");
    let ws_url = format!("ws://127.0.0.1:{ws_port}/ws/agent-status");
    let mut api_proc = Proc::spawn(
        "API (orchestrator up)",
        orchestrator(&binary, dir.path())
            .env("DATABASE_PATH", dir.path().join("bench.db"))
            .arg("up")
            .arg("--no-sidecar")
            .arg("-f")
            .arg(&manifest)
            .arg("--runtime-config-file")
            .arg(&runtime_config)
            .arg("--listen")
            .arg(format!("127.0.0.1:{api_port}")),
    )?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    wait_ready(
        &http,
        &mut api_proc,
        &format!("{api}/api/events/snapshot"),
        |_| true,
        Duration::from_secs(120),
    )
    .await?;
    let mut sidecar = Proc::spawn(
        "sidecar (orchestrator sidecar)",
        orchestrator(&binary, dir.path())
            .arg("sidecar")
            .arg("--upstream")
            .arg(&api)
            .arg("--listen")
            .arg(format!("127.0.0.1:{ws_port}")),
    )?;
    wait_ready(
        &http,
        &mut sidecar,
        &format!("http://127.0.0.1:{ws_port}/health"),
        |body| body["upstream"] == "connected",
        Duration::from_secs(30),
    )
    .await?;
    let sidecar_pid = sidecar.pid();
    let api_pid = api_proc.pid();
    println!(
        "bench-ws: {} clients + 1 measuring, {} updates, jitter 0..{} ms; {} CPUs, load average {}",
        args.clients,
        args.updates,
        args.jitter_ms,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_start
    );
    println!("  API     pid {api_pid}: {api} (orchestrator up --no-sidecar, temp database)");
    println!("  sidecar pid {sidecar_pid}: {ws_url}");

    let monitor = ConnMonitor::start(sidecar_pid, api_port);
    let side_idle = sample(sidecar_pid)?;
    let api_idle = sample(api_pid)?;

    // --- connect the reading clients
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let (connected_tx, mut connected_rx) = mpsc::unbounded_channel();
    let mut cursors = Vec::with_capacity(args.clients);
    let mut tasks = Vec::with_capacity(args.clients);
    let connect_started = Instant::now();
    for _ in 0..args.clients {
        let last = Arc::new(AtomicU64::new(0));
        cursors.push(last.clone());
        tasks.push(tokio::spawn(reading_client(
            ws_url.clone(),
            permits.clone(),
            connected_tx.clone(),
            last,
            stop_rx.clone(),
        )));
    }
    drop(connected_tx);
    let mut connected = 0usize;
    let mut connect_errors: HashMap<String, usize> = HashMap::new();
    while let Some(result) = connected_rx.recv().await {
        match result {
            Ok(()) => connected += 1,
            Err(error) => *connect_errors.entry(error).or_default() += 1,
        }
        if connected + connect_errors.values().sum::<usize>() == args.clients {
            break;
        }
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    println!(
        "connect: {connected}/{} clients connected and got their snapshot in {connect_secs:.2} s",
        args.clients
    );
    for (error, n) in &connect_errors {
        println!("  {n} clients failed: {error}");
    }

    // --- the measuring client connects; then the measured updates. On a thread and
    // runtime of its own, so the readers' wake-ups don't delay its timestamps.
    let measure_args = MeasureArgs {
        updates: args.updates,
        jitter_ms: args.jitter_ms,
        update_timeout_secs: args.update_timeout_secs,
        seed: args.seed,
    };
    let (measuring_tx, measuring_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel();
    let measuring = {
        let api = api.clone();
        let ws_url = ws_url.clone();
        tokio::task::spawn_blocking(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(measure(api, ws_url, measure_args, measuring_tx, go_rx))
        })
    };
    if measuring_rx.await.is_err() {
        // It failed before connecting: its error says why.
        measuring.await??;
        bail!("the measuring client ended before connecting");
    }
    let health: Value = http
        .get(format!("http://127.0.0.1:{ws_port}/health"))
        .send()
        .await?
        .json()
        .await?;
    let side_connected = sample(sidecar_pid)?;
    let api_connected = sample(api_pid)?;
    let self_connected = sample(std::process::id())?;
    let sent_before = bytes_sent_to(api_port);
    monitor.next_phase();
    let _ = go_tx.send(());
    let measured = measuring.await?;
    let side_updated = sample(sidecar_pid)?;
    let api_updated = sample(api_pid)?;
    let self_updated = sample(std::process::id())?;
    let sent_after = bytes_sent_to(api_port);
    let conn_phases = monitor.finish();
    let load_end = loadavg();
    let m = measured?;

    // --- let the readers drain, then stop them
    let last_cursor = m.samples.last().map_or(m.created_cursor, |s| s.cursor);
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < drain_deadline
        && cursors
            .iter()
            .any(|c| c.load(Ordering::Acquire) < last_cursor)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send_replace(true);
    let mut logs = Vec::with_capacity(tasks.len());
    for task in tasks {
        logs.push(task.await?);
    }
    let side_end = sample(sidecar_pid)?;
    drop(sidecar);
    drop(api_proc);

    // --- results
    let latencies = sorted(m.samples.iter().map(|s| s.latency_ms).collect());
    let rtts = sorted(m.samples.iter().map(|s| s.patch_rtt_ms).collect());
    println!(
        "update latency, PATCH response -> agent_update at the measuring client (ms): {}",
        summary(&latencies)
    );
    println!("PATCH round trip (ms): {}", summary(&rtts));

    // Every reader must have the creation event and every measured update, in order, once.
    let expected: Vec<u64> = std::iter::once(m.created_cursor)
        .chain(m.samples.iter().map(|s| s.cursor))
        .collect();
    let mut complete = 0usize;
    let mut held = 0usize;
    let mut incomplete_examples = Vec::new();
    let mut per_update_last: Vec<f64> = vec![f64::NEG_INFINITY; m.samples.len()];
    let mut all_deliveries = Vec::with_capacity(logs.len() * m.samples.len());
    for (i, log) in logs.iter().enumerate() {
        held += usize::from(log.held);
        let got: Vec<u64> = log.updates.iter().map(|(c, _)| *c).collect();
        let got_expected: Vec<u64> = got
            .iter()
            .copied()
            .filter(|c| *c >= m.created_cursor)
            .collect();
        if got_expected == expected {
            complete += 1;
        } else if log.error.is_none() && incomplete_examples.len() < 5 {
            incomplete_examples.push(format!(
                "client {i}: {} of {} expected updates",
                got_expected.len(),
                expected.len()
            ));
        }
        let arrival: HashMap<u64, Instant> = log.updates.iter().copied().collect();
        for (k, s) in m.samples.iter().enumerate() {
            if let Some(at) = arrival.get(&s.cursor) {
                let l = signed_ms(*at, s.t0);
                per_update_last[k] = per_update_last[k].max(l);
                all_deliveries.push(l);
            }
        }
    }
    let per_update_last = sorted(per_update_last);
    let all_deliveries = sorted(all_deliveries);
    println!(
        "delivery to every reading client (ms, each client's own arrival; {} deliveries): {}",
        all_deliveries.len(),
        summary(&all_deliveries)
    );
    println!(
        "  per update, until the last of the {} clients had it (ms): {}",
        args.clients,
        summary(&per_update_last)
    );
    println!(
        "clients that received every update (the run's creation + {} changes, in order, once): {complete}/{}; still connected at the end: {held}/{}",
        m.samples.len(),
        args.clients,
        args.clients
    );
    for example in &incomplete_examples {
        println!("  {example}");
    }
    let mut errors: HashMap<&str, usize> = HashMap::new();
    for log in &logs {
        if let Some(e) = &log.error {
            *errors.entry(e.as_str()).or_default() += 1;
        }
    }
    for (error, n) in &errors {
        println!("  {n} clients: {error}");
    }
    println!(
        "sidecar /health with every client connected: clients {}, upstream {}",
        health["clients"], health["upstream"]
    );

    let (c_secs, c_wall, c_pct) = cpu_between(&side_idle, &side_connected, ticks);
    let (u_secs, u_wall, u_pct) = cpu_between(&side_connected, &side_updated, ticks);
    println!(
        "sidecar memory: VmRSS {} before the clients, {} with {} clients, {} after the updates; VmHWM {}",
        mib(side_idle.rss_kb),
        mib(side_connected.rss_kb),
        connected,
        mib(side_updated.rss_kb),
        mib(side_end.hwm_kb.max(side_updated.hwm_kb)),
    );
    println!(
        "sidecar CPU: connect phase {c_secs:.2} s in {c_wall:.2} s ({c_pct:.1} % of a core); update phase {u_secs:.2} s in {u_wall:.2} s ({u_pct:.1} %)"
    );
    let (a_secs, a_wall, a_pct) = cpu_between(&api_connected, &api_updated, ticks);
    let (ac_secs, _, ac_pct) = cpu_between(&api_idle, &api_connected, ticks);
    println!(
        "API CPU: connect phase {ac_secs:.2} s ({ac_pct:.1} %); update phase {a_secs:.2} s in {a_wall:.2} s ({a_pct:.1} %); VmRSS {}, VmHWM {}",
        mib(api_updated.rss_kb),
        mib(api_updated.hwm_kb)
    );
    let (b_secs, b_wall, b_pct) = cpu_between(&self_connected, &self_updated, ticks);
    println!(
        "this benchmark's own CPU (the {} reading clients) in the update phase: {b_secs:.2} s in {b_wall:.2} s ({b_pct:.1} %)",
        args.clients
    );
    let describe = |s: &ConnStats| {
        format!(
            "{}..{} ESTABLISHED at a time, {} distinct ({} samples)",
            s.min_concurrent.unwrap_or(0),
            s.max_concurrent,
            s.distinct.len(),
            s.samples
        )
    };
    let connect_conns = conn_phases.first().cloned().unwrap_or_default();
    let update_conns = conn_phases.get(1).cloned().unwrap_or_default();
    println!(
        "upstream connections sidecar -> API :{api_port}: connect phase {}; update phase {}",
        describe(&connect_conns),
        describe(&update_conns)
    );
    // Which of the sidecar's connections carried requests while updating (the others
    // were idle, e.g. kept in a pool).
    let carrying = match (&sent_before, &sent_after) {
        (Some(before), Some(after)) => {
            let ports: Vec<(u16, u64)> = update_conns
                .distinct
                .iter()
                .filter_map(|p| {
                    let sent = after.get(p)?.saturating_sub(*before.get(p).unwrap_or(&0));
                    (sent > 0).then_some((*p, sent))
                })
                .collect();
            println!(
                "  of those, carrying requests in the update phase: {} ({})",
                ports.len(),
                ports
                    .iter()
                    .map(|(p, n)| format!("local port {p}: {n} bytes sent"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Some(ports.len())
        }
        _ => {
            println!("  (ss not available: cannot tell busy connections from idle ones)");
            None
        }
    };
    println!("load average: {load_start} at the start, {load_end} after the updates");

    let p99 = pct(&latencies, 99.0);
    let targets = [
        (format!("p99 {p99:.1} ms < 100 ms"), p99 < 100.0),
        (
            format!(
                "{} clients held and complete ({complete} complete, {held} held)",
                args.clients
            ),
            complete == args.clients && held == args.clients,
        ),
        (
            format!(
                "one upstream connection while updating ({} carrying requests; {} distinct ESTABLISHED, at most {} at a time)",
                carrying.map_or("?".to_string(), |n| n.to_string()),
                update_conns.distinct.len(),
                update_conns.max_concurrent
            ),
            carrying.unwrap_or(update_conns.distinct.len()) == 1,
        ),
    ];
    let mut all_ok = true;
    for (what, ok) in &targets {
        println!("target: {what}: {}", verdict(*ok));
        all_ok &= ok;
    }
    if !all_ok {
        std::process::exit(1);
    }
    Ok(())
}
