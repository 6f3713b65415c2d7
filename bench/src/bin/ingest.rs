//! `bench-ingest`: Claude Code hook events per second into one database, through the real
//! host and the `ingest` component, at N connections (a mix of what a session posts:
//! mostly tool calls, each with its own `tool_use_id`, plus prompts, PreToolUse and Stop
//! over 256 concurrent sessions). Prints req/s, p50, p99 and non-2xx.

#[allow(dead_code)]
#[path = "../http/load.rs"]
mod load;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use spin_host::{Host, HostConfig};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 32)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../spin.toml"))]
    manifest: PathBuf,
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../runtime-config.toml"))]
    runtime_config: PathBuf,
}

/// One hook event of a synthetic session: `n` picks the session and the event.
fn hook_event(n: u64) -> String {
    let session = format!("bench-session-{}", n % 256);
    let common = format!(
        r#""session_id":"{session}","transcript_path":"/tmp/{session}.jsonl","cwd":"/tmp/p","permission_mode":"default""#
    );
    match n % 10 {
        0 => format!(r#"{{{common},"hook_event_name":"UserPromptSubmit","prompt":"task {n}"}}"#),
        1 => format!(
            r#"{{{common},"hook_event_name":"PreToolUse","tool_name":"Bash","tool_use_id":"toolu_{n}","tool_input":{{"command":"cargo test"}}}}"#
        ),
        9 => format!(r#"{{{common},"hook_event_name":"Stop","stop_hook_active":false}}"#),
        _ => format!(
            r#"{{{common},"hook_event_name":"PostToolUse","tool_name":"Bash","tool_use_id":"toolu_{n}","tool_input":{{"command":"cargo test"}},"tool_response":{{"stdout":"test result: ok. 131 passed","stderr":""}}}}"#
        ),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("server")
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("client")
        .enable_all()
        .build()?;
    let mut config = HostConfig::new(&args.manifest);
    config.runtime_config_path = Some(args.runtime_config.clone());
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config
        .sqlite_path_overrides
        .insert("default".into(), dir.path().join("ingest.db"));
    let host = server_rt
        .block_on(Host::start(config))
        .context("starting the host (build the components first: orchestrator build)")?;
    let addr = host.local_addr();
    server_rt.spawn(host.serve(std::future::pending()));
    let stats = client_rt.block_on(load::run(
        addr,
        args.connections,
        Duration::from_secs(args.warmup_seconds),
        Duration::from_secs(args.seconds),
        1,
        || load::threads_cpu_seconds("server"),
        |_, n| {
            load::Req::json(
                hyper::Method::POST,
                "/api/ingest/claude-code",
                hook_event(n),
            )
        },
    ));
    println!(
        "POST /api/ingest/claude-code, {} connections, {} s: {:.0} events/s, p50 {:.1} ms, p99 {:.1} ms, non-2xx {}, errors {}, server CPU {:.0} µs/event",
        args.connections,
        args.seconds,
        stats.rps(),
        stats.percentile_ms(50.0),
        stats.percentile_ms(99.0),
        stats.non_2xx,
        stats.errors,
        stats.cpu_us_per_request(),
    );
    Ok(())
}
