//! The wasmtime engine: one per process and pool size, shared by every [`crate::Host`].
//!
//! Why shared: the pooling allocator reserves address space for every instance slot
//! up front, so many engines in one process (a test binary starting many hosts) would
//! exhaust it. Why pooling: it roughly halves per-request instantiation time.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::Result;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

/// How often the engine's epoch advances: how often a running guest yields to the
/// async runtime and checks its deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Largest linear memory one guest memory may grow to.
const MAX_MEMORY_SIZE: usize = 256 << 20;

/// The engine configuration: component model, epoch interruption, pooling allocator
/// with `max_instances` component instance slots, cranelift optimising for speed.
///
/// Memory reservations are modest (256 MiB per linear memory instead of wasmtime's
/// 4 GiB default, explicit bounds checks beyond it) so that several pools fit in one
/// process's address space.
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

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .cranelift_opt_level(OptLevel::Speed)
        .memory_reservation(MAX_MEMORY_SIZE as u64)
        .memory_guard_size(32 << 20)
        .memory_reservation_for_growth(0)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    config
}

/// The process-wide engine for `max_instances` slots, created on first use.
///
/// Every call with the same `max_instances` returns (a clone of) the same engine.
/// Each engine gets one background thread that advances its epoch every
/// [`EPOCH_TICK`], for the life of the process.
pub fn shared_engine(max_instances: u32) -> Result<Engine> {
    static ENGINES: OnceLock<Mutex<HashMap<u32, Engine>>> = OnceLock::new();
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
        // The default pool (256 slots) must be creatable next to the others.
        shared_engine(256).unwrap();
    }

    #[test]
    fn same_size_same_engine() {
        let a = shared_engine(3).unwrap();
        let b = shared_engine(3).unwrap();
        assert!(Engine::same(&a, &b));
    }
}
