//! Seeding for `bench-http`, over HTTP, the same rows on every server (the shapes of
//! `bench/seed.py` in the shared baseline): definitions, runtime agents, agent logs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use serde_json::json;

use crate::load::{call_json, Conn, Req};

/// The agent types of the seeded definitions (and of those `bench-http` creates).
pub const AGENT_TYPES: [&str; 6] = [
    "planner",
    "builder",
    "reviewer",
    "tester",
    "orchestrator",
    "utility",
];
const LOG_TYPES: [&str; 4] = ["milestone", "performance", "tool_call", "cost_update"];
const LOG_LEVELS: [&str; 6] = ["DEBUG", "INFO", "INFO", "INFO", "WARNING", "ERROR"];

/// The ids a seeded server holds.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub definitions: Vec<String>,
    pub runs: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct SeedCounts {
    pub definitions: usize,
    pub runs: usize,
    pub logs: usize,
    pub concurrency: usize,
}

/// POST `n` bodies built by `make(i)` with bounded concurrency; returns the created ids
/// in order of `i`.
async fn post_all<F>(
    addr: SocketAddr,
    n: usize,
    concurrency: usize,
    path: &'static str,
    make: F,
) -> Result<Vec<String>>
where
    F: Fn(usize) -> serde_json::Value + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.clamp(1, n.max(1)) {
        let make = make.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(addr);
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let req = Req::json(hyper::Method::POST, path, make(i).to_string());
                let mut attempt = 0;
                let value = loop {
                    match call_json(&mut conn, &req, 201).await {
                        Ok(v) => break v,
                        Err(e) if attempt < 4 => {
                            attempt += 1;
                            tracing::debug!(error = %e, "seed request failed; retrying");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                        Err(e) => return Err(e),
                    }
                };
                let id = match &value["id"] {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => return Err(anyhow!("POST {path}: no id in {value}")),
                };
                out.push((i, id));
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for task in tasks {
        all.extend(task.await.context("seed task")??);
    }
    all.sort_unstable_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, id)| id).collect())
}

/// Seed one server.
pub async fn seed(addr: SocketAddr, counts: SeedCounts, tag: &str) -> Result<Seeded> {
    let tag = tag.to_owned();
    let t = tag.clone();
    let definitions = post_all(
        addr,
        counts.definitions,
        counts.concurrency,
        "/api/agents",
        move |i| {
            let capabilities = &["read_files", "write_files", "run_tests"][..1 + i % 3];
            json!({
                "name": format!("seed-{t}-{i:05}"),
                "description": format!("Seeded agent definition number {i} for benchmarking."),
                "agent_type": AGENT_TYPES[i % AGENT_TYPES.len()],
                "capabilities": capabilities,
                "default_model": "claude-sonnet-4",
            })
        },
    )
    .await
    .context("seeding definitions")?;

    let defs = Arc::new(definitions.clone());
    let t = tag.clone();
    let runs = post_all(
        addr,
        counts.runs,
        counts.concurrency,
        "/api/runtime/agents",
        move |i| {
            json!({
                "orchestrator_agent_id": defs[i % defs.len()],
                "session_id": format!("session-{t}-{:04}", i / 10),
                "context": {"task": format!("task {i}"), "repo": "example/repo", "step": i % 7},
                "config": {"max_tokens": 4096, "temperature": 0.2},
            })
        },
    )
    .await
    .context("seeding runtime agents")?;

    let run_ids = Arc::new(runs.clone());
    post_all(
        addr,
        counts.logs,
        counts.concurrency,
        "/api/runtime/logs",
        move |i| {
            json!({
                "source": "agent",
                "agent_id": run_ids[i % run_ids.len()],
                "log_level": LOG_LEVELS[i % LOG_LEVELS.len()],
                "log_type": LOG_TYPES[i % LOG_TYPES.len()],
                "message": format!("log message {i}: step finished in {} ms", (i * 7919) % 999 + 1),
                "details": {"i": i, "ok": i % 5 != 0},
            })
        },
    )
    .await
    .context("seeding logs")?;

    Ok(Seeded { definitions, runs })
}
