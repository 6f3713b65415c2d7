//! `bench-ws`: the live feed's latency through the WebSocket sidecar, with many clients.
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

mod clients;
mod connections;
mod measure;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::spawn::{self, Proc, UpApp};
use crate::stats::{pct, sorted, summary};
use crate::usage::{clock_ticks, cpu_between, loadavg, mib, sample};
use clients::reading_client;
use connections::{bytes_sent_to, ConnMonitor, ConnStats};
use measure::{measure, signed_ms, MeasureArgs};

const PORT_RANGE: std::ops::RangeInclusive<u16> = 18200..=18299;
/// How long the API and the sidecar get to stop after SIGTERM.
const GRACE: Duration = Duration::from_secs(5);

#[derive(clap::Args, Debug)]
pub struct Options {
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
    #[command(flatten)]
    app: UpApp,
    /// Seed of the jitter and status choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
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
            bail!("{} not ready at {url} within {within:?}", proc.name());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn mib_text(kb: u64) -> String {
    format!("{:.1} MiB", mib(kb))
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

/// Run `bench-ws`: the two processes, the clients, the measured updates, the report.
pub async fn run(args: Options) -> Result<()> {
    if args.updates == 0 {
        bail!("--updates must be at least 1");
    }
    let binary = args
        .orchestrator
        .clone()
        .unwrap_or_else(spawn::default_binary);
    let (manifest, runtime_config) = args.app.paths();
    spawn::require(&binary)?;
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
    let ports = spawn::free_ports(PORT_RANGE, 2)?;
    let (api_port, ws_port) = (ports[0], ports[1]);
    let api = format!("http://127.0.0.1:{api_port}");
    let ws_url = format!("ws://127.0.0.1:{ws_port}/ws/agent-status");
    let mut api_proc = Proc::spawn(
        "API (orchestrator up)",
        spawn::up(&binary, dir.path(), &manifest, &runtime_config, api_port)
            .env("DATABASE_PATH", dir.path().join("bench.db")),
        GRACE,
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
        spawn::orchestrator(&binary, dir.path())
            .arg("sidecar")
            .arg("--upstream")
            .arg(&api)
            .arg("--listen")
            .arg(format!("127.0.0.1:{ws_port}")),
        GRACE,
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
        mib_text(side_idle.rss_kb),
        mib_text(side_connected.rss_kb),
        connected,
        mib_text(side_updated.rss_kb),
        mib_text(side_end.hwm_kb.max(side_updated.hwm_kb)),
    );
    println!(
        "sidecar CPU: connect phase {c_secs:.2} s in {c_wall:.2} s ({c_pct:.1} % of a core); update phase {u_secs:.2} s in {u_wall:.2} s ({u_pct:.1} %)"
    );
    let (a_secs, a_wall, a_pct) = cpu_between(&api_connected, &api_updated, ticks);
    let (ac_secs, _, ac_pct) = cpu_between(&api_idle, &api_connected, ticks);
    println!(
        "API CPU: connect phase {ac_secs:.2} s ({ac_pct:.1} %); update phase {a_secs:.2} s in {a_wall:.2} s ({a_pct:.1} %); VmRSS {}, VmHWM {}",
        mib_text(api_updated.rss_kb),
        mib_text(api_updated.hwm_kb)
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
