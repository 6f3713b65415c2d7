//! `bench-ws`: the live feed's latency through the WebSocket sidecar, with many clients
//! (see `orchestrator_bench::ws`).
//!
//! ```sh
//! cargo run --release -p orchestrator-bench --bin bench-ws -- [--clients 1000] [--updates 200]
//! ```

use anyhow::Result;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "bench-ws",
    about = "PATCH -> agent_update latency through the WebSocket sidecar with many clients"
)]
struct Args {
    #[command(flatten)]
    options: orchestrator_bench::ws::Options,
}

#[tokio::main]
async fn main() -> Result<()> {
    orchestrator_bench::ws::run(Args::parse().options).await
}
