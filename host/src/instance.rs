//! Composition of the capabilities into one store: the per-instance state, the
//! linker, and components compiled and pre-instantiated once at start-up.
//!
//! Every component gets WASI p2 and WASI HTTP p2 from here; everything else it may
//! import comes from the capabilities (see [`crate::capability`]), which this module
//! goes through without naming any of them.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use anyhow::{anyhow, Result};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::capability::{
    AppCapabilities, ComponentCapabilities, InstanceCapabilities, InstanceContext,
};
use crate::compile_cache::{CacheOutcome, Loaded};
use crate::diag::one_line;
use crate::limits::RunMeter;
use crate::sqlite::StopCheck;

/// Everything one instance (one request) owns. Dropping it (with its store) drops the
/// instance's resources, which returns pinned SQLite connections to their pools.
pub struct HostState {
    /// The instance's resources, shared by every binding.
    pub(crate) table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    /// Each capability's state for this instance.
    pub(crate) capabilities: InstanceCapabilities,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.capabilities.outbound_http,
        }
    }
}

/// A linker with everything a Spin HTTP component may import here: WASI p2, WASI
/// HTTP p2, and every capability's interfaces.
pub fn linker(engine: &Engine) -> Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(to_anyhow)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(to_anyhow)?;
    AppCapabilities::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// wasmtime has its own error type; flatten it (with its causes) into anyhow.
pub(crate) fn to_anyhow(e: wasmtime::Error) -> anyhow::Error {
    anyhow!("{}", one_line(&format!("{e:#}")))
}

/// What a component instance gets besides the component itself.
pub struct InstanceSettings {
    /// Environment variables (`[component.X] environment`).
    pub environment: Vec<(String, String)>,
    /// Where core modules converted to components are kept
    /// ([`crate::componentize::cache_dir`]).
    pub componentize_cache: PathBuf,
    /// Where compiled components are kept between starts ([`crate::compile_cache`]);
    /// `None` compiles every start.
    pub compile_cache: Option<PathBuf>,
    /// Every capability's state for this component.
    pub(crate) capabilities: ComponentCapabilities,
}

/// A component compiled and pre-instantiated once; [`PreparedComponent::new_store`]
/// makes the fresh store each request runs in.
pub struct PreparedComponent {
    id: String,
    source: PathBuf,
    pre: ProxyPre<HostState>,
    environment: Arc<Vec<(String, String)>>,
    capabilities: ComponentCapabilities,
    compiled: CacheOutcome,
    cache_file: Option<PathBuf>,
}

impl PreparedComponent {
    /// Compile `source` (on a blocking thread; kept per engine and file version in
    /// this process, and in `settings.compile_cache` between processes) and
    /// pre-instantiate it against `linker`.
    ///
    /// Errors are one line naming the component and its file: a missing or invalid
    /// `.wasm`, an import this host does not provide (named), or a component that does
    /// not export `wasi:http/incoming-handler`.
    pub async fn prepare(
        engine: &Engine,
        linker: &Linker<HostState>,
        id: &str,
        source: &Path,
        settings: InstanceSettings,
    ) -> Result<PreparedComponent> {
        // A core wasm module (wasip1) is compiled from the component made of it.
        let (module, cache) = (source.to_path_buf(), settings.componentize_cache.clone());
        let loadable = tokio::task::spawn_blocking(move || {
            crate::componentize::loadable_path(&module, &cache)
        })
        .await
        .map_err(|e| anyhow!("component `{id}`: {e}"))?
        .map_err(|e| anyhow!("component `{id}`: {e:#}"))?;
        let loaded = compile_cached(engine, &loadable, settings.compile_cache.as_deref())
            .await
            .map_err(|e| anyhow!("component `{id}`: {e}"))?;
        let instance_pre = linker.instantiate_pre(&loaded.component).map_err(|e| {
            anyhow!(
                "component `{id}` ({}) needs an import this host does not provide: {}",
                source.display(),
                one_line(&format!("{e:#}"))
            )
        })?;
        let pre = ProxyPre::new(instance_pre).map_err(|e| {
            anyhow!(
                "component `{id}` ({}) is not a Spin HTTP component (no wasi:http/incoming-handler export): {}",
                source.display(),
                one_line(&format!("{e:#}"))
            )
        })?;
        Ok(PreparedComponent {
            id: id.to_string(),
            source: source.to_path_buf(),
            pre,
            environment: Arc::new(settings.environment),
            capabilities: settings.capabilities,
            compiled: loaded.outcome,
            cache_file: loaded.file,
        })
    }

    /// How its machine code was obtained: compiled, or loaded from the compile cache.
    pub fn compiled(&self) -> &CacheOutcome {
        &self.compiled
    }

    /// The compile cache's file holding its machine code, if any.
    pub fn cache_file(&self) -> Option<&Path> {
        self.cache_file.as_deref()
    }

    /// The component id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `.wasm` file it was compiled from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The pre-instantiated component.
    pub fn pre(&self) -> &ProxyPre<HostState> {
        &self.pre
    }

