//! The `orchestrator` command: wires the generic Spin host, the WebSocket sidecar and the
//! core's native migrations into one tool for this app.
//!
//! - `up`: build (optionally), migrate, serve the API from `spin.toml`, run the sidecar.
//! - `build`: run each component's `[component.X.build]` command.
//! - `migrate`: apply the core's migrations natively.
//! - `sidecar`: only the WebSocket bridge, in front of any API base URL.
//! - `new`: scaffold a ready-to-run project.
//! - `prune`: apply retention now.
//! - `connect`: point a coding agent (Claude Code) at this backend.
//! - `runner`: claim dispatched runs and run their commands (`--allow`ed programs only).
//!
//! One module per subcommand, each with its arguments and its `run`; the arguments
//! several share, and every default, are in [`args`].

pub mod args;
pub mod build;
pub mod connect;
pub mod database;
pub mod migrate;
pub mod new;
pub mod prune;
pub mod runner;
pub mod settings;
pub mod shutdown;
pub mod sidecar;
pub mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Agent-orchestration backend: a Spin app on SQLite, with a live WebSocket feed.
#[derive(Parser, Debug)]
#[command(name = "orchestrator", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of `up`'s arguments costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the API (the Spin components, on wasmtime) and the WebSocket sidecar.
    Up(up::UpArgs),
    /// Build every component with its `[component.X.build]` command from spin.toml.
    Build(build::BuildArgs),
    /// Apply the database migrations natively and print the schema version.
    Migrate(migrate::MigrateArgs),
    /// Run only the WebSocket sidecar in front of an API base URL.
    Sidecar(sidecar::SidecarArgs),
    /// Apply retention now (RETENTION_DAYS) to DATABASE_PATH and print what it removed.
    Prune(prune::PruneArgs),
    /// Scaffold a new project that runs with `orchestrator up`.
    New(new::NewArgs),
    /// Print (or merge into .claude/settings.json) the Claude Code hooks for this backend.
    Connect(connect::ConnectArgs),
    /// Claim dispatched runs from an API and run their commands (only --allow'ed programs).
    Runner(runner::RunnerArgs),
}

/// Parse the command line (after reading `.env`) and run; errors print as one line.
pub fn main() -> ExitCode {
    settings::load_dotenv();
    let cli = Cli::parse();
    settings::init_logging();
    let result = match cli.command {
        Command::Up(args) => runtime().and_then(|rt| rt.block_on(up::run(args))),
        Command::Build(args) => build::run(&args),
        Command::Migrate(args) => migrate::run(&args),
        Command::Sidecar(args) => runtime().and_then(|rt| rt.block_on(sidecar::run(args))),
        Command::New(args) => new::run(&args),
        Command::Prune(args) => prune::run(&args),
        Command::Connect(args) => connect::run(&args),
        Command::Runner(args) => runtime().and_then(|rt| rt.block_on(runner::run(args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
