//! The wasmtime engine: one per process and pool size, shared by every [`crate::Host`].
//!
//! Why shared: the pooling allocator reserves address space for every instance slot
//! up front, so many engines in one process (a test binary starting many hosts) would
//! exhaust it. Why pooling: it roughly halves per-request instantiation time.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::Result;
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
    ProfilingStrategy,
};

/// How often the engine's epoch advances: how often a running guest yields to the
/// async runtime and checks its deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Largest linear memory one guest memory may grow to.
const MAX_MEMORY_SIZE: usize = 256 << 20;

/// Address space reserved per linear memory slot: all of a 32-bit memory's index
/// space, so that compiled guest code needs no explicit bounds check on its loads and
/// stores (the guard region traps instead). Reserved, not committed: 4 GiB of
/// virtual address space per slot, 2 per instance slot (3.5 TiB for the default 448
/// slots, of x86-64's 128 TiB). Reserving costs no resident memory: an idle
/// `orchestrator up` had the same VmRSS (55 MB) with 256 slots and with 448, only its
/// VmSize grew (2.0 to 3.5 TiB). A slot in use does: 200 long-polls held at once took
/// it to 128 MB.
const MEMORY_RESERVATION: u64 = 4 << 30;

/// Stack of each guest fiber: the guest's wasm stack plus the host calls it makes.
const ASYNC_STACK_SIZE: usize = 8 << 20;

/// Bytes of a linear memory slot kept mapped (and reset in place) between instances.
const KEEP_RESIDENT_MEMORY: usize = 8 << 20;

/// Bytes of a table slot kept mapped (and reset in place) between instances.
const KEEP_RESIDENT_TABLE: usize = 1 << 20;

/// The engine configuration: component model, epoch interruption, pooling allocator
/// with `max_instances` component instance slots, cranelift optimising for speed.
///
/// Each linear memory slot reserves 4 GiB of address space (see
/// `MEMORY_RESERVATION`; guest memories may still grow only to 256 MiB): guest code
/// then runs without explicit bounds checks, which made list responses (JSON built in
/// the guest) about 10 % cheaper than with 256 MiB reservations. Engines are shared
/// per slot count ([`shared_engine`]), so a process holds few of them.
pub fn engine_config(max_instances: u32) -> Config {
    let max_instances = max_instances.max(1);
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_component_instances(max_instances)
        // A Rust component is a few core instances (main module, WASI adapter,
        // shims), with up to two memories; leave headroom.
        .total_core_instances(max_instances.saturating_mul(8))
        .total_memories(max_instances.saturating_mul(2))
        .total_tables(max_instances.saturating_mul(4))
        .total_stacks(max_instances)
        .max_memory_size(MAX_MEMORY_SIZE)
        .max_core_instances_per_component(32)
        .max_memories_per_component(4)
        .max_tables_per_component(8);
    // Resetting a slot for its next instance. With `pagemap_scan` (Linux 6.7+) only
    // the pages the last instance dirtied are restored in place (memset/memcpy), up
    // to the keep-resident amounts, instead of `madvise`: unmapping pages in a
    // multi-threaded process is a TLB shoot-down on every core, and every next
    // request then page-faults its memory back in. Without pagemap_scan, keeping
    // memory resident would memset the whole amount every time, so it stays off.
    // Costs resident memory: up to these amounts per slot that has been used.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pooling
            .pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLE);
    }

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .cranelift_opt_level(OptLevel::Speed)
        .memory_reservation(MEMORY_RESERVATION)
        .memory_guard_size(32 << 20)
        .memory_reservation_for_growth(0)
        // Host calls run on the guest's fiber stack, and SQLite statements run inline
        // in them (see `sqlite`): leave SQLite's parser and JSON functions ample room
        // beside the 512 KiB the guest may use (wasmtime's default is 2 MiB in all).
        // Reserved per instance slot, touched only as used.
        .async_stack_size(ASYNC_STACK_SIZE)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    // Spin components are wasip2 (no component-model async): skip the per-store
    // state for concurrent guests (a worker fiber per store, task bookkeeping around
    // every host call).
    config.concurrency_support(false);
    // For profiling guest code with `perf`: SPIN_HOST_PROFILER=perfmap writes
    // /tmp/perf-PID.map so perf can name JIT-compiled wasm functions.
    if std::env::var("SPIN_HOST_PROFILER").is_ok_and(|v| v.eq_ignore_ascii_case("perfmap")) {
        config.profiler(ProfilingStrategy::PerfMap);
    }
    config
}

/// The engine a start compiles with: the same configuration as `engine`'s (so what it
/// compiles loads into `engine`), but its own compiler. wasmtime keeps a pool of
/// Cranelift's compiler contexts for an engine's whole life (tens of MiB after this
/// app's components); compiling on an engine of its own and dropping it with
/// [`drop_compilers`] once the start is done gives that memory back. `None` for an
/// engine [`shared_engine`] did not make: it then compiles for itself.
pub fn compiler_for(engine: &Engine) -> Option<Engine> {
    let mut compilers = COMPILERS.lock().ok()?;
    if let Some((_, compiler)) = compilers.iter().find(|(e, _)| Engine::same(e, engine)) {
        return Some(compiler.clone());
    }
    let max_instances = ENGINES
        .get()?
        .lock()
        .ok()?
        .iter()
        .find(|(_, e)| Engine::same(e, engine))
        .map(|(n, _)| *n)?;
    let compiler = Engine::new(&engine_config(max_instances)).ok()?;
    compilers.push((engine.clone(), compiler.clone()));
    Some(compiler)
}

/// Drop the compiling engines [`compiler_for`] made (their compiler contexts go with
/// them once the last component compiled by them has been loaded elsewhere).
pub fn drop_compilers() {
    if let Ok(mut compilers) = COMPILERS.lock() {
        compilers.clear();
    }
}

/// Serving engine → the engine compiling for it, until [`drop_compilers`].
static COMPILERS: Mutex<Vec<(Engine, Engine)>> = Mutex::new(Vec::new());

static ENGINES: OnceLock<Mutex<HashMap<u32, Engine>>> = OnceLock::new();

/// The process-wide engine for `max_instances` slots, created on first use.
///
/// Every call with the same `max_instances` returns (a clone of) the same engine.
/// Each engine gets one background thread that advances its epoch every
/// [`EPOCH_TICK`], for the life of the process.
pub fn shared_engine(max_instances: u32) -> Result<Engine> {
    let engines = ENGINES.get_or_init(Default::default);
    let mut engines = engines
        .lock()
        .map_err(|_| anyhow::anyhow!("engine registry poisoned"))?;
    if let Some(engine) = engines.get(&max_instances) {
        return Ok(engine.clone());
    }
    let engine = Engine::new(&engine_config(max_instances))
        .map_err(|e| anyhow::anyhow!("cannot create the wasmtime engine: {e}"))?;
    let ticker = engine.weak();
    std::thread::Builder::new()
        .name("spin-host-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match ticker.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        })?;
    engines.insert(max_instances, engine.clone());
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_size_engine_fits() {
        // The default pool must be creatable next to the others.
        shared_engine(crate::DEFAULT_MAX_INSTANCES).unwrap();
    }

    #[test]
    fn same_size_same_engine() {
        let a = shared_engine(3).unwrap();
        let b = shared_engine(3).unwrap();
        assert!(Engine::same(&a, &b));
    }
}
