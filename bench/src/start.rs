//! `bench-start`: how long `orchestrator up` takes to answer, and what it holds idle.
//!
//! A benchmark command, not a test: loopback only. Each round, for each binary given
//! (alternating, so a comparison sees the same machine), it starts
//! `orchestrator up --no-sidecar` twice on the workspace's `spin.toml`, each time on a
//! fresh temporary database and a free port in 18300–18399:
//!
//! - **first start**: with an empty compile cache (`ORCHESTRATOR_COMPILE_CACHE` set to
//!   a new folder), so every component is compiled;
//! - **second start**: with the cache the first start left.
//!
//! It measures from spawning the process to the first `200` from `GET /health`, then
//! waits `--idle-secs` and reads the process's RSS (total, anonymous, file-backed) from
//! `/proc/PID/status`. After a second start it then puts it under load (unless
//! `--load-secs 0`): seeds it as `bench-http` does, drives `bench-http`'s six endpoints
//! for `--load-secs` each at 32 connections, prints their req/s and p99 and the server's
//! CPU per request, and reads the RSS again: the memory a used server holds. Then it stops
//! it with SIGTERM. A binary that predates the compile
//! cache ignores the variable and compiles on both starts. It prints every start, then
//! the minimum, median and maximum per binary and start, with the load average before
//! and after: the machine is shared, so quote medians and read the load beside them.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::http::Endpoint;
use crate::load;
use crate::seed::{self, SeedCounts};
use crate::spawn::{self, Proc, UpApp};
use crate::stats::spread;
use crate::usage::{clock_ticks, loadavg, memory, mib, sample, Memory};

const PORT_RANGE: std::ops::RangeInclusive<u16> = 18300..=18399;

#[derive(clap::Args, Debug)]
pub struct Options {
    /// Rounds; each starts every binary twice (empty cache, then filled).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// `orchestrator` binaries to compare (default: target/release/orchestrator of
    /// this workspace). Repeat the flag for several.
    #[arg(long)]
    orchestrator: Vec<PathBuf>,
    #[command(flatten)]
    app: UpApp,
    /// Seconds to wait after the first 200 before reading the RSS.
    #[arg(long, default_value_t = 2.0)]
    idle_secs: f64,
    /// Longest wait for the first 200, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
    /// Seconds of load per endpoint after each second start (seeded first: 100
    /// definitions, 1,000 runs, 5,000 logs); 0 skips the load and its RSS reading.
    #[arg(long, default_value_t = 3.0)]
    load_secs: f64,
}

/// One measured start.
#[derive(Debug, Clone)]
struct Start {
    ready_ms: f64,
    memory: Memory,
    /// The load's lines (one per endpoint) and the RSS after it, when there was one.
    loaded: Option<(Vec<String>, Memory)>,
}

/// The server process the load's CPU probe reads (a probe is a plain function).
static LOADED_PID: AtomicU32 = AtomicU32::new(0);

/// CPU seconds the loaded server has used so far.
fn loaded_cpu_seconds() -> f64 {
    sample(LOADED_PID.load(Ordering::Relaxed))
        .map(|s| s.cpu_ticks as f64 / clock_ticks())
        .unwrap_or(f64::NAN)
}

/// Seed the server on `port`, drive each of `bench-http`'s endpoints for `secs`: one line
/// per endpoint.
fn load_once(pid: u32, port: u16, secs: f64) -> Result<Vec<String>> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let client = crate::runtimes::client(1)?;
    let counts = SeedCounts {
        definitions: 100,
        runs: 1000,
        logs: 5000,
        concurrency: 16,
    };
    let seeded = client.block_on(seed::seed(addr, counts, "start"))?;
    LOADED_PID.store(pid, Ordering::Relaxed);
    let mut lines = Vec::new();
    for (e, endpoint) in Endpoint::ALL.into_iter().enumerate() {
        let stats = client.block_on(load::run(
            addr,
            32,
            Duration::from_millis(500),
            Duration::from_secs_f64(secs),
            e as u64 + 1,
            loaded_cpu_seconds,
            endpoint.requests(&seeded, format!("start{pid}")),
        ));
        lines.push(format!(
            "    {:<34} {:>7.0} req/s  p99 {:>6.2} ms  cpu {:>5.0} us/req  non-2xx {}",
            endpoint.label(),
            stats.rps(),
            stats.percentile_ms(99.0),
            stats.cpu_us_per_request(),
            stats.non_2xx,
        ));
    }
    Ok(lines)
}

