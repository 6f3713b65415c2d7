//! `bench-start`: how long `orchestrator up` takes to answer, and what it holds idle.
//!
//! ```sh
//! cargo run --release -p orchestrator-bench --bin bench-start -- [--rounds 5] \
//!     [--orchestrator target/release/orchestrator] [--orchestrator /tmp/other-build]
//! ```
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
//! `/proc/PID/status`, and stops it with SIGTERM. A binary that predates the compile
//! cache ignores the variable and compiles on both starts. It prints every start, then
//! the minimum, median and maximum per binary and start, with the load average before
//! and after: the machine is shared, so quote medians and read the load beside them.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;

const PORT_RANGE: std::ops::RangeInclusive<u16> = 18300..=18399;

#[derive(Parser, Debug)]
#[command(
    name = "bench-start",
    about = "Time from starting `orchestrator up` to its first 200 from /health, with an empty and a filled compile cache, and its idle RSS"
)]
struct Args {
    /// Rounds; each starts every binary twice (empty cache, then filled).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// `orchestrator` binaries to compare (default: target/release/orchestrator of
    /// this workspace). Repeat the flag for several.
    #[arg(long)]
    orchestrator: Vec<PathBuf>,
    /// The Spin manifest (default: spin.toml of this workspace).
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// The runtime config (default: runtime-config.toml of this workspace).
    #[arg(long)]
    runtime_config: Option<PathBuf>,
    /// Seconds to wait after the first 200 before reading the RSS.
    #[arg(long, default_value_t = 2.0)]
    idle_secs: f64,
    /// Longest wait for the first 200, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

/// One measured start.
#[derive(Debug, Clone, Copy)]
struct Start {
    ready_ms: f64,
    rss_kb: u64,
    anon_kb: u64,
    file_kb: u64,
}

/// The child, stopped with SIGTERM (then SIGKILL after 10 s) when dropped.
struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: kill(2) with our own child's pid and a valid signal number.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    let len = PORT_RANGE.len();
    let start = fastrand::usize(..len);
    for i in 0..len {
        let port = PORT_RANGE.start() + ((start + i) % len) as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port in {PORT_RANGE:?}")
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

/// `VmRSS`, `RssAnon` and `RssFile` of a process, in KiB.
fn rss(pid: u32) -> Result<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("RssAnon:"), field("RssFile:")))
}

fn start_once(
    binary: &Path,
    manifest: &Path,
    runtime_config: &Path,
    cache: &Path,
    args: &Args,
) -> Result<Start> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut command = Command::new(binary);
    command
        .current_dir(dir.path()) // no stray .env
        .env("RUST_LOG", "warn")
        .env("DATABASE_PATH", dir.path().join("bench.db"))
        .env("ORCHESTRATOR_COMPILE_CACHE", cache)
        .env_remove("ORCHESTRATOR_API_TOKEN")
        .env_remove("HTTP_PORT")
        .arg("up")
        .arg("--no-sidecar")
        .arg("-f")
        .arg(manifest)
        .arg("--runtime-config-file")
        .arg(runtime_config)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let started = Instant::now();
    let mut up = Up(command
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?);
    let deadline = started + Duration::from_secs(args.timeout_secs);
    loop {
        if let Some(status) = up.0.try_wait()? {
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
    let (rss_kb, anon_kb, file_kb) = rss(up.0.id())?;
    drop(up);
    Ok(Start {
        ready_ms,
        rss_kb,
        anon_kb,
        file_kb,
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// `min / median / max` of the values.
fn spread(mut values: Vec<f64>, unit: &str, decimals: usize) -> String {
    values.sort_by(|a, b| a.total_cmp(b));
    let median = values[values.len() / 2];
    format!(
        "{:.d$} / {:.d$} / {:.d$} {unit}",
        values[0],
        median,
        values[values.len() - 1],
        d = decimals
    )
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let root = workspace();
    let binaries = if args.orchestrator.is_empty() {
        vec![std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"))
            .join("release/orchestrator")]
    } else {
        args.orchestrator.clone()
    };
    for binary in &binaries {
        if !binary.exists() {
            bail!(
                "{} is missing: build it with `cargo build --release -p orchestrator-cli` (or pass --orchestrator)",
                binary.display()
            );
        }
    }
    let manifest = args
        .manifest
        .clone()
        .unwrap_or_else(|| root.join("spin.toml"));
    let runtime_config = args
        .runtime_config
        .clone()
        .unwrap_or_else(|| root.join("runtime-config.toml"));
    let load_before = loadavg();
    let caches = tempfile::tempdir()?;
    // Per binary: (first starts, second starts).
    let mut results: Vec<(Vec<Start>, Vec<Start>)> = vec![Default::default(); binaries.len()];
    for round in 1..=args.rounds {
        for (b, binary) in binaries.iter().enumerate() {
            let cache = caches.path().join(format!("round{round}-bin{b}"));
            for second in [false, true] {
                let start = start_once(binary, &manifest, &runtime_config, &cache, &args)?;
                println!(
                    "round {round} {} {:<6} ready {:>7.0} ms  RSS {:>6.1} MiB (anon {:>6.1}, file {:>5.1})  load {}",
                    binary.display(),
                    if second { "second" } else { "first" },
                    start.ready_ms,
                    mib(start.rss_kb),
                    mib(start.anon_kb),
                    mib(start.file_kb),
                    loadavg()
                );
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
                spread(starts.iter().map(|s| mib(s.rss_kb)).collect(), "MiB", 1),
                spread(starts.iter().map(|s| mib(s.anon_kb)).collect(), "MiB", 1),
            );
        }
    }
    println!("load average before: {load_before}   after: {}", loadavg());
    Ok(())
}
