//! The end-to-end harness: builds the components once per run, starts the real host
//! in-process on an ephemeral port with a temporary database, and gives tests an HTTP
//! client pointed at it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use spin_host::{Host, HostConfig};
use tokio::sync::oneshot;

/// The repository root (the folder holding `spin.toml`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository")
        .to_path_buf()
}

/// A TOML file as JSON, for schema validation.
pub fn toml_file_as_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let value: toml::Value =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{} is not TOML: {e}", path.display()));
    serde_json::to_value(value).expect("TOML converts to JSON")
}

/// Build the components (once per test binary): `cargo build` is a no-op when they are
/// up to date, and the test script builds them before the tests anyway.
pub fn build_components() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new("cargo")
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .current_dir(repo_root().join("components"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the components failed");
    });
}

/// The host running the app on a fresh database, stopped when dropped.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub db_path: PathBuf,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// The app with its default configuration.
    pub async fn start() -> TestApp {
        Self::start_with(|_| {}).await
    }

    /// The app with a configuration the test adjusts (variables, deadline, pool…).
    pub async fn start_with(customize: impl FnOnce(&mut HostConfig)) -> TestApp {
        build_components();
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("data").join("test.db");
        let mut config = HostConfig::new(repo_root().join("spin.toml"));
        config.runtime_config_path = Some(repo_root().join("runtime-config.toml"));
        config
            .sqlite_path_overrides
            .insert("default".into(), db_path.clone());
        config.listen = "127.0.0.1:0".parse().unwrap();
        // As `orchestrator up` runs the app: the host's own errors in the API's JSON shape.
        config.error_body = spin_host::ErrorBody::Json;
        customize(&mut config);
        let host = Host::start(config).await.expect("host starts");
        let base = format!("http://{}", host.local_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(host.serve(async {
            let _ = stopped.await;
        }));
        TestApp {
            base,
            db_path,
            client: reqwest::Client::new(),
            stop: Some(stop),
            served: Some(served),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .patch(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// POST and return the created JSON (asserting 201).
    pub async fn create(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let r = self.post(path, body).await;
        assert_eq!(r.status(), 201, "POST {path}");
        r.json().await.unwrap()
    }

    /// A definition and a run of it.
    pub async fn new_run(&self) -> serde_json::Value {
        let name = format!("def-{}", uuid_like());
        let def = self
            .create(
                "/api/agents",
                serde_json::json!({ "name": name, "agent_type": "builder" }),
            )
            .await;
        self.create(
            "/api/runtime/agents",
            serde_json::json!({ "orchestrator_agent_id": def["id"], "session_id": "e2e" }),
        )
        .await
    }

    /// Stop serving (graceful) and wait for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A unique-enough suffix for names (no uuid dependency needed here).
pub fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// The error code of an error response.
pub async fn error_code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

/// An `orchestrator` child process and the address it serves.
pub struct Served {
    pub child: std::process::Child,
    /// `http://…` for `up`, `ws://…` for `sidecar`.
    pub base: String,
}

impl Served {
    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Run the `orchestrator` command as a child and wait for the line starting with
/// `marker`, whose rest is the address it serves.
pub fn spawn_orchestrator(mut command: Command, marker: &str) -> Served {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("orchestrator starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("orchestrator exited before printing {marker:?}"))
            .unwrap();
        if let Some(rest) = line.strip_prefix(marker) {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Served { child, base }
}

/// The `orchestrator-under-test` binary cargo builds beside the test binaries
/// (`target/<profile>/`, one level above the tests' `deps/`).
pub fn orchestrator_command() -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    Command::new(profile_dir.join("orchestrator-under-test"))
}

/// `orchestrator up --no-sidecar` on `db`, listening on `listen` (port 0 for any).
pub fn spawn_up(db: &Path, listen: &str) -> Served {
    build_components();
    let root = repo_root();
    let mut command = orchestrator_command();
    command
        .args(["up", "--no-sidecar", "--listen", listen, "--from"])
        .arg(root.join("spin.toml"))
        .arg("--runtime-config-file")
        .arg(root.join("runtime-config.toml"))
        .env("DATABASE_PATH", db)
        .current_dir(db.parent().unwrap());
    spawn_orchestrator(command, "Serving ")
}

/// `orchestrator sidecar` following `upstream`, on a free port.
pub fn spawn_sidecar(upstream: &str, extra_env: &[(&str, &str)]) -> Served {
    let mut command = orchestrator_command();
    command
        .args(["sidecar", "--upstream", upstream, "--listen", "127.0.0.1:0"])
        .envs(extra_env.iter().copied());
    let mut served = spawn_orchestrator(command, "WebSocket: ");
    served.base = served.base.trim_end_matches("/ws/agent-status").to_owned();
    served
}

/// A port that was free a moment ago (for a server that must restart on the same port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
