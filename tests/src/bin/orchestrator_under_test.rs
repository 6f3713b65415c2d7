//! The `orchestrator` command, built inside the e2e package so its tests can spawn it.

fn main() -> std::process::ExitCode {
    orchestrator_cli::main()
}
