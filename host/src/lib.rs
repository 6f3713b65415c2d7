//! A generic, Spin-compatible runtime for Spin HTTP applications on wasmtime.
//!
//! [`Host::start`] reads a Spin v2 manifest (and optionally a runtime config), opens
//! the SQLite databases, compiles and pre-instantiates every routed component, and
//! binds the listener; [`Host::serve`] answers requests until told to stop. Each
//! request runs in a fresh instance, as in Spin.
//!
//! The crate is split by capability, like Spin's factors: [`manifest`],
//! [`runtime_config`], [`routing`], [`sqlite`], [`variables`], [`server`] and
//! [`error`]; `instance` composes them into one store, and this file wires
//! configuration into them. Nothing here knows about any particular application.

#![warn(missing_docs)]

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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};

pub use engine::shared_engine;
pub use instance::PreparedComponent;
pub use sqlite::Synchronous;

use diag::one_line;
use instance::InstanceSettings;
use manifest::Manifest;
use routing::Router;
use runtime_config::RuntimeConfig;
use runtime_config::{LibsqlConfig, SqliteDatabase};
use sqlite::{Databases, Pool, PoolOptions, RemotePool};
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
    /// read timeout, 512 connections per client address, and no compile cache (an
    /// embedder, or a test, opts in with [`HostConfig::compile_cache`]).
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
    databases: Arc<Databases>,
    /// The libSQL servers by label (with their tokens), for [`Host::libsql_databases`].
    libsql_configs: BTreeMap<String, LibsqlConfig>,
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
            .databases
            .pools()
            .map(|p| (p.label().to_string(), p.path().to_path_buf()))
            .collect();
        out.sort();
        out
    }

    /// `(label, server)` for every libSQL database, sorted by label.
    pub fn libsql_databases(&self) -> Vec<(String, LibsqlConfig)> {
        self.libsql_configs
            .iter()
            .map(|(label, server)| (label.clone(), server.clone()))
            .collect()
    }

    /// Serve until `shutdown` resolves; then stop accepting, let in-flight requests
    /// finish within `shutdown_grace`, end the rest, and close the database pools
    /// (waiting a bounded time for connections still in use).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        tracing::info!(addr = %self.local_addr, "serving");
        server::serve(self.listener, self.app, self.shutdown_grace, shutdown).await;
        for pool in self.databases.pools() {
            pool.close(Duration::from_secs(5)).await;
        }
        for pool in self.databases.remote_pools() {
            pool.close(Duration::from_secs(5)).await;
        }
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

    // Routed components are the ones that get loaded; the others are only validated.
    let routes = manifest.routes();
    let routed: BTreeSet<&str> = routes.iter().map(|(_, c)| c.as_str()).collect();

    let (databases, libsql_configs) = open_databases(&config, &manifest, &runtime_config).await?;
    let key_value_stores = Arc::new(open_key_value_stores(&manifest, &runtime_config)?);

    let engine = shared_engine(config.max_instances)?;
    let linker = instance::linker(&engine)?;
    // Filled in once the app is built: what serves the components' requests to it.
    let self_handler: outbound_http::SelfSlot = Arc::new(std::sync::OnceLock::new());
    let compile_cache_dir = config.compile_cache.dir(&manifest.dir);
    let loading = std::time::Instant::now();
    let mut components = HashMap::new();
    for (id, component) in &manifest.components {
        let variables = app_variables.component_values(id, &component.variables)?;
        if !routed.contains(id.as_str()) {
            continue;
        }
        let settings = InstanceSettings {
            environment: component
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            databases: databases.clone(),
            allowed_databases: component.sqlite_databases.iter().cloned().collect(),
            variables,
            componentize_cache: componentize::cache_dir(&manifest.dir),
            compile_cache: compile_cache_dir.clone(),
            outbound: Arc::new(outbound_http::OutboundConfig {
                component: id.clone(),
                allowed: outbound_http::AllowedHosts::parse(
                    &component.allowed_outbound_hosts,
                    |name| app_variables.get(name).map(str::to_string),
                )
                .map_err(|e| anyhow!("component `{id}`: {e}"))?,
                self_handler: self_handler.clone(),
            }),
            key_value: key_value::KeyValueCtx::new(
                key_value_stores.clone(),
                Arc::new(component.key_value_stores.iter().cloned().collect()),
            ),
            files: files::mounts(
                id,
                &manifest.dir,
                &component.files,
                &component.exclude_files,
            )?,
        };
        let prepared =
            PreparedComponent::prepare(&engine, &linker, id, &component.source, settings).await?;
        tracing::debug!(component = %id, source = %component.source.display(), "component ready");
        components.insert(id.clone(), Arc::new(prepared));
    }
    let compiled = compiled_summary(&components, compile_cache_dir, loading).await;

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
    });
    let weak: std::sync::Weak<dyn outbound_http::SelfHandler> = Arc::downgrade(&app) as _;
    let _ = self_handler.set(weak);
    Ok(Host {
        listener,
        local_addr,
        app,
        routes,
        compiled,
        databases,
        libsql_configs,
        shutdown_grace: config.shutdown_grace,
    })
}

