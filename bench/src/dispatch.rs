//! `bench-dispatch`: runs dispatched to runners, measured. In one process: the real host
//! (the repo's `spin.toml`, the `.wasm` components) on a fresh SQLite file, and runners
//! (`orchestrator_cli::runner::serve`, as `orchestrator runner` runs it) on loopback.
//!
//! 1. Latency: one idle runner; `--latency-runs` runs dispatched one at a time; for each,
//!    the time from just before `POST /api/runtime/agents` to the process's first
//!    instruction (`date +%s%N`, its first output line): queued → process started, p50 and
//!    p99 (the target is p99 < 200 ms with an idle runner).
//! 2. Throughput: `--runners` runners; `--runs` short runs queued at once; every run must
//!    end `completed`, exactly once (each process appends its run id to one file: no id
//!    twice, none missing) and with its one output line.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use orchestrator_cli::runner::{serve, RunnerConfig};
use serde_json::{json, Value as Json};

use crate::host::{start_app, AppArgs};
use crate::stats::{pct, sorted};

#[derive(clap::Args, Debug)]
pub struct Options {
    /// Runs dispatched one at a time to one idle runner (latency).
    #[arg(long, default_value_t = 50)]
    latency_runs: usize,
    /// Runs queued at once (throughput).
    #[arg(long, default_value_t = 100)]
    runs: usize,
    /// Runners sharing the API for the throughput phase.
    #[arg(long, default_value_t = 4)]
    runners: usize,
    #[command(flatten)]
    app: AppArgs,
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn post(&self, path: &str, body: Json) -> Result<Json> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let body: Json = r.json().await?;
        if !status.is_success() {
            bail!("POST {path}: {status} {body}");
        }
        Ok(body)
    }

    async fn get(&self, path: &str) -> Result<Json> {
        Ok(self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await?
            .json()
            .await?)
    }

    async fn definition(&self, name: &str, command: Json) -> Result<String> {
        let def = self
            .post(
                "/api/agents",
                json!({ "name": name, "agent_type": "utility", "command": command }),
            )
            .await?;
        Ok(def["id"].as_str().context("definition id")?.to_owned())
    }

    async fn dispatch(&self, definition: &str) -> Result<String> {
        let run = self
            .post(
                "/api/runtime/agents",
                json!({ "orchestrator_agent_id": definition, "dispatch": { "input": "" } }),
            )
            .await?;
        Ok(run["id"].as_str().context("run id")?.to_owned())
    }

    /// Poll until the run is final.
    async fn finished(&self, id: &str, within: Duration) -> Result<Json> {
        let deadline = Instant::now() + within;
        loop {
            let run = self.get(&format!("/api/runtime/agents/{id}")).await?;
            if matches!(
                run["status"].as_str(),
                Some("completed" | "failed" | "cancelled")
            ) {
                return Ok(run);
            }
            if Instant::now() > deadline {
                bail!("run {id} did not finish: {run}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn output(&self, id: &str) -> Result<Vec<String>> {
        let logs = self
            .get(&format!(
                "/api/runtime/logs?agent_id={id}&log_type=performance&limit=1000"
            ))
            .await?;
        let mut lines: Vec<String> = logs
            .as_array()
            .context("logs")?
            .iter()
            .filter_map(|l| l["message"].as_str().map(str::to_owned))
            .collect();
        lines.reverse();
        Ok(lines)
    }
}

fn start_runners(
    base: &str,
    count: usize,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<Result<()>>> {
    (0..count)
        .map(|n| {
            let mut config = RunnerConfig::new(base, vec!["sh".into()]);
            config.name = format!("bench-{n}");
            let mut stop = stop.clone();
            tokio::spawn(serve(config, async move {
                let _ = stop.wait_for(|s| *s).await;
            }))
        })
        .collect()
}

/// Run `bench-dispatch`: the host and runners on this runtime, then both phases.
pub async fn run(args: Options) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let addr = start_app(&args.app, dir.path().join("dispatch.db"), |_| {}).await?;
    let base = format!("http://{addr}");
    let api = Api {
        http: reqwest::Client::new(),
        base: base.clone(),
    };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);

    // 1. Latency, one idle runner.
    let first = api
        .definition("bench-latency", json!(["sh", "-c", "date +%s%N"]))
        .await?;
    let runners = start_runners(&base, 1, &stop);
    // One run first, so the runner is in its waiting claim (and the components warm).
    let warm = api.dispatch(&first).await?;
    api.finished(&warm, Duration::from_secs(60)).await?;
    let mut latencies = Vec::with_capacity(args.latency_runs);
    for _ in 0..args.latency_runs {
        // Let the runner go back to its waiting claim.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let sent = now_ns();
        let id = api.dispatch(&first).await?;
        let run = api.finished(&id, Duration::from_secs(30)).await?;
        if run["status"] != "completed" {
            bail!("latency run failed: {run}");
        }
        let started: u128 = api
            .output(&id)
            .await?
            .first()
            .and_then(|l| l.trim().parse().ok())
            .context("the process's start time")?;
        latencies.push(started.saturating_sub(sent) as f64 / 1e6);
    }
    let _ = stop_tx.send(true);
    for r in runners {
        r.await??;
    }
    let latencies = sorted(latencies);
    println!(
        "queued → process started, 1 idle runner, {} runs: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        pct(&latencies, 50.0),
        pct(&latencies, 99.0),
        latencies.last().copied().unwrap_or(0.0)
    );

    // 2. Throughput: runs queued at once, several runners.
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let ran = dir.path().join("ran");
    let script = format!(
        "echo \"$ORCHESTRATOR_RUN_ID\" >> {}; echo ok",
        ran.display()
    );
    let second = api
        .definition("bench-throughput", json!(["sh", "-c", script]))
        .await?;
    let runners = start_runners(&base, args.runners, &stop);
    let started = Instant::now();
    let mut ids = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        ids.push(api.dispatch(&second).await?);
    }
    let mut by_runner: HashMap<String, usize> = HashMap::new();
    let mut not_completed = 0;
    let mut wrong_output = 0;
    for id in &ids {
        let run = api.finished(id, Duration::from_secs(120)).await?;
        if run["status"] != "completed" {
            not_completed += 1;
        }
        *by_runner
            .entry(run["dispatch"]["runner"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
        if api.output(id).await? != ["ok"] {
            wrong_output += 1;
        }
    }
    let elapsed = started.elapsed();
    let _ = stop_tx.send(true);
    for r in runners {
        r.await??;
    }
    let text = std::fs::read_to_string(&ran).unwrap_or_default();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for line in text.lines() {
        *seen.entry(line).or_default() += 1;
    }
    let twice = seen.values().filter(|n| **n > 1).count();
    let missing = ids
        .iter()
        .filter(|id| !seen.contains_key(id.as_str()))
        .count();
    let mut spread: Vec<_> = by_runner.into_iter().collect();
    spread.sort();
    println!(
        "{} runs through {} runners in {:.2} s ({:.0} runs/s): {} not completed, {} run twice, \
         {} never run, {} with other output; per runner {:?}",
        ids.len(),
        args.runners,
        elapsed.as_secs_f64(),
        ids.len() as f64 / elapsed.as_secs_f64(),
        not_completed,
        twice,
        missing,
        wrong_output,
        spread
    );
    if not_completed + twice + missing + wrong_output > 0 {
        bail!("some runs were lost, failed or run twice");
    }
    Ok(())
}
