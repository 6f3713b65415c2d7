//! `bench-approvals`: hooks held open for a person's decision, through the real host
//! (see `orchestrator_bench::approvals`).

use anyhow::Result;
use clap::Parser;

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    options: orchestrator_bench::approvals::Options,
}

fn main() -> Result<()> {
    orchestrator_bench::approvals::run(Args::parse().options)
}
