//! `orchestrator`: the command-line entry point. See `orchestrator --help`.

fn main() -> std::process::ExitCode {
    orchestrator_cli::main()
}
