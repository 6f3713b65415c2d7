//! `orchestrator prune [--dry-run]`, and the retention `up` applies at start and hourly:
//! the core's `store::retention` over a native connection to `DATABASE_PATH` (or the
//! libSQL server at `DATABASE_URL`).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, Result};
use orchestrator_core::store::retention::{self, Pacing, Pruned};

use crate::args::DatabaseArgs;
use crate::database::Target;

/// How often `up` prunes after the first time.
pub const INTERVAL: Duration = Duration::from_secs(60 * 60);

#[derive(clap::Args, Debug, Clone)]
pub struct PruneArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Days kept after a final run's last activity (0 keeps everything; default 30).
    #[arg(long, env = "RETENTION_DAYS")]
    pub retention_days: Option<String>,
    /// Count what would go; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &PruneArgs) -> Result<()> {
    let days = retention::parse_days(args.retention_days.as_deref()).map_err(|e| anyhow!(e))?;
    let target = args.database.target()?;
    let pruned = prune_target(&target, days, args.dry_run)?;
    println!("{}: {}", target.describe(), describe(&pruned));
    Ok(())
}

/// Open (and migrate) a database and apply retention of `days` to it now. Blocking.
pub fn prune_target(target: &Target, days: u32, dry_run: bool) -> Result<Pruned> {
    let db = target.open()?;
    orchestrator_core::migrations::migrate(&db)
        .map_err(|e| anyhow!("database {}: {}", target.describe(), e.message))?;
    retention::prune(&db, days, retention::now(), dry_run, &Pacing::default())
        .map_err(|e| anyhow!("database {}: {}", target.describe(), e.message))
}

/// One line saying what a prune removed (or would remove).
pub fn describe(p: &Pruned) -> String {
    let Some(cutoff) = &p.cutoff else {
        return "retention is off (RETENTION_DAYS=0): nothing pruned".to_owned();
    };
    format!(
        "{} {} runs, {} prompts, {} agent logs, {} system logs (final runs and system logs \
         older than {} days, before {cutoff}){}",
        if p.dry_run { "would prune" } else { "pruned" },
        p.runs,
        p.prompts,
        p.agent_logs,
        p.system_logs,
        p.retention_days,
        if p.complete { "" } else { "; more remain" },
    )
}

/// `retention_days` from the Spin variables `up` gives the components (so `up` and the
/// endpoint agree), default 30.
pub fn days_from_variables(variables: &HashMap<String, String>) -> Result<u32> {
    retention::parse_days(variables.get("retention_days").map(String::as_str))
        .map_err(|e| anyhow!("variable {e}"))
}

/// What `up` does: prune `target` now (before serving), then every [`INTERVAL`] on a
/// blocking thread, never on the async workers. A failed hourly prune is logged and
/// tried again the next hour; it never stops the server. (With several replicas on one
/// libSQL server each prunes; the deletes are idempotent, paced in small transactions.)
pub async fn at_start_then_hourly(target: &Target, days: u32) -> Result<()> {
    if days == 0 {
        println!("Retention: off (RETENTION_DAYS=0)");
        return Ok(());
    }
    let first = target.clone();
    let pruned = tokio::task::spawn_blocking(move || prune_target(&first, days, false)).await??;
    println!("Retention: {}", describe(&pruned));
    let target = target.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + INTERVAL, INTERVAL);
        loop {
            ticks.tick().await;
            let target = target.clone();
            match tokio::task::spawn_blocking(move || prune_target(&target, days, false)).await {
                Ok(Ok(pruned)) => tracing::info!(result = %describe(&pruned), "retention"),
                Ok(Err(err)) => tracing::warn!(error = %err, "retention failed"),
                Err(err) => tracing::warn!(error = %err, "retention task failed"),
            }
        }
    });
    Ok(())
}
