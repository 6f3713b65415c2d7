//! `bench-http`: the real host (wasm components) against a native server on the same core
//! functions, on loopback, with a built-in load generator. See `bench/README.md`.

use std::process::ExitCode;

use clap::Parser;

/// Benchmark the Spin host against a native server on the same core.
#[derive(Parser, Debug)]
#[command(name = "bench-http")]
struct Args {
    #[command(flatten)]
    options: orchestrator_bench::http::Options,
}

fn main() -> ExitCode {
    match orchestrator_bench::http::run(Args::parse().options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-http: {e:#}");
            ExitCode::FAILURE
        }
    }
}
