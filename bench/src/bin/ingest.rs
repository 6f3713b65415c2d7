//! `bench-ingest`: what agents report (Claude Code hook events, OTLP exports) into one
//! database through the real host (see `orchestrator_bench::ingest`).

use anyhow::Result;
use clap::Parser;

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    options: orchestrator_bench::ingest::Options,
}

fn main() -> Result<()> {
    orchestrator_bench::ingest::run(Args::parse().options)
}
