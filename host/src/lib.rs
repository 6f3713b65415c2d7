//! A generic, Spin-compatible runtime for Spin HTTP applications on wasmtime.
//!
//! [`Host::start`] reads a Spin v2 manifest (and optionally a runtime config), opens
//! the SQLite databases, compiles and pre-instantiates every routed component, and
//! binds the listener; [`Host::serve`] answers requests until told to stop. Each
//! request runs in a fresh instance, as in Spin.
//!
//! The crate is split by capability, like Spin's factors: [`sqlite`], [`key_value`],
//! [`variables`], [`outbound_http`] and [`files`] each own their runtime-config section,
//! their state and their binding, behind the one trait in `capability`, which
//! `instance` (the per-request store) and [`Host::start`] go through. Beside them:
//! [`manifest`] and [`runtime_config`] (the files an app is described by), [`routing`],
//! [`server`] (accept loop, dispatch, body plumbing, error answers), [`error`] and
//! [`limits`]. This file holds the public entry and wires the rest; nothing here knows
//! about any particular application.

#![warn(missing_docs)]

mod capability;
pub mod compile_cache;
mod componentize;
pub mod conn_limit;
mod diag;
pub mod engine;
pub mod error;
pub mod files;
mod instance;
pub mod key_value;
pub mod limits;
pub mod manifest;
pub mod outbound_http;
mod parse_errors;
pub mod routing;
pub mod runtime_config;
pub mod server;
pub mod sqlite;
pub mod variables;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};

pub use engine::shared_engine;
pub use error::ErrorBody;
pub use instance::PreparedComponent;
pub use sqlite::Synchronous;

use capability::{AppCapabilities, AppContext, ComponentContext};
use diag::one_line;
use instance::InstanceSettings;
use manifest::Manifest;
use routing::Router;
use runtime_config::LibsqlConfig;
use runtime_config::RuntimeConfig;
use variables::AppVariables;

/// Default instance slots ([`HostConfig::max_instances`]): room for a few hundred held
/// requests (hooks waiting for an approval) beside ordinary traffic, and under tokio's
/// default of 512 blocking threads (each running guest occupies one), leaving 64 of
/// them for other blocking work, so that a request past the last slot gets its quick
/// 503 instead of queueing for a thread.
pub const DEFAULT_MAX_INSTANCES: u32 = 448;

/// Everything [`Host::start`] needs. [`HostConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The application manifest (`spin.toml`).
    pub manifest_path: PathBuf,
    /// The runtime config (`runtime-config.toml`), if any.
    pub runtime_config_path: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port (see [`Host::local_addr`]).
    pub listen: SocketAddr,
    /// Database label to file; wins over the runtime config (e.g. `default` to the
    /// `DATABASE_PATH` an embedder was given).
    pub sqlite_path_overrides: HashMap<String, PathBuf>,
    /// Database label to a libSQL server; wins over the runtime config like a path
    /// override (e.g. `default` to `DATABASE_URL`). A label in both maps is an error.
    pub sqlite_libsql_overrides: HashMap<String, LibsqlConfig>,
    /// Application variable overrides by name (matched case-insensitively).
    pub variables: HashMap<String, String>,
    /// Run time one request's guest run may use, response body included: time spent
    /// executing (guest code, and host code it runs inline such as SQLite statements),
    /// not time spent waiting (sleeping, outbound HTTP, a slow client). What stops a
    /// component that loops. See [`limits`].
    pub request_deadline: Duration,
    /// Wall time one request's guest run may last, waits included: the response head
    /// must come within it (else a 504) and the run ends at it. `None` (the default)
    /// is `request_deadline`, i.e. one wall-clock limit, as before the two were
    /// separate; a value shorter than `request_deadline` counts as `request_deadline`.
    /// `orchestrator up` sets 15 minutes, for requests a component holds open on
    /// purpose (an approval waiting for a person).
    pub request_wall_limit: Option<Duration>,
    /// How long [`Host::serve`] lets in-flight requests finish after shutdown.
    pub shutdown_grace: Duration,
    /// Connections per database.
    pub sqlite_pool_size: usize,
    /// How long `open` waits for a free connection before failing.
    pub sqlite_pool_wait: Duration,
    /// SQLite `busy_timeout` of every connection.
    pub sqlite_busy_timeout: Duration,
    /// SQLite `synchronous` level (see [`Synchronous`] for what each guarantees).
    pub sqlite_synchronous: Synchronous,
    /// Instance slots of the pooling allocator, i.e. concurrent requests (held ones
    /// included; a self request takes a slot of its own). One more gets a 503
    /// `unavailable` at once. Hosts with the same value share one engine
    /// ([`shared_engine`]). A slot reserves address space, not memory: a used slot
    /// keeps up to a few MiB resident for reuse (see [`engine`]).
    ///
    /// Each running guest occupies one of tokio's blocking threads (its SQLite calls
    /// run there, inline): keep the runtime's `max_blocking_threads` above this
    /// (tokio's default is 512), or requests past it queue for a thread instead of
    /// getting a quick 503 when every slot is taken.
    pub max_instances: u32,
    /// How long a client may take to send a request head; also how long an idle
    /// keep-alive connection stays open. Slow-loris protection.
    pub header_read_timeout: Duration,
    /// Open connections per client address; one more gets a 503 and is closed.
    pub max_connections_per_client: usize,
    /// Where compiled components are kept between starts ([`compile_cache`]).
    pub compile_cache: CompileCache,
    /// The body of the error answers the host makes on its own (no route, a component
    /// that failed or timed out before its response head, a malformed request, no
    /// capacity): plain text as in Spin, or the JSON shape an app's own API uses.
    pub error_body: ErrorBody,
}