    /// A fresh store for one request: its own WASI context (stdio inherited, the
    /// component's environment, no network), each capability's instance state, and
    /// guest code that yields to the async runtime every
    /// epoch tick and traps once `meter` says either of the run's limits has passed (see
    /// [`crate::limits`]).
    /// `stop_sqlite` says when a running SQLite statement must be interrupted (see
    /// [`crate::sqlite::StopCheck`]).
    pub fn new_store(&self, meter: Arc<RunMeter>, stop_sqlite: StopCheck) -> Store<HostState> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout().inherit_stderr();
        wasi.envs(&self.environment);
        let capabilities = self.capabilities.new_instance(&mut InstanceContext {
            component_id: &self.id,
            meter: &meter,
            stop_sqlite: &stop_sqlite,
            wasi: &mut wasi,
        });
        let state = HostState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            capabilities,
        };
        let mut store = Store::new(self.pre.engine(), state);
        // Every epoch tick, a running guest yields to the async runtime, and traps
        // (Trap::Interrupt) once it has used its run time or outlived its wall limit.
        // The callback runs only while guest code runs, so it cannot see a guest that
        // waits: the run time it checks is measured around the run's future instead
        // (waits are the stretches in which that future is pending; see
        // [`crate::limits`] for why the gaps between callbacks would not do), and a guest
        // still waiting at its wall limit is ended by the server's timeout.
        // Trapping alone is not enough: the yield lets the run's other branches (the
        // wall-limit timeout, shutdown, the client going away) be polled while a guest
        // computes in a loop.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(match meter.exceeded() {
                Some(_) => UpdateDeadline::Interrupt,
                None => UpdateDeadline::Yield(1),
            })
        });
        store
    }
}

/// How each component's code was obtained, logged in one line; and, when this start
/// wrote to the compile cache, the cache pruned (keeping what this host loaded).
pub(crate) async fn compiled_summary(
    components: &HashMap<String, Arc<PreparedComponent>>,
    cache_dir: Option<PathBuf>,
    loading: std::time::Instant,
) -> Vec<(String, CacheOutcome)> {
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
        let _ = tokio::task::spawn_blocking(|| {
            crate::engine::drop_compilers();
            crate::compile_cache::release_compiler_memory();
        })
        .await;
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
            tokio::task::spawn_blocking(move || crate::compile_cache::prune(&dir, &keep)).await
        {
            if removed > 0 {
                tracing::info!(removed, "compile cache pruned");
            }
        }
    }
    compiled
}

type MemoKey = (PathBuf, u64, Option<SystemTime>);

/// What [`compile_cached`] keeps per file version and engine.
#[derive(Clone)]
struct Memo {
    component: Component,
    file: Option<PathBuf>,
}

/// Compile a component file, reusing an earlier compilation of the same file
/// version with the same engine in this process (tests start many hosts on one
/// fixture; [`CacheOutcome::Reused`]), else loading it from the compile cache in
/// `cache_dir` or compiling it ([`crate::compile_cache::load_or_compile`]).
async fn compile_cached(
    engine: &Engine,
    source: &Path,
    cache_dir: Option<&Path>,
) -> Result<Loaded> {
    static MEMO: OnceLock<Mutex<Vec<(MemoKey, Engine, Memo)>>> = OnceLock::new();
    let meta =
        std::fs::metadata(source).map_err(|e| anyhow!("cannot read {}: {e}", source.display()))?;
    let canonical = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
    let key: MemoKey = (canonical, meta.len(), meta.modified().ok());
    let memo = MEMO.get_or_init(Default::default);
    if let Some(hit) = memo.lock().ok().and_then(|c| {
        c.iter()
            .find(|(k, e, _)| *k == key && Engine::same(e, engine))
            .map(|(_, _, m)| m.clone())
    }) {
        return Ok(Loaded {
            component: hit.component,
            outcome: CacheOutcome::Reused,
            file: hit.file,
        });
    }
    let engine2 = engine.clone();
    let path = source.to_path_buf();
    let cache_dir = cache_dir.map(Path::to_path_buf);
    let started = std::time::Instant::now();
    let loaded = tokio::task::spawn_blocking(move || {
        let wasm = std::fs::read(&path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
        crate::compile_cache::load_or_compile(&engine2, &wasm, cache_dir.as_deref())
    })
    .await
    .map_err(|e| anyhow!("compiling {}: {e}", source.display()))?
    .map_err(|e| {
        let detail = one_line(&format!("{e:#}"));
        // wasmparser's words for a WASI 0.3 (wasip3) component do not say what to do.
        let hint = if detail.contains("component model async feature") {
            " (a WASI 0.3 / wasip3 component, which this host does not run: build it for WASI 0.2, wasm32-wasip1 or wasm32-wasip2)"
        } else {
            ""
        };
        anyhow!("cannot compile {}: {detail}{hint}", source.display())
    })?;
    tracing::debug!(
        source = %source.display(),
        cache = ?loaded.outcome,
        ms = started.elapsed().as_millis() as u64,
        "component compiled or loaded"
    );
    if let Ok(mut c) = memo.lock() {
        c.retain(|(k, e, _)| !(k.0 == key.0 && Engine::same(e, engine)));
        c.push((
            key,
            engine.clone(),
            Memo {
                component: loaded.component.clone(),
                file: loaded.file.clone(),
            },
        ));
    }
    Ok(loaded)
}
