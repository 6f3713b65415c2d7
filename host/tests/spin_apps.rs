//! Ordinary Spin apps, run unmodified from their own spin.toml (tests/apps/<name>):
//! built here for wasm32-wasip1 as `spin new http-rust` does, once per test process.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

mod common;

use spin_host::{Host, HostConfig};
use tokio::sync::oneshot;

fn apps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps")
}

/// Build every app of the apps workspace (one spin-sdk build) once per process, for
/// wasm32-wasip1 as `spin new http-rust` does.
fn build_apps() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| common::build_wasm(&apps_dir().join("Cargo.toml"), "wasm32-wasip1", None));
}

/// The app's manifest, its app built.
fn manifest(app: &str) -> PathBuf {
    build_apps();
    apps_dir().join(app).join("spin.toml")
}

fn config(app: &str) -> HostConfig {
    let mut config = HostConfig::new(manifest(app));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.request_deadline = Duration::from_secs(5);
    config.max_instances = 8;
    config
}

struct Running {
    base: String,
    stop: oneshot::Sender<()>,
}

async fn serve(config: HostConfig) -> Running {
    let host = Host::start(config).await.expect("host starts");
    let base = format!("http://{}", host.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(host.serve(async move {
        let _ = stopped.await;
    }));
    Running { base, stop }
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.expect("request");
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasip1_module_runs_and_its_component_is_cached() {
    let cache = apps_dir().join("hello-wasip1/.spin/componentized");
    let _ = std::fs::remove_dir_all(&cache);
    let app = serve(config("hello-wasip1")).await;
    assert_eq!(
        get(&format!("{}/", app.base)).await,
        (200, "Hello from a wasip1 module".to_string())
    );
    let _ = app.stop.send(());
    // The converted component is kept by the module's hash for the next start.
    let cached: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    let app = serve(config("hello-wasip1")).await;
    assert_eq!(get(&format!("{}/x", app.base)).await.0, 200);
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    let _ = app.stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_trigger_is_refused_by_name() {
    let e = Host::start(config("redis-trigger"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("trigger type `redis` is not supported by this host (Spin runs it; this host serves only HTTP triggers)"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
}

/// A plain HTTP server on loopback answering every request with `upstream says hi`.
async fn upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let body = "upstream says hi";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_follows_allowed_outbound_hosts() {
    let allowed = upstream().await;
    let other = upstream().await;
    let mut config = config("outbound");
    // `allowed_outbound_hosts = ["http://127.0.0.1:{{ upstream_port }}", "http://self"]`
    config
        .variables
        .insert("upstream_port".into(), allowed.to_string());
    let app = serve(config).await;

    // The listed host:port is reached.
    let (status, body) = get(&format!("{}/fetch?http://127.0.0.1:{allowed}/", app.base)).await;
    assert_eq!((status, body.as_str()), (200, "200 upstream says hi"));
    // The same host on another port is not: Spin's HttpRequestDenied.
    let (status, body) = get(&format!("{}/fetch?http://127.0.0.1:{other}/", app.base)).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
    // Nor is another scheme or host.
    let (status, body) = get(&format!("{}/fetch?https://example.com/", app.base)).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
    // `http://self` lets the app call its own routes, by the host `self.alt` or by a
    // relative URL, served in-process.
    let (status, body) = get(&format!("{}/fetch?http://self.alt/pong", app.base)).await;
    assert_eq!((status, body.as_str()), (200, "200 pong"));
    let (status, body) = get(&format!("{}/fetch?/pong", app.base)).await;
    assert_eq!((status, body.as_str()), (200, "200 pong"));
    // The client's `Host` plays no part in where a relative self request goes
    // (Spin's CVE-2024-32980).
    let r = reqwest::Client::new()
        .get(format!("{}/fetch?/pong", app.base))
        .header("host", "example.com:80")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "200 pong");
    let _ = app.stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_request_is_bounded_by_the_callers_deadline() {
    let mut config = config("outbound");
    config.variables.insert("upstream_port".into(), "1".into());
    config.request_deadline = Duration::from_secs(2);
    let app = serve(config).await;
    let started = std::time::Instant::now();
    // `/slow` takes 30 s; the caller has 2.
    let (status, body) = get(&format!("{}/fetch?/slow", app.base)).await;
    let took = started.elapsed();
    assert_eq!(status, 504, "{body}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // The host still answers (the inner run ended too, its slot is free).
    assert_eq!(
        get(&format!("{}/fetch?/pong", app.base)).await,
        (200, "200 pong".to_string())
    );
    let _ = app.stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_requests_need_an_entry_for_self() {
    // `allowed_outbound_hosts = ["http://127.0.0.1:8080"]`: no `http://self`.
    let app = serve(config("outbound-noself")).await;
    for target in ["/pong", "http://self.alt/pong"] {
        let (status, body) = get(&format!("{}/fetch?{target}", app.base)).await;
        assert_eq!(status, 502, "{target}: {body}");
        assert!(body.contains("HttpRequestDenied"), "{target}: {body}");
    }
    // Nor does the listed host let anything else through.
    let (status, body) = get(&format!("{}/fetch?http://127.0.0.1:8081/", app.base)).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
    let _ = app.stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_value_stores_count_in_spins_sqlite_files() {
    let dir = apps_dir().join("kv-counter");
    let _ = std::fs::remove_dir_all(dir.join(".spin"));
    let mut config = config("kv-counter");
    config.runtime_config_path = Some(dir.join("runtime-config.toml"));
    let app = serve(config).await;
    assert_eq!(
        get(&format!("{}/default", app.base)).await,
        (200, "1".into())
    );
    assert_eq!(
        get(&format!("{}/default", app.base)).await,
        (200, "2".into())
    );
    // Another label is another store (from the runtime config).
    assert_eq!(get(&format!("{}/other", app.base)).await, (200, "1".into()));
    // Configured but not in the component's key_value_stores: AccessDenied.
    let (status, body) = get(&format!("{}/unlisted", app.base)).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("AccessDenied"), "{body}");
    let _ = app.stop.send(());
    // The default store is where Spin keeps it, in Spin's table.
    let db = rusqlite::Connection::open(dir.join(".spin/sqlite_key_value.db")).unwrap();
    let value: Vec<u8> = db
        .query_row(
            "SELECT value FROM spin_key_value WHERE store = 'default' AND key = 'count'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(value, b"2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfigured_key_value_store_is_refused_at_start() {
    // Without the runtime config, `other` is configured nowhere.
    let e = Host::start(config("kv-counter"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("key-value store `other`, which is not configured"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_mounted_read_only_and_nothing_outside_is_reachable() {
    let app = serve(config("files")).await;
    let read = |p: &str| format!("{}/read?{p}", app.base);
    // `"static"` appears at /static, `{ source, destination }` where it says.
    assert_eq!(
        get(&read("/static/sub/hello.txt")).await,
        (200, "hello from a file\n".into())
    );
    assert_eq!(
        get(&read("/data/hello.txt")).await,
        (200, "hello from a file\n".into())
    );
    // The manifest beside the mounts is out of reach, `..` included.
    for outside in [
        "/spin.toml",
        "/static/../spin.toml",
        "/data/../../spin.toml",
    ] {
        let (status, body) = get(&read(outside)).await;
        assert_eq!(status, 500, "{outside}: {body}");
    }
    // Writing is refused.
    let (status, body) = get(&format!("{}/write?/static/new.txt", app.base)).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("PermissionDenied") || body.contains("ReadOnlyFilesystem"),
        "{body}"
    );
    assert!(!apps_dir().join("files/static/new.txt").exists());
    let _ = app.stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_globs_keep_relative_paths_and_exclude_files_leaves_files_out() {
    // files = ["static/**/*.html", "*.txt", { source = "assets", destination = "/www" }]
    // exclude_files = ["static/secret.html"]
    let app = serve(config("files-glob")).await;
    let read = |p: &str| format!("{}/read?{p}", app.base);
    for (path, text) in [
        ("/static/index.html", "index\n"),
        ("/static/sub/page.html", "page\n"),
        ("/notes.txt", "notes\n"),
        ("/www/logo.txt", "logo\n"),
    ] {
        assert_eq!(get(&read(path)).await, (200, text.to_string()), "{path}");
    }
    // Not matched (a .css, the manifest), excluded, or outside: not there.
    for path in [
        "/static/sub/style.css",
        "/static/secret.html",
        "/spin.toml",
        "/assets/logo.txt",
        "/../spin.toml",
        "/static/../../spin.toml",
    ] {
        let (status, body) = get(&read(path)).await;
        assert_eq!(status, 500, "{path}: {body}");
    }
    assert_eq!(
        get(&read("/static/secret.html")).await,
        (500, "NotFound".to_string())
    );
    // Read-only, like a directory mount.
    let (status, body) = get(&format!("{}/write?/static/new.html", app.base)).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("PermissionDenied") || body.contains("ReadOnlyFilesystem"),
        "{body}"
    );
    let (status, body) = get(&format!("{}/write?/static/index.html", app.base)).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        std::fs::read_to_string(apps_dir().join("files-glob/static/index.html")).unwrap(),
        "index\n"
    );
    let _ = app.stop.send(());
}