/// Where [`Host::start`] keeps compiled components between starts, so a restart
/// loads machine code instead of compiling (see [`compile_cache`] for the keying and
/// the checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileCache {
    /// No cache: every start compiles.
    Off,
    /// `.spin/compiled/` beside the manifest ([`compile_cache::default_dir`]), as
    /// `orchestrator up` uses.
    InApp,
    /// This folder (created if needed).
    At(PathBuf),
}

impl CompileCache {
    /// The folder for an app whose manifest is in `manifest_dir`, if any.
    pub fn dir(&self, manifest_dir: &std::path::Path) -> Option<PathBuf> {
        match self {
            CompileCache::Off => None,
            CompileCache::InApp => Some(compile_cache::default_dir(manifest_dir)),
            CompileCache::At(dir) => Some(dir.clone()),
        }
    }
}

impl HostConfig {
    /// Defaults: listen on `127.0.0.1:3000` (as `spin up`), no runtime config,
    /// 60 s run-time deadline and the same wall-time limit, 10 s shutdown grace, 16
    /// connections per database with a 5 s wait, 5 s busy timeout,
    /// `synchronous = NORMAL`, [`DEFAULT_MAX_INSTANCES`] instances, a 10 s header
    /// read timeout, 512 connections per client address, no compile cache (an
    /// embedder, or a test, opts in with [`HostConfig::compile_cache`]), and
    /// plain-text error answers, as Spin's.
    pub fn new(manifest_path: impl Into<PathBuf>) -> Self {
        HostConfig {
            manifest_path: manifest_path.into(),
            runtime_config_path: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            sqlite_path_overrides: HashMap::new(),
            sqlite_libsql_overrides: HashMap::new(),
            variables: HashMap::new(),
            request_deadline: Duration::from_secs(60),
            request_wall_limit: None,
            shutdown_grace: Duration::from_secs(10),
            sqlite_pool_size: 16,
            sqlite_pool_wait: Duration::from_secs(5),
            sqlite_busy_timeout: Duration::from_secs(5),
            sqlite_synchronous: Synchronous::Normal,
            max_instances: DEFAULT_MAX_INSTANCES,
            header_read_timeout: Duration::from_secs(10),
            max_connections_per_client: 512,
            compile_cache: CompileCache::Off,
            error_body: ErrorBody::default(),
        }
    }
}