/// How each component's code was obtained, logged in one line; and, when this start
/// wrote to the compile cache, the cache pruned (keeping what this host loaded).
async fn compiled_summary(
    components: &HashMap<String, Arc<PreparedComponent>>,
    cache_dir: Option<PathBuf>,
    loading: std::time::Instant,
) -> Vec<(String, compile_cache::CacheOutcome)> {
    use compile_cache::CacheOutcome;
    let mut compiled: Vec<(String, CacheOutcome)> = components
        .iter()
        .map(|(id, c)| (id.clone(), c.compiled().clone()))
        .collect();
    compiled.sort_by(|a, b| a.0.cmp(&b.0));
    let count = |f: fn(&CacheOutcome) -> bool| compiled.iter().filter(|(_, o)| f(o)).count();
    let hits = count(|o| matches!(o, CacheOutcome::Hit));
    let reused = count(|o| matches!(o, CacheOutcome::Reused));
    let built = compiled.len() - hits - reused;
    let ms = loading.elapsed().as_millis() as u64;
    match &cache_dir {
        Some(dir) => tracing::info!(
            from_cache = hits,
            compiled = built,
            reused,
            ms,
            cache = %dir.display(),
            "components ready"
        ),
        None => tracing::info!(
            compiled = built,
            reused,
            ms,
            "components ready (no compile cache)"
        ),
    }
    if built > 0 {
        let started = std::time::Instant::now();
        let _ = tokio::task::spawn_blocking(compile_cache::release_compiler_memory).await;
        tracing::debug!(
            ms = started.elapsed().as_millis() as u64,
            "compiler memory released"
        );
    }
    if let Some(dir) = cache_dir.filter(|_| built > 0) {
        let keep: HashSet<PathBuf> = components
            .values()
            .filter_map(|c| c.cache_file().map(|f| f.to_path_buf()))
            .collect();
        if let Ok(removed) =
            tokio::task::spawn_blocking(move || compile_cache::prune(&dir, &keep)).await
        {
            if removed > 0 {
                tracing::info!(removed, "compile cache pruned");
            }
        }
    }
    compiled
}

/// Decide where each database lives and open the pools.
///
/// A label is configured if the runtime config or an override names it (`default`
/// always is, at `.spin/sqlite_db.db` next to the manifest unless configured
/// otherwise). A component listing an unconfigured label is a start-up error, as in
/// Spin. Pools are opened for labels some component uses and for labels configured
/// explicitly; a configured label no component lists can never be opened anyway.
async fn open_databases(
    config: &HostConfig,
    manifest: &Manifest,
    runtime_config: &RuntimeConfig,
) -> Result<(Arc<Databases>, BTreeMap<String, LibsqlConfig>)> {
    let mut targets: BTreeMap<String, SqliteDatabase> = runtime_config.sqlite_databases.clone();
    for (label, path) in &config.sqlite_path_overrides {
        if config.sqlite_libsql_overrides.contains_key(label) {
            bail!("database `{label}` is given both a file and a libSQL server; give one");
        }
        targets.insert(label.clone(), SqliteDatabase::File(path.clone()));
    }
    for (label, remote) in &config.sqlite_libsql_overrides {
        targets.insert(label.clone(), SqliteDatabase::Libsql(remote.clone()));
    }
    let mut configured: HashSet<String> = targets.keys().cloned().collect();
    configured.insert("default".to_string());

    let mut used: BTreeSet<String> = targets.keys().cloned().collect();
    for (id, component) in &manifest.components {
        for label in &component.sqlite_databases {
            if !configured.contains(label) {
                bail!(
                    "component `{id}` uses SQLite database `{label}`, which is not configured (add [sqlite_database.{label}] to the runtime config)"
                );
            }
            used.insert(label.clone());
        }
    }

    let options = PoolOptions {
        size: config.sqlite_pool_size.max(1),
        wait: config.sqlite_pool_wait,
        busy_timeout: config.sqlite_busy_timeout,
        synchronous: config.sqlite_synchronous,
    };
    let mut pools = HashMap::new();
    let mut remote = HashMap::new();
    let mut libsql_configs = BTreeMap::new();
    for label in used {
        match targets.get(&label) {
            Some(SqliteDatabase::Libsql(server)) => {
                let pool = RemotePool::open(&label, server, &options).await?;
                tracing::debug!(database = %label, url = %server.url, "libSQL database reachable");
                libsql_configs.insert(label.clone(), server.clone());
                remote.insert(label, pool);
            }
            file => {
                let path = match file {
                    Some(SqliteDatabase::File(path)) => path.clone(),
                    _ => runtime_config::default_database_path(&manifest.dir),
                };
                let pool = Pool::open(&label, &path, options.clone()).await?;
                tracing::debug!(database = %label, path = %path.display(), "database open");
                pools.insert(label, pool);
            }
        }
    }
    let databases = Databases::new(pools, configured).with_remote(remote);
    Ok((Arc::new(databases), libsql_configs))
}

/// Open the key-value stores some component lists: `default` at Spin's
/// `.spin/sqlite_key_value.db` unless the runtime config moves it, any other label
/// only if the runtime config has `[key_value_store.<label>]` (a start-up error
/// otherwise, as in Spin). Nothing is opened for an app that uses none.
fn open_key_value_stores(
    manifest: &Manifest,
    runtime_config: &RuntimeConfig,
) -> Result<key_value::Stores> {
    let mut used = BTreeMap::new();
    for (id, component) in &manifest.components {
        for label in &component.key_value_stores {
            let path = match runtime_config.key_value_stores.get(label) {
                Some(path) => path.clone(),
                None if label == "default" => key_value::default_store_path(&manifest.dir),
                None => bail!(
                    "component `{id}` uses key-value store `{label}`, which is not configured (add [key_value_store.{label}] to the runtime config)"
                ),
            };
            used.insert(label.clone(), path);
        }
    }
    key_value::Stores::open(used)
}
