//! `bench-start`: how long `orchestrator up` takes to answer, and what it holds idle
//! (see `orchestrator_bench::start`).
//!
//! ```sh
//! cargo run --release -p orchestrator-bench --bin bench-start -- [--rounds 5] \
//!     [--orchestrator target/release/orchestrator] [--orchestrator /tmp/other-build]
//! ```

use anyhow::Result;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "bench-start",
    about = "Time from starting `orchestrator up` to its first 200 from /health, with an empty and a filled compile cache, and its idle RSS"
)]
struct Args {
    #[command(flatten)]
    options: orchestrator_bench::start::Options,
}

fn main() -> Result<()> {
    orchestrator_bench::start::run(Args::parse().options)
}
