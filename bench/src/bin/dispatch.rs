//! `bench-dispatch`: runs dispatched to runners, measured: latency to an idle runner and
//! throughput through several (see `orchestrator_bench::dispatch`).

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "bench-dispatch")]
struct Args {
    #[command(flatten)]
    options: orchestrator_bench::dispatch::Options,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    match rt.block_on(orchestrator_bench::dispatch::run(args.options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
