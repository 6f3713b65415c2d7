//! The real host in this process: the workspace's app (`spin.toml`, its `.wasm`
//! components) on a loopback port, on a fresh SQLite file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use spin_host::{Host, HostConfig};

/// The workspace's Spin manifest.
pub const DEFAULT_MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../spin.toml");
/// The workspace's runtime config.
pub const DEFAULT_RUNTIME_CONFIG: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../runtime-config.toml");

// Which app the in-process host runs, flattened into each benchmark's arguments. (A
// doc comment here would become the about text of the commands that flatten it.)
#[derive(clap::Args, Debug, Clone)]
pub struct AppArgs {
    /// The Spin manifest the host runs.
    #[arg(long, default_value = DEFAULT_MANIFEST)]
    pub manifest: PathBuf,
    /// The runtime config the host reads (its database path is overridden).
    #[arg(long, default_value = DEFAULT_RUNTIME_CONFIG)]
    pub runtime_config: PathBuf,
}

/// Start the host on the current runtime and serve until the process ends; its
/// `default` database is the file `db`, and `tweak` adjusts the configuration first. The
/// address it listens on.
pub async fn start_app(
    app: &AppArgs,
    db: PathBuf,
    tweak: impl FnOnce(&mut HostConfig),
) -> Result<SocketAddr> {
    let mut config = HostConfig::new(&app.manifest);
    config.runtime_config_path = Some(app.runtime_config.clone());
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.sqlite_path_overrides.insert("default".into(), db);
    // As `orchestrator up` answers: the host's own errors in the API's JSON shape.
    config.error_body = spin_host::ErrorBody::Json;
    tweak(&mut config);
    let host = Host::start(config)
        .await
        .map_err(|e| anyhow!("starting the host (build the components first): {e:#}"))?;
    let addr = host.local_addr();
    tokio::spawn(host.serve(std::future::pending()));
    Ok(addr)
}

/// [`start_app`] on `rt` (the servers' runtime, whose threads
/// [`crate::usage::threads_cpu_seconds`] counts).
pub fn serve_app(
    rt: &tokio::runtime::Runtime,
    app: &AppArgs,
    db: PathBuf,
    tweak: impl FnOnce(&mut HostConfig),
) -> Result<SocketAddr> {
    rt.block_on(start_app(app, db, tweak))
}

/// Apply the core's migrations to the file `path`, natively (as `orchestrator migrate`).
pub fn migrate(path: &Path) -> Result<()> {
    orchestrator_cli::migrate::migrate_file(path)
        .with_context(|| format!("migrating {}", path.display()))?;
    Ok(())
}
