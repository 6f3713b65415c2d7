//! `bench-approvals`: hooks held open for a person's decision, through the real host and
//! the `ingest` component.
//!
//! 1. Other requests (`GET /api/runtime/agents/{id}` and `GET /api/runtime/agents`) with
//!    no hook held: p50, p99 — the baseline.
//! 2. `--held` PermissionRequest hooks held open at once (each a connection waiting for
//!    its answer), and the same other requests meanwhile: p50, p99. Target: 200 held,
//!    other requests' p99 unchanged within noise.
//! 3. Each held hook decided through `POST /api/approvals/{id}/decision`, one at a time:
//!    the time from the decision's 200 to the hook's answer, p50, p99, max. Target p99
//!    < 100 ms.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use tokio::sync::oneshot;

use crate::host::{serve_app, AppArgs};
use crate::load::{self, call_json, Conn, Req};
use crate::runtimes;
use crate::stats::{percentile, sorted};
use crate::usage::threads_cpu_seconds;

#[derive(clap::Args, Debug)]
pub struct Options {
    /// Hooks held open at once.
    #[arg(long, default_value_t = 200)]
    held: usize,
    /// Connections making the other requests.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// Seconds of other requests, with and without the held hooks.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[command(flatten)]
    app: AppArgs,
}

fn permission_request(n: usize) -> String {
    format!(
        r#"{{"session_id":"held-{n}","hook_event_name":"PermissionRequest","cwd":"/tmp/p","transcript_path":"/tmp/t.jsonl","tool_name":"Bash","tool_input":{{"command":"git push origin {n}"}}}}"#
    )
}

fn percentiles(samples: Vec<f64>) -> String {
    let samples = sorted(samples);
    if samples.is_empty() {
        return "no samples".into();
    }
    let at = |p: f64| percentile(&samples, p).unwrap_or(f64::NAN);
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(50.0),
        at(90.0),
        at(99.0),
        at(100.0)
    )
}

async fn others(addr: SocketAddr, args: &Options, run_id: String, label: &str) {
    let stats = load::run(
        addr,
        args.connections,
        Duration::from_secs(args.warmup_seconds),
        Duration::from_secs(args.seconds),
        7,
        || threads_cpu_seconds("server"),
        move |_, n| {
            if n % 2 == 0 {
                Req::get(format!("/api/runtime/agents/{run_id}"))
            } else {
                Req::get("/api/runtime/agents?limit=50")
            }
        },
    )
    .await;
    println!(
        "{label}: other requests (GET a run, GET runs), {} connections, {} s: {:.0} req/s, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.1} ms, non-2xx {}, errors {}",
        args.connections,
        args.seconds,
        stats.rps(),
        stats.percentile_ms(50.0),
        stats.percentile_ms(90.0),
        stats.percentile_ms(99.0),
        stats.percentile_ms(100.0),
        stats.non_2xx,
        stats.errors,
    );
}

/// Run `bench-approvals`: the host, then the three phases, a line each.
pub fn run(args: Options) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server_rt = runtimes::server(None)?;
    let client_rt = runtimes::client(1)?;
    let addr = serve_app(
        &server_rt,
        &args.app,
        dir.path().join("approvals.db"),
        |config| {
            // As `orchestrator up` sets them: a hold may last past the run-time deadline.
            config.request_wall_limit = Some(Duration::from_secs(900));
            config.max_instances = config.max_instances.max(args.held as u32 + 64);
        },
    )?;

    client_rt.block_on(async {
        let mut conn = Conn::new(addr);
        // A run to read, in a few dozen.
        let def = call_json(
            &mut conn,
            &Req::json(
                hyper::Method::POST,
                "/api/agents",
                r#"{"name":"bench","agent_type":"builder"}"#.into(),
            ),
            201,
        )
        .await?;
        let mut run_id = String::new();
        for i in 0..40 {
            let run = call_json(
                &mut conn,
                &Req::json(
                    hyper::Method::POST,
                    "/api/runtime/agents",
                    format!(
                        r#"{{"orchestrator_agent_id":"{}","session_id":"s{i}"}}"#,
                        def["id"].as_str().unwrap_or_default()
                    ),
                ),
                201,
            )
            .await?;
            run_id = run["id"].as_str().unwrap_or_default().to_owned();
        }
        others(addr, &args, run_id.clone(), "no hook held").await;

        // Hold the hooks: each on its own connection, its answer reported with the time.
        let mut answers = Vec::with_capacity(args.held);
        for n in 0..args.held {
            let (tx, rx) = oneshot::channel();
            tokio::spawn(async move {
                let mut conn = Conn::new(addr);
                let req = Req::json(
                    hyper::Method::POST,
                    "/api/ingest/claude-code",
                    permission_request(n),
                );
                let result = conn.send(&req).await;
                let _ = tx.send((Instant::now(), result));
            });
            answers.push(rx);
        }
        // Wait until every approval is pending.
        let deadline = Instant::now() + Duration::from_secs(120);
        let pending = loop {
            let list = call_json(
                &mut conn,
                &Req::get("/api/approvals?status=pending&limit=1000"),
                200,
            )
            .await?;
            let list = list.as_array().cloned().unwrap_or_default();
            if list.len() >= args.held {
                break list;
            }
            if Instant::now() > deadline {
                bail!(
                    "only {} of {} approvals pending after 120 s",
                    list.len(),
                    args.held
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        println!("{} hooks held open", pending.len());
        others(addr, &args, run_id, &format!("{} hooks held", args.held)).await;

        // Decide each, and time its hook's answer from the decision's 200.
        let mut by_session = std::collections::HashMap::new();
        for approval in &pending {
            let session = approval["session_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            by_session.insert(
                session,
                approval["id"].as_str().unwrap_or_default().to_owned(),
            );
        }
        let mut latencies = Vec::with_capacity(args.held);
        for (n, answer) in answers.into_iter().enumerate() {
            let Some(id) = by_session.get(&format!("held-{n}")) else {
                bail!("no approval for hook {n}");
            };
            call_json(
                &mut conn,
                &Req::json(
                    hyper::Method::POST,
                    format!("/api/approvals/{id}/decision"),
                    r#"{"behavior":"allow"}"#.into(),
                ),
                200,
            )
            .await?;
            let decided = Instant::now();
            let (answered, result) = answer.await?;
            let (status, body) = result?;
            if status != 200 || !String::from_utf8_lossy(&body).contains("allow") {
                bail!(
                    "hook {n} answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
            latencies.push(answered.saturating_duration_since(decided).as_secs_f64() * 1000.0);
        }
        println!(
            "decision → hook answer, {} hooks decided one after another: {}",
            latencies.len(),
            percentiles(latencies)
        );
        Ok(())
    })
}
