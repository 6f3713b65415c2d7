//! `orchestrator up`: build (optionally), migrate, serve the API from `spin.toml`, and
//! beside it the WebSocket sidecar and (with `--runner`) a runner.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use orchestrator_sidecar::{Sidecar, SidecarConfig};
use spin_host::{CompileCache, Host, HostConfig, Synchronous};

use crate::args::{
    AllowArgs, DatabaseArgs, FeedArgs, ManifestArgs, DEFAULT_DATABASE_PATH, DEFAULT_HTTP_PORT,
    DEFAULT_RUNTIME_CONFIG, UP_DATABASE_PATH_HELP, UP_DATABASE_URL_HELP,
};
use crate::shutdown::Shutdown;

#[derive(clap::Args, Debug, Clone)]
#[command(mut_arg("database_path", |a| a.help(UP_DATABASE_PATH_HELP)))]
#[command(mut_arg("database_url", |a| a.help(UP_DATABASE_URL_HELP)))]
pub struct UpArgs {
    /// Build the components first (as `orchestrator build`).
    #[arg(long)]
    pub build: bool,
    #[command(flatten)]
    pub app: ManifestArgs,
    /// Address for the API (wins over HTTP_PORT).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Port for the API on 127.0.0.1.
    #[arg(long, env = "HTTP_PORT", default_value_t = DEFAULT_HTTP_PORT)]
    pub http_port: u16,
    /// Spin runtime configuration (which file backs the `default` database).
    #[arg(long, default_value = DEFAULT_RUNTIME_CONFIG)]
    pub runtime_config_file: PathBuf,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Run time of one request, in seconds: time spent executing, not waiting (a
    /// component that loops gets a 504 after it).
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 60)]
    pub request_timeout_secs: u64,
    /// Wall-clock limit of one request, in seconds, waits included (a request a
    /// component holds open, e.g. an approval waiting for a person); never shorter than
    /// the request timeout.
    #[arg(long, env = "REQUEST_WALL_LIMIT_SECS", default_value_t = 900)]
    pub request_wall_limit_secs: u64,
    /// How long in-flight requests may finish after SIGINT/SIGTERM, in seconds.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// Seconds a client may take to send a request's head (and an idle keep-alive
    /// connection may stay open) before the connection is closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// Open connections allowed per client address; more get a 503 and are closed.
    #[arg(long, env = "MAX_CONNECTIONS_PER_CLIENT", default_value_t = 512)]
    pub max_connections_per_client: usize,
    /// SQLite connections per database.
    #[arg(long, env = "SQLITE_POOL_SIZE", default_value_t = 16)]
    pub sqlite_pool_size: usize,
    /// `normal` (WAL: survives a killed process; power loss may drop the last commits)
    /// or `full` (also survives power loss, slower writes).
    #[arg(long, env = "SQLITE_SYNCHRONOUS", default_value = "normal")]
    pub sqlite_synchronous: String,
    /// Where compiled components are kept between starts, or `off` to compile on
    /// every start. Default: .spin/compiled beside the manifest.
    #[arg(long, env = "ORCHESTRATOR_COMPILE_CACHE", value_name = "DIR|off")]
    pub compile_cache: Option<String>,
    /// Don't start the WebSocket sidecar.
    #[arg(long)]
    pub no_sidecar: bool,
    /// Also start a runner beside the host that runs dispatched runs of the --allow'ed
    /// programs (see `orchestrator runner`). Without it nothing is ever executed.
    #[arg(long, requires = "allow")]
    pub runner: bool,
    #[command(flatten)]
    pub allow: AllowArgs,
    #[command(flatten)]
    pub feed: FeedArgs,
}

/// `--compile-cache` / `ORCHESTRATOR_COMPILE_CACHE`: unset or empty is the app's
/// `.spin/compiled`, `off` (or `0`, `false`, `none`) none, anything else a folder
/// (relative to the working directory).
fn compile_cache(value: Option<&str>) -> CompileCache {
    match value.map(str::trim) {
        None | Some("") => CompileCache::InApp,
        Some(v)
            if ["off", "0", "false", "none"]
                .iter()
                .any(|off| v.eq_ignore_ascii_case(off)) =>
        {
            CompileCache::Off
        }
        Some(dir) => CompileCache::At(PathBuf::from(dir)),
    }
}