/// Whether `GET /health` on the port answers 200 now.
fn health_ok(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request =
        format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

fn start_once(
    binary: &Path,
    manifest: &Path,
    runtime_config: &Path,
    cache: &Path,
    args: &Options,
    under_load: bool,
) -> Result<Start> {
    let dir = tempfile::tempdir()?;
    let port = spawn::free_ports(PORT_RANGE, 1)?[0];
    let mut command = spawn::up(binary, dir.path(), manifest, runtime_config, port);
    command
        .env("DATABASE_PATH", dir.path().join("bench.db"))
        .env("ORCHESTRATOR_COMPILE_CACHE", cache);
    let started = Instant::now();
    let mut up = Proc::spawn(
        "API (orchestrator up)",
        &mut command,
        Duration::from_secs(10),
    )?;
    let deadline = started + Duration::from_secs(args.timeout_secs);
    loop {
        if let Some(status) = up.exited()? {
            bail!("{} exited before answering: {status}", binary.display());
        }
        if health_ok(port) {
            break;
        }
        if Instant::now() > deadline {
            bail!("no 200 from /health within {} s", args.timeout_secs);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    std::thread::sleep(Duration::from_secs_f64(args.idle_secs));
    let idle = memory(up.pid())?;
    let loaded = if under_load && args.load_secs > 0.0 {
        let lines = load_once(up.pid(), port, args.load_secs)?;
        Some((lines, memory(up.pid())?))
    } else {
        None
    };
    drop(up);
    Ok(Start {
        ready_ms,
        memory: idle,
        loaded,
    })
}

/// Run `bench-start`: every round, every binary, two starts; then the spread.
pub fn run(args: Options) -> Result<()> {
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let binaries = if args.orchestrator.is_empty() {
        vec![spawn::default_binary()]
    } else {
        args.orchestrator.clone()
    };
    for binary in &binaries {
        spawn::require(binary)?;
    }
    let (manifest, runtime_config) = args.app.paths();
    let load_before = loadavg();
    let caches = tempfile::tempdir()?;
    // Per binary: (first starts, second starts).
    let mut results: Vec<(Vec<Start>, Vec<Start>)> = vec![Default::default(); binaries.len()];
    for round in 1..=args.rounds {
        for (b, binary) in binaries.iter().enumerate() {
            let cache = caches.path().join(format!("round{round}-bin{b}"));
            for second in [false, true] {
                let start = start_once(binary, &manifest, &runtime_config, &cache, &args, second)?;
                println!(
                    "round {round} {} {:<6} ready {:>7.0} ms  RSS {:>6.1} MiB (anon {:>6.1}, file {:>5.1})  load {}",
                    binary.display(),
                    if second { "second" } else { "first" },
                    start.ready_ms,
                    mib(start.memory.rss_kb),
                    mib(start.memory.anon_kb),
                    mib(start.memory.file_kb),
                    loadavg()
                );
                if let Some((lines, loaded)) = &start.loaded {
                    for line in lines {
                        println!("{line}");
                    }
                    println!(
                        "    RSS after the load {:>6.1} MiB (anon {:>6.1}, file {:>5.1})",
                        mib(loaded.rss_kb),
                        mib(loaded.anon_kb),
                        mib(loaded.file_kb),
                    );
                }
                let slot = &mut results[b];
                if second {
                    slot.1.push(start);
                } else {
                    slot.0.push(start);
                }
            }
        }
    }
    println!();
    println!(
        "{} round(s), idle RSS read {} s after the first 200; min / median / max",
        args.rounds, args.idle_secs
    );
    for (binary, (first, second)) in binaries.iter().zip(&results) {
        println!("{}", binary.display());
        for (what, starts) in [("first start ", first), ("second start", second)] {
            println!(
                "  {what}  ready {}   RSS {}   anon {}",
                spread(starts.iter().map(|s| s.ready_ms).collect(), "ms", 0),
                spread(
                    starts.iter().map(|s| mib(s.memory.rss_kb)).collect(),
                    "MiB",
                    1
                ),
                spread(
                    starts.iter().map(|s| mib(s.memory.anon_kb)).collect(),
                    "MiB",
                    1
                ),
            );
        }
        let loaded: Vec<f64> = second
            .iter()
            .filter_map(|s| s.loaded.as_ref().map(|(_, m)| mib(m.rss_kb)))
            .collect();
        if !loaded.is_empty() {
            println!("  RSS after the load  {}", spread(loaded, "MiB", 1));
        }
    }
    println!("load average before: {load_before}   after: {}", loadavg());
    Ok(())
}
