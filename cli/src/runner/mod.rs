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
//!
//! The parts: [`api`] is the runner protocol's client (the requests, their answers, the
//! backoff); [`supervise`] runs one claimed run from start to reported exit; [`output`]
//! reads a process's output and sends it in batches; [`group`] signals a process group.

mod api;
mod group;
mod output;
mod supervise;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tracing::Instrument;

use crate::args::AllowArgs;
use api::{Api, Backoff, ClaimAnswer, Sent};

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
                        supervise::run_one(&api, &config, claim, stopping).await;
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