fn synchronous(level: &str) -> Result<Synchronous> {
    match level.to_ascii_lowercase().as_str() {
        "normal" => Ok(Synchronous::Normal),
        "full" => Ok(Synchronous::Full),
        other => bail!("SQLITE_SYNCHRONOUS must be normal or full, not {other:?}"),
    }
}

/// Whether the manifest is this orchestrator's app (or a project made by `new`), and
/// not some other Spin app `up` is asked to run: it routes `/api/events`, the feed
/// the sidecar follows. Decided by route, not by the app's name, which a project may
/// change; a manifest that cannot be read is left to the host to report.
pub fn serves_the_feed(manifest: &std::path::Path) -> bool {
    spin_host::manifest::Manifest::from_file(manifest).is_ok_and(|m| {
        m.routes()
            .iter()
            .any(|(route, _)| route == "/api/events" || route.starts_with("/api/events/"))
    })
}

/// The host configuration `up` runs with; `orchestrator` is [`serves_the_feed`]'s answer.
pub fn host_config(args: &UpArgs, orchestrator: bool) -> Result<HostConfig> {
    let mut config = HostConfig::new(&args.app.manifest);
    // The host's own error answers in the API's shape, {"error":{"code","message"}}.
    config.error_body = spin_host::ErrorBody::Json;
    config.listen = args.listen.unwrap_or(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        args.http_port,
    ));
    let runtime_config = args.runtime_config_file.exists();
    if runtime_config {
        config.runtime_config_path = Some(args.runtime_config_file.clone());
    }
    // DATABASE_PATH or DATABASE_URL wins; without either and without a runtime config,
    // the documented default.
    if args.database.has_url() {
        if let crate::database::Target::Libsql(server) = args.database.target()? {
            config
                .sqlite_libsql_overrides
                .insert("default".into(), server);
        }
    } else {
        match (&args.database.database_path, runtime_config) {
            (Some(path), _) => {
                config
                    .sqlite_path_overrides
                    .insert("default".into(), path.clone());
            }
            (None, false) if orchestrator => {
                config
                    .sqlite_path_overrides
                    .insert("default".into(), PathBuf::from(DEFAULT_DATABASE_PATH));
            }
            // Another app gets Spin's default, `.spin/sqlite_db.db`, as on `spin up`.
            (None, _) => {}
        }
    }
    config.variables = crate::settings::spin_variables(std::env::vars());
    // Flags given on the command line reach the components too.
    config
        .variables
        .insert("web_ui_port".into(), args.feed.web_ui_port.to_string());
    config
        .variables
        .insert("cors_origins".into(), args.feed.cors_origins.clone());
    if let Some(token) = &args.feed.api_token {
        config.variables.insert("api_token".into(), token.clone());
    }
    config.request_deadline = Duration::from_secs(args.request_timeout_secs.max(1));
    config.request_wall_limit = Some(Duration::from_secs(args.request_wall_limit_secs.max(1)));
    config.shutdown_grace = Duration::from_secs(args.shutdown_grace_secs);
    config.header_read_timeout = Duration::from_secs(args.header_read_timeout_secs.max(1));
    config.max_connections_per_client = args.max_connections_per_client.max(1);
    config.sqlite_pool_size = args.sqlite_pool_size.max(1);
    config.sqlite_synchronous = synchronous(&args.sqlite_synchronous)?;
    config.compile_cache = compile_cache(args.compile_cache.as_deref());
    Ok(config)
}

