//! `orchestrator new`: scaffold a project that runs with `cd DIR && orchestrator up`.
//!
//! The templates of the repo's `templates/` folder are embedded in the binary and rendered
//! with minijinja. A generated project holds `spin.toml`, `runtime-config.toml`, `.env`,
//! `.env.sample`, `README.md`, `.gitignore`, the migrations (the very bytes the core embeds
//! and applies) and the four components as prebuilt `components/<id>.wasm` files, copied
//! from this repo's build output: its `spin.toml` has no build sections.
//!
//! The same `spin.toml` and `runtime-config.toml` templates, rendered with the repo's own
//! values ([`render_repo_manifest`], [`render_repo_runtime_config`]), reproduce the repo's
//! files byte for byte (a test checks it), so the two cannot drift apart.
//!
//! Everything is checked before anything is written: the name, the ports, the database
//! path, the target folder and the components. Existing files are skipped unless
//! `--force`; each file is written to a temporary file in its folder and renamed into
//! place, so a failed write never leaves a half-written file.
//!
//! The parts: [`name`] checks (and suggests) application names; [`render`] turns the
//! embedded templates into a project's files; [`plan`](mod@plan) decides per file and
//! writes.

mod name;
mod plan;
mod render;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::args::{
    DEFAULT_DATABASE_PATH, DEFAULT_HTTP_PORT, DEFAULT_WEBSOCKET_PORT, DEFAULT_WEB_UI_PORT,
};
pub use name::{is_valid_name, suggest_name, validate_name};
pub use plan::{plan, Action, GeneratedFile, Plan, PlannedFile};
pub use render::{
    component_files, migration_files, render_env_sample, render_project, render_repo_manifest,
    render_repo_runtime_config, REPO_APP_NAME,
};

/// The components, in manifest order. Each ships as `components/<id>.wasm`.
pub const COMPONENTS: [&str; 6] = ["agents", "runtime", "events", "ingest", "ui", "meta"];

/// Where this repo's build (`orchestrator build`) puts the components; the default of
/// `--components-dir`.
pub const DEFAULT_COMPONENTS_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../components/target/wasm32-wasip2/release"
);

/// `orchestrator new DIR`: the command-line flags.
#[derive(clap::Args, Debug, Clone)]
pub struct NewArgs {
    /// Folder of the new project (created, with its parents, if missing).
    pub dir: PathBuf,
    /// Application name: lower-case kebab case starting with a letter (Spin's rule).
    /// Default: DIR's folder name.
    #[arg(long)]
    pub name: Option<String>,
    /// Port of the API (HTTP_PORT in the project's .env).
    #[arg(long, default_value_t = DEFAULT_HTTP_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub http_port: u16,
    /// Port of the WebSocket endpoint (WEBSOCKET_PORT).
    #[arg(long, default_value_t = DEFAULT_WEBSOCKET_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub websocket_port: u16,
    /// Port of the web UI, for CORS (WEB_UI_PORT).
    #[arg(long, default_value_t = DEFAULT_WEB_UI_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub web_ui_port: u16,
    /// The SQLite file, relative to the project folder (DATABASE_PATH and the path in
    /// runtime-config.toml).
    #[arg(long, default_value = DEFAULT_DATABASE_PATH)]
    pub database_path: String,
    /// Folder holding the built agents.wasm, runtime.wasm, events.wasm and meta.wasm.
    /// Default: this repo's build output (components/target/wasm32-wasip2/release).
    #[arg(long)]
    pub components_dir: Option<PathBuf>,
    /// Overwrite existing files (without it they are skipped and listed).
    #[arg(long)]
    pub force: bool,
    /// Print what would be created, skipped or overwritten; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl NewArgs {
    /// The flags as if only `DIR` were given: default ports and database path, the name
    /// from DIR, the repo's components, no `--force`, no `--dry-run`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            name: None,
            http_port: DEFAULT_HTTP_PORT,
            websocket_port: DEFAULT_WEBSOCKET_PORT,
            web_ui_port: DEFAULT_WEB_UI_PORT,
            database_path: DEFAULT_DATABASE_PATH.to_owned(),
            components_dir: None,
            force: false,
            dry_run: false,
        }
    }
}

/// The values a project is rendered with. [`Project::validate`] checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// `[application] name` in spin.toml.
    pub name: String,
    pub http_port: u16,
    pub websocket_port: u16,
    pub web_ui_port: u16,
    /// DATABASE_PATH in .env and the `default` database's path in runtime-config.toml.
    pub database_path: String,
}

impl Project {
    /// Ok when the name is a valid Spin application name ([`validate_name`]), every port
    /// is in 1..=65535 and the three ports differ, and the database path is non-empty and
    /// free of control characters.
    pub fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        let ports = [
            ("--http-port", self.http_port),
            ("--websocket-port", self.websocket_port),
            ("--web-ui-port", self.web_ui_port),
        ];
        for (i, (flag, port)) in ports.iter().enumerate() {
            if *port == 0 {
                bail!("{flag} must be in 1..=65535, not 0");
            }
            if let Some((other, _)) = ports[i + 1..].iter().find(|(_, p)| p == port) {
                bail!("{flag} and {other} are both {port}: each needs a port of its own");
            }
        }
        if self.database_path.trim().is_empty() {
            bail!("--database-path must not be empty");
        }
        if self.database_path.chars().any(char::is_control) {
            bail!("--database-path must not contain control characters (such as newlines)");
        }
        Ok(())
    }
}

/// The application name `new` takes from the project folder: its last component (of the
/// canonical path when it exists, so `.` works).
fn name_from_dir(dir: &Path) -> Result<String> {
    let resolved = if dir.exists() {
        dir.canonicalize()
    } else {
        std::path::absolute(dir)
    }
    .with_context(|| format!("resolving {}", dir.display()))?;
    resolved
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            anyhow!(
                "cannot take an application name from {}: pass --name NAME",
                dir.display()
            )
        })
}

/// `orchestrator new`: plan (checking everything), then write unless `--dry-run`, and
/// print the summary and next steps. Nothing is written when any check fails.
pub fn run(args: &NewArgs) -> Result<()> {
    let plan = plan(args)?;
    if !args.dry_run {
        plan.apply()?;
    }
    print!("{}", plan.summary(args.dry_run));
    Ok(())
}