/// A started host: configuration validated, databases open, components ready,
/// listener bound. Nothing is accepted until [`Host::serve`].
pub struct Host {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    app: Arc<server::App>,
    routes: Vec<(String, String)>,
    compiled: Vec<(String, compile_cache::CacheOutcome)>,
    capabilities: AppCapabilities,
    shutdown_grace: Duration,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("local_addr", &self.local_addr)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Parse the manifest and runtime config, validate them, open (creating if
    /// needed, with its folder) every database in use, compile and pre-instantiate
    /// every routed component, and bind the listener.
    ///
    /// Every failure is an error whose one-line Display names the cause: the file and
    /// line of bad TOML, a missing `.wasm` with its path, an import the host lacks, a
    /// required variable without a value, a database that cannot be opened with its
    /// path, an address already in use.
    pub async fn start(config: HostConfig) -> Result<Host> {
        start(config)
            .await
            .map_err(|e| anyhow!("{}", one_line(&format!("{e:#}"))))
    }

    /// The bound address (with the real port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `(route, component id)` for every HTTP route, in manifest order.
    pub fn routes(&self) -> Vec<(String, String)> {
        self.routes.clone()
    }

    /// `(component id, how its machine code was obtained)` for every loaded
    /// component, sorted by id: compiled, or loaded from the compile cache.
    pub fn compiled(&self) -> Vec<(String, compile_cache::CacheOutcome)> {
        self.compiled.clone()
    }

    /// `(label, file)` for every open database, sorted by label.
    pub fn databases(&self) -> Vec<(String, PathBuf)> {
        let mut out: Vec<(String, PathBuf)> = self
            .capabilities
            .sqlite
            .databases()
            .pools()
            .map(|p| (p.label().to_string(), p.path().to_path_buf()))
            .collect();
        out.sort();
        out
    }

    /// `(label, server)` for every libSQL database, sorted by label.
    pub fn libsql_databases(&self) -> Vec<(String, LibsqlConfig)> {
        self.capabilities
            .sqlite
            .libsql()
            .iter()
            .map(|(label, server)| (label.clone(), server.clone()))
            .collect()
    }

    /// Serve until `shutdown` resolves; then stop accepting, let in-flight requests
    /// finish within `shutdown_grace`, end the rest, and close the capabilities (the
    /// database pools wait a bounded time for connections still in use).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        tracing::info!(addr = %self.local_addr, "serving");
        server::serve(self.listener, self.app, self.shutdown_grace, shutdown).await;
        self.capabilities.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn start(config: HostConfig) -> Result<Host> {
    let manifest = Manifest::from_file(&config.manifest_path)?;
    let runtime_config = match &config.runtime_config_path {
        Some(path) => RuntimeConfig::from_file(path)?,
        None => RuntimeConfig::default(),
    };
    let app_variables = AppVariables::resolve(&manifest.variables, &config.variables)?;
    let capabilities = AppCapabilities::configure(&AppContext {
        config: &config,
        manifest: &manifest,
        runtime_config: &runtime_config,
        variables: &app_variables,
    })
    .await?;

    // Routed components are the ones that get loaded; the others are only validated.
    let routes = manifest.routes();
    let routed: BTreeSet<&str> = routes.iter().map(|(_, c)| c.as_str()).collect();
    let engine = shared_engine(config.max_instances)?;
    let linker = instance::linker(&engine)?;
    let compile_cache_dir = config.compile_cache.dir(&manifest.dir);
    let loading = std::time::Instant::now();
    let mut components = HashMap::new();
    for (id, component) in &manifest.components {
        if !routed.contains(id.as_str()) {
            continue;
        }
        let settings = InstanceSettings {
            environment: component
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            componentize_cache: componentize::cache_dir(&manifest.dir),
            compile_cache: compile_cache_dir.clone(),
            capabilities: capabilities.prepare_component(&ComponentContext {
                id,
                component,
                manifest_dir: &manifest.dir,
            })?,
        };
        let prepared =
            PreparedComponent::prepare(&engine, &linker, id, &component.source, settings).await?;
        tracing::debug!(component = %id, source = %component.source.display(), "component ready");
        components.insert(id.clone(), Arc::new(prepared));
    }
    let compiled = instance::compiled_summary(&components, compile_cache_dir, loading).await;

    let router = Router::build(routes.iter().cloned())?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow!("cannot listen on {}: {e}", config.listen))?;
    let local_addr = listener.local_addr()?;
    // What a self request's `Host` says: the address a client of this host would use (a
    // wildcard listener is reached on loopback).
    let self_authority = match local_addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        a => a,
    }
    .to_string();
    let app = Arc::new(server::App {
        router,
        components,
        request_deadline: config.request_deadline,
        request_wall_limit: config
            .request_wall_limit
            .unwrap_or(config.request_deadline)
            .max(config.request_deadline),
        header_read_timeout: config.header_read_timeout,
        connection_limit: conn_limit::ConnectionLimit::new(config.max_connections_per_client),
        kill: tokio::sync::watch::channel(false).0,
        self_authority,
        error_body: config.error_body,
    });
    let weak: std::sync::Weak<dyn outbound_http::SelfHandler> = Arc::downgrade(&app) as _;
    let _ = capabilities.outbound_http.self_slot().set(weak);
    Ok(Host {
        listener,
        local_addr,
        app,
        routes,
        compiled,
        capabilities,
        shutdown_grace: config.shutdown_grace,
    })
}