pub async fn run(args: UpArgs) -> Result<()> {
    if args.build {
        let manifest = args.app.manifest.clone();
        tokio::task::spawn_blocking(move || crate::build::build(&manifest)).await??;
    }
    let orchestrator = serves_the_feed(&args.app.manifest);
    let config = host_config(&args, orchestrator)?;
    let retention_days = crate::prune::days_from_variables(&config.variables)?;
    let host = Host::start(config).await?;
    // The host is generic; this app's schema is the core's, applied natively before the
    // first request so that a database newer than this build stops `up` right here.
    // Another Spin app's database is its own business, as on `spin up`.
    let databases = host.databases();
    for (label, path) in &databases {
        if !orchestrator {
            println!("Database: {} ({label})", path.display());
        } else if label == "default" {
            let target = crate::database::Target::File(path.clone());
            let version = crate::migrate::migrate_file(path)?;
            println!("Database: {} (schema version {version})", path.display());
            crate::prune::at_start_then_hourly(&target, retention_days).await?;
        }
    }
    for (label, server) in host.libsql_databases() {
        let target = crate::database::Target::Libsql(server);
        if !orchestrator {
            println!("Database: {} ({label})", target.describe());
        } else if label == "default" {
            let migrating = target.clone();
            let version =
                tokio::task::spawn_blocking(move || crate::migrate::migrate_target(&migrating))
                    .await??;
            println!("Database: {} (schema version {version})", target.describe());
            crate::prune::at_start_then_hourly(&target, retention_days).await?;
        }
    }
    let addr = host.local_addr();
    println!("Serving http://{addr}");
    println!("Available Routes:");
    for (route, component) in host.routes() {
        let wildcard = route.ends_with("/...");
        let shown = route.trim_end_matches("/...");
        let shown = if shown.is_empty() { "/" } else { shown };
        println!(
            "  {component}: http://{addr}{shown}{}",
            if wildcard { " (wildcard)" } else { "" }
        );
    }
    if orchestrator && args.feed.api_token.as_deref().is_none_or(str::is_empty) {
        println!(
            "Warning: ORCHESTRATOR_API_TOKEN is unset: the API is open (local development only)"
        );
    }

    let shutdown = Shutdown::on_signals();
    // The sidecar follows the feed: an app that does not serve it gets none.
    let sidecar = if args.no_sidecar || !orchestrator {
        None
    } else {
        crate::sidecar::raise_open_file_limit();
        let listen = SocketAddr::new(addr.ip(), args.feed.websocket_port);
        let mut config = crate::sidecar::config(&args.feed, format!("http://{addr}"), listen);
        // The long-poll ends by its own wait, under the host's deadline, not by a 504.
        config.poll_wait =
            SidecarConfig::poll_wait_within(Duration::from_secs(args.request_timeout_secs.max(1)));
        let sidecar = Sidecar::start(config)
            .await
            .context("cannot start the WebSocket sidecar")?;
        println!("WebSocket: ws://{}/ws/agent-status", sidecar.local_addr());
        Some(tokio::spawn(sidecar.serve(shutdown.clone().wait())))
    };
    let runner = if args.runner && orchestrator {
        let allow = args.allow.allow.clone();
        let mut config = crate::runner::RunnerConfig::new(format!("http://{addr}"), allow);
        config.token = args.feed.api_token.clone().filter(|t| !t.is_empty());
        println!(
            "Runner: {} (allowed: {})",
            config.name,
            config.allow.join(", ")
        );
        Some(tokio::spawn(crate::runner::serve(
            config,
            shutdown.clone().wait(),
        )))
    } else {
        None
    };
    host.serve(shutdown.wait()).await?;
    if let Some(sidecar) = sidecar {
        sidecar.await??;
    }
    if let Some(runner) = runner {
        runner.await??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_cache_setting() {
        assert_eq!(compile_cache(None), CompileCache::InApp);
        assert_eq!(compile_cache(Some(" ")), CompileCache::InApp);
        for off in ["off", "OFF", "0", "false", "none"] {
            assert_eq!(compile_cache(Some(off)), CompileCache::Off, "{off}");
        }
        assert_eq!(
            compile_cache(Some("/var/cache/orchestrator")),
            CompileCache::At(PathBuf::from("/var/cache/orchestrator"))
        );
    }
}
