//! The benchmarks (commands that print numbers, never tests), as a library with one thin
//! binary each under `src/bin/`. Each benchmark is one module with its `Options` (its
//! command line, flattened into the binary's parser) and a `run`:
//!
//! - [`http`]: the host against a native server on the same core (`bench-http`);
//! - [`ws`]: the live feed's latency through the WebSocket sidecar (`bench-ws`);
//! - [`ingest`]: hook events and OTLP exports into the ingest component (`bench-ingest`);
//! - [`approvals`]: hooks held open for a person's decision (`bench-approvals`);
//! - [`dispatch`]: runs dispatched to runners (`bench-dispatch`);
//! - [`start`]: how long `orchestrator up` takes to answer, and its idle RSS
//!   (`bench-start`).
//!
//! What they share:
//!
//! - [`load`]: the load generator and its HTTP client;
//! - [`stats`]: the one percentile function, and the summaries printed from it;
//! - [`host`]: the real host in this process, on a fresh database;
//! - [`spawn`]: `orchestrator up` (and `sidecar`) as a child process;
//! - [`runtimes`]: the servers' and the load generator's tokio runtimes;
//! - [`seed`]: the rows `bench-http` seeds each server with;
//! - [`usage`]: CPU, memory and load readings from `/proc`.

pub mod approvals;
pub mod dispatch;
pub mod host;
pub mod http;
pub mod ingest;
pub mod load;
pub mod runtimes;
pub mod seed;
pub mod spawn;
pub mod start;
pub mod stats;
pub mod usage;
pub mod ws;
