//! The arguments several subcommands share, and every default of the command line: each
//! flag is defined once here and flattened into the subcommands that take it.
//!
//! - [`ManifestArgs`]: `-f/--from` (`up`, `build`);
//! - [`DatabaseArgs`]: `--database-path`, `--database-url`, `--database-token` (`up`,
//!   `migrate`, `prune`);
//! - [`FeedArgs`]: the WebSocket sidecar's settings and the API token (`up`, `sidecar`);
//! - [`AllowArgs`]: the programs a runner may start (`runner`, `up --runner`).

use std::path::PathBuf;

use anyhow::Result;
use orchestrator_core::Config;

use crate::database::Target;

/// Default of `-f/--from`.
pub const DEFAULT_MANIFEST: &str = "spin.toml";
/// Default of `up --runtime-config-file`.
pub const DEFAULT_RUNTIME_CONFIG: &str = "runtime-config.toml";
/// Default of `--http-port` (as `HTTP_PORT`).
pub const DEFAULT_HTTP_PORT: u16 = 8000;
/// Default of `--websocket-port` (as `WEBSOCKET_PORT`).
pub const DEFAULT_WEBSOCKET_PORT: u16 = 8001;
/// Default of `--web-ui-port` (as `WEB_UI_PORT`): the core's, so the API and the
/// sidecar allow the same origin.
pub const DEFAULT_WEB_UI_PORT: u16 = Config::DEFAULT_WEB_UI_PORT;
/// Default of `--database-path` (as `DATABASE_PATH`).
pub const DEFAULT_DATABASE_PATH: &str = "data/orchestrator.db";
/// The API's address when it runs with the defaults (`connect --url`).
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8000";

/// The application manifest a command reads.
#[derive(clap::Args, Debug, Clone)]
pub struct ManifestArgs {
    /// The application manifest.
    #[arg(long = "from", short = 'f', default_value = DEFAULT_MANIFEST)]
    pub manifest: PathBuf,
}

/// Which database a command works on: a file or a libSQL server.
#[derive(clap::Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// The SQLite file (created with its folder if missing). Default:
    /// data/orchestrator.db.
    #[arg(long, env = "DATABASE_PATH")]
    pub database_path: Option<PathBuf>,
    /// A libSQL server (sqld, Turso) instead of a file: http://, https:// or libsql://.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// The libSQL server's auth token (sent as a bearer token).
    #[arg(long, env = "DATABASE_TOKEN", hide_env_values = true)]
    pub database_token: Option<String>,
}

impl DatabaseArgs {
    /// The database the flags name; [`DEFAULT_DATABASE_PATH`] when none.
    pub fn target(&self) -> Result<Target> {
        Target::from_args(
            self.database_path.clone(),
            self.database_url.clone(),
            self.database_token.clone(),
            DEFAULT_DATABASE_PATH,
        )
    }

    /// Whether a libSQL server is named (an empty URL names none).
    pub fn has_url(&self) -> bool {
        self.database_url
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty())
    }
}

// `up` also has a runtime config, which these flags win over: its help says so (clap's
// `mut_arg`, on `UpArgs`). Written as clap writes a doc comment: lines joined, no final
// period.
pub(crate) const UP_DATABASE_PATH_HELP: &str = "The SQLite file; wins over the runtime config. \
     Default when neither is given: data/orchestrator.db. A relative path (here or in the \
     runtime config) is relative to the working directory, as in Spin";
pub(crate) const UP_DATABASE_URL_HELP: &str = "A libSQL server (sqld, Turso) for the `default` \
     database instead of a file: http://, https:// or libsql://; wins over the runtime \
     config. Replicas of `up` given the same URL share one database (migrated once, whoever \
     starts first)";

/// Settings of the WebSocket sidecar shared by `up` and `sidecar`.
#[derive(clap::Args, Debug, Clone)]
pub struct FeedArgs {
    /// Port of the WebSocket endpoint (`/ws/agent-status`), on the API's interface.
    #[arg(long, env = "WEBSOCKET_PORT", default_value_t = DEFAULT_WEBSOCKET_PORT)]
    pub websocket_port: u16,
    /// Seconds without traffic before a client gets a heartbeat.
    #[arg(long, env = "HEARTBEAT_SECS", default_value_t = 30)]
    pub heartbeat_secs: u64,
    /// The web UI's port, for the allowed CORS/WebSocket origins.
    #[arg(long, env = "WEB_UI_PORT", default_value_t = DEFAULT_WEB_UI_PORT)]
    pub web_ui_port: u16,
    /// Extra allowed origins, comma-separated.
    #[arg(long, env = "CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
    /// Bearer token for `/api` and `/ws`; unset means open (local development only).
    #[arg(long, env = "ORCHESTRATOR_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
}

/// The allow-list, shared by `runner` and `up --runner`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AllowArgs {
    /// A program this runner may start (repeatable). A run's argv[0] must equal one
    /// exactly or have the same file name; anything else is never started.
    #[arg(long = "allow", value_name = "PROGRAM")]
    pub allow: Vec<String>,
}
