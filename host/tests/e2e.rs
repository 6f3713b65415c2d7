//! End-to-end tests: the fixture component (tests/fixture, built here once) served by
//! a real `Host` on 127.0.0.1, driven over HTTP.
//! Over 600 lines on purpose: one fixture app and its harness serve every scenario here,
//! and each test is one behaviour a Spin app's user sees.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod common;

use common::{fixture_dir, fixture_wasm};
use spin_host::{ErrorBody, Host, HostConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A host serving in the background, and what the test needs to reach it.
struct Running {
    addr: SocketAddr,
    routes: Vec<(String, String)>,
    databases: Vec<(String, PathBuf)>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    db: PathBuf,
    dir: tempfile::TempDir,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(self.url(path)).await.expect("request")
    }

    async fn text(&self, path: &str) -> (u16, String) {
        let r = self.get(path).await;
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }

    /// Stop the host; returns how long that took, and the temporary directory
    /// (alive until the caller drops it).
    async fn stop(mut self) -> (Duration, tempfile::TempDir) {
        let started = Instant::now();
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
        (started.elapsed(), self.dir)
    }
}

fn init_tracing() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

fn base_config(dir: &Path) -> HostConfig {
    init_tracing();
    fixture_wasm();
    let mut config = HostConfig::new(fixture_dir().join("spin.toml"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config
        .sqlite_path_overrides
        .insert("default".into(), dir.join("data/app.db"));
    config
        .variables
        .insert("secret_word".into(), "xyzzy".into());
    config.request_deadline = Duration::from_secs(2);
    config.shutdown_grace = Duration::from_secs(2);
    config.sqlite_pool_wait = Duration::from_millis(300);
    config.max_instances = 32;
    // These tests read the host's errors in the JSON shape (the default is plain text).
    config.error_body = ErrorBody::Json;
    config
}

async fn start_with(dir: tempfile::TempDir, config: HostConfig) -> Running {
    let db = config
        .sqlite_path_overrides
        .get("default")
        .cloned()
        .unwrap_or_default();
    let host = Host::start(config).await.expect("host starts");
    let (stop, stopped) = oneshot::channel::<()>();
    let addr = host.local_addr();
    let routes = host.routes();
    let databases = host.databases();
    let task = tokio::spawn(host.serve(async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        routes,
        databases,
        stop: Some(stop),
        task: Some(task),
        db,
        dir,
    }
}

async fn start(tweak: impl FnOnce(&mut HostConfig)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config(dir.path());
    tweak(&mut config);
    start_with(dir, config).await
}

async fn start_error(config: HostConfig) -> String {
    let e = Host::start(config)
        .await
        .expect_err("start must fail")
        .to_string();
    assert!(!e.contains('\n'), "start-up errors are one line: {e}");
    e
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_headers_and_routes() {
    let host = start(|_| {}).await;
    assert_eq!(
        host.routes,
        vec![
            ("/...".to_string(), "fixture".to_string()),
            ("/users/:user_id/...".to_string(), "fixture".to_string()),
            ("/exact".to_string(), "fixture".to_string()),
            ("/nodb/...".to_string(), "nodb".to_string()),
        ]
    );
    assert_eq!(
        host.databases,
        vec![("default".to_string(), host.db.clone())]
    );

    let (status, body) = host.text("/headers?x=1&y=2").await;
    assert_eq!(status, 200);
    let h = json(&body);
    let port = host.addr.port();
    assert_eq!(
        h["spin-full-url"],
        format!("http://127.0.0.1:{port}/headers?x=1&y=2")
    );
    assert_eq!(h["spin-path-info"], "/headers");
    assert_eq!(h["spin-matched-route"], "/...");
    assert_eq!(h["spin-base-path"], "/");
    assert_eq!(h["spin-raw-component-route"], "/...");
    assert_eq!(h["spin-component-route"], "");
    let client = h["spin-client-addr"].as_str().unwrap();
    assert!(client.starts_with("127.0.0.1:"), "{client}");

    let h = json(&host.text("/users/42/headers").await.1);
    assert_eq!(h["spin-path-match-user-id"], "42");
    assert_eq!(h["spin-path-info"], "/headers");
    assert_eq!(h["spin-matched-route"], "/users/:user_id/...");
    assert_eq!(h["spin-raw-component-route"], "/users/:user_id/...");
    assert_eq!(h["spin-component-route"], "/users/:user_id");

    let h = json(&host.text("/exact").await.1);
    assert_eq!(h["spin-path-info"], "");
    assert_eq!(h["spin-matched-route"], "/exact");
    assert_eq!(h["spin-component-route"], "/exact");

    // The app's own catch-all answers unknown paths.
    let (status, body) = host.text("/no/such/thing").await;
    assert_eq!(status, 404);
    assert_eq!(json(&body)["error"]["code"], "not_found");

    // Request bodies reach the component; keep-alive connections are reused.
    let client = reqwest::Client::new();
    for i in 0..3 {
        let r = client
            .post(host.url("/echo"))
            .body(format!("payload {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), format!("payload {i}"));
    }
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_round_trip_on_both_interfaces() {
    let host = start(|_| {}).await;
    assert_eq!(host.text("/sql/setup").await, (200, "ok".to_string()));
    let (status, body) = host.text("/sql/insert?name=a").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(json(&body), serde_json::json!({"rowid": 1, "changes": 1}));
    let (_, body) = host.text("/sql/insert?name=b").await;
    assert_eq!(json(&body)["rowid"], 2);

    let (status, body) = host.text("/sql/list").await;
    assert_eq!(status, 200, "{body}");
    let list = json(&body);
    assert_eq!(
        list["columns"],
        serde_json::json!(["id", "name", "score", "data", "empty"])
    );
    assert_eq!(
        list["rows"][0],
        serde_json::json!([
            ["integer", 1],
            ["text", "a"],
            ["real", 1.5],
            ["blob", [1, 2, 3]],
            ["null"]
        ])
    );
    assert_eq!(list["rows"].as_array().unwrap().len(), 2);

    let (status, body) = host.text("/sql/insert?name=a").await;
    assert_eq!(status, 409);
    assert_eq!(body, "io: UNIQUE constraint failed: items.name");

    // fermyon:spin/sqlite@2.0.0 sees the same database.
    assert_eq!(host.text("/sql/v2").await, (200, "2".to_string()));
    let db = host.db.clone();
    let (_, _dir) = host.stop().await;

    // The data is in the configured file, in WAL mode.
    let conn = rusqlite_count(&db);
    assert_eq!(conn, 2);
}

fn rusqlite_count(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_transactions_are_rolled_back() {
    // One connection: if a transaction were left open, the next request would get it
    // (or block on its write lock).
    let host = start(|c| c.sqlite_pool_size = 1).await;
    host.text("/sql/setup").await;
    assert_eq!(host.text("/sql/unfinished?name=u").await.0, 200);
    assert_eq!(host.text("/sql/leak?name=l").await.0, 200);
    let (status, body) = host.text("/sql/panic-in-tx?name=p").await;
    assert_eq!(status, 500);
    assert_eq!(json(&body)["error"]["code"], "internal");

    let names: Vec<String> = json(&host.text("/sql/list").await.1)["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[1][1].as_str().unwrap().to_string())
        .collect();
    assert!(names.is_empty(), "rolled back: {names:?}");
    assert_eq!(host.text("/sql/insert?name=after").await.0, 201);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_access_rules() {
    let host = start(|c| {
        let other = c.sqlite_path_overrides["default"].with_file_name("other.db");
        c.sqlite_path_overrides.insert("other".into(), other);
    })
    .await;
    assert_eq!(host.text("/sql/open?db=default").await.1, "ok");
    assert_eq!(host.text("/sql/open?db=other").await.1, "access-denied");
    assert_eq!(host.text("/sql/open?db=nope").await.1, "no-such-database");
    assert_eq!(
        host.text("/nodb/sql/open?db=default").await.1,
        "access-denied"
    );
    assert_eq!(
        host.text("/nodb/sql/open?db=nope").await.1,
        "no-such-database"
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_fails_after_a_bounded_wait() {
    let host = start(|c| {
        c.sqlite_pool_size = 1;
        c.request_deadline = Duration::from_secs(10);
    })
    .await;
    let holder = tokio::spawn(reqwest::get(host.url("/sql/hold?ms=3000")));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let started = Instant::now();
    let (status, body) = host.text("/sql/open?db=default").await;
    assert_eq!(status, 200);
    assert!(body.contains("pool exhausted"), "{body}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "waited {waited:?}");
    assert!(
        waited < Duration::from_millis(2500),
        "bounded wait: {waited:?}"
    );
    assert_eq!(holder.await.unwrap().unwrap().status(), 200);
    assert_eq!(host.text("/sql/open?db=default").await.1, "ok");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_client_gave_up_on_frees_what_it_held() {
    let host = start(|c| {
        c.sqlite_pool_size = 1;
        c.request_deadline = Duration::from_secs(20);
    })
    .await;
    // The client gives up on a request that holds the only connection for 15 s.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let gave_up = impatient.get(host.url("/sql/hold?ms=15000")).send().await;
    assert!(gave_up.unwrap_err().is_timeout());
    // Its run ends with it: the connection is free again well before the 15 s.
    let started = Instant::now();
    let body = loop {
        let (status, body) = host.text("/sql/open?db=default").await;
        assert_eq!(status, 200);
        if body == "ok" || started.elapsed() > Duration::from_secs(5) {
            break body;
        }
    };
    assert_eq!(body, "ok", "the abandoned run still holds the connection");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_after_a_whole_response_is_not_cut_short() {
    let host = start(|_| {}).await;
    host.text("/sql/setup").await;
    // The component sends its whole reply (with content-length), then inserts.
    let (status, body) = host.text("/sql/after-response?name=late").await;
    assert_eq!((status, body.as_str()), (200, "sent"));
    let waited = Instant::now();
    while rusqlite_count(&host.db) == 0 && waited.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rusqlite_count(&host.db), 1, "the run went on to its insert");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_still_running_at_the_deadline_is_interrupted() {
    let host = start(|c| {
        c.sqlite_pool_size = 1;
        c.request_deadline = Duration::from_secs(1);
    })
    .await;
    let started = Instant::now();
    // (Bounded, so that a regression fails here instead of hanging the suite.)
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), host.text("/sql/endless"))
        .await
        .expect("answered: the endless statement was interrupted");
    assert_eq!(status, 504, "{body}");
    assert_eq!(json(&body)["error"]["code"], "timeout");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "answered after {took:?}");
    // Its connection (the only one) is back in the pool.
    assert_eq!(host.text("/sql/open?db=default").await.1, "ok");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables() {
    let host = start(|c| {
        c.variables.insert("GREETING".into(), "hi".into());
    })
    .await;
    assert_eq!(
        host.text("/var?name=message").await,
        (200, "hi, world".into())
    );
    assert_eq!(host.text("/var?name=secret").await, (200, "xyzzy".into()));
    let (status, body) = host.text("/var?name=missing").await;
    assert_eq!(status, 404);
    assert!(body.contains("Undefined"), "{body}");
    let (_, body) = host.text("/var?name=Not-Valid").await;
    assert!(body.contains("InvalidName"), "{body}");
    host.stop().await;

    let host = start(|_| {}).await;
    assert_eq!(host.text("/var?name=message").await.1, "hello, world");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_stops_loops_and_sleeps() {
    let host = start(|c| c.request_deadline = Duration::from_millis(800)).await;
    for path in ["/loop", "/sleep?ms=20000"] {
        let started = Instant::now();
        let r = host.get(path).await;
        let elapsed = started.elapsed();
        assert_eq!(r.status(), 504, "{path}");
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "application/json"
        );
        let body = json(&r.text().await.unwrap());
        assert_eq!(body["error"]["code"], "timeout", "{path}");
        assert!(elapsed >= Duration::from_millis(700), "{path}: {elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{path}: {elapsed:?}");
    }
    // Still serving.
    assert_eq!(host.text("/sleep?ms=10").await, (200, "slept".to_string()));
    host.stop().await;
}

// Run time and wall time (see spin_host::limits). The margins are wide: a run-time
// deadline of 1 s against a wall limit of 30 s (or a wait of 3 s), so that only the
// wrong limit, not a slow machine, can fail these.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_request_outlasts_its_run_time_deadline() {
    let host = start(|c| {
        c.request_deadline = Duration::from_secs(1);
        c.request_wall_limit = Some(Duration::from_secs(30));
    })
    .await;
    host.text("/sql/setup").await;
    // 3 s of a database check every 20 ms, as the orchestrator's long-poll waits: each
    // wake-up runs a little; only that counts against the 1 s.
    let (status, body) = host.text("/poll?ms=3000&every_ms=20").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("checked "), "{body}");
    // One sleep, response head after it.
    assert_eq!(
        host.text("/sleep?ms=3000").await,
        (200, "slept".to_string())
    );
    // Waiting with a pinned connection is waiting too.
    assert_eq!(
        host.text("/sql/hold?ms=3000").await,
        (200, "held".to_string())
    );
    // A body streamed with 20 ms sleeps between events, for 3 s after the head.
    let (status, body) = host.text("/stream?n=150&delay_ms=20").await;
    assert_eq!(status, 200);
    assert!(body.ends_with("data: 149\n\n"), "whole body: {body}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_is_stopped_at_its_run_time_deadline_not_the_wall_limit() {
    let host = start(|c| {
        c.request_deadline = Duration::from_secs(1);
        c.request_wall_limit = Some(Duration::from_secs(30));
    })
    .await;
    let started = Instant::now();
    let (status, body) = tokio::time::timeout(Duration::from_secs(20), host.text("/loop"))
        .await
        .expect("the loop was stopped well before the 30 s wall limit");
    let took = started.elapsed();
    assert_eq!(status, 504, "{body}");
    let body = json(&body);
    assert_eq!(body["error"]["code"], "timeout");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("run time of 1.0 s"), "{message}");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_waiting_past_the_wall_limit_gets_a_504() {
    let host = start(|c| {
        c.request_deadline = Duration::from_secs(1);
        c.request_wall_limit = Some(Duration::from_secs(2));
    })
    .await;
    for path in ["/sleep?ms=20000", "/poll?ms=20000&every_ms=20"] {
        let started = Instant::now();
        let (status, body) = tokio::time::timeout(Duration::from_secs(15), host.text(path))
            .await
            .expect("answered at the wall limit");
        let took = started.elapsed();
        assert_eq!(status, 504, "{path}: {body}");
        let body = json(&body);
        assert_eq!(body["error"]["code"], "timeout", "{path}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("within 2.0 s"), "{path}: {message}");
        assert!(took >= Duration::from_millis(1900), "{path}: {took:?}");
    }
    // Still serving.
    assert_eq!(host.text("/sleep?ms=10").await, (200, "slept".to_string()));
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_is_bounded_by_the_run_time_deadline_not_the_wall_limit() {
    let host = start(|c| {
        c.sqlite_pool_size = 1;
        c.request_deadline = Duration::from_secs(1);
        c.request_wall_limit = Some(Duration::from_secs(60));
    })
    .await;
    // The statement runs inline: its time is run time.
    let (status, body) = tokio::time::timeout(Duration::from_secs(20), host.text("/sql/endless"))
        .await
        .expect("the endless statement was interrupted well before the wall limit");
    assert_eq!(status, 504, "{body}");
    assert_eq!(json(&body)["error"]["code"], "timeout");
    assert_eq!(host.text("/sql/open?db=default").await.1, "ok");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_free_instance_slot_is_a_quick_503() {
    let host = start(|c| {
        c.max_instances = 2;
        c.request_wall_limit = Some(Duration::from_secs(30));
    })
    .await;
    // Two held requests take both slots.
    let held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(reqwest::get(host.url("/sleep?ms=4000"))))
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let started = Instant::now();
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), host.text("/headers"))
        .await
        .expect("answered without waiting for a slot");
    assert_eq!(status, 503, "{body}");
    assert_eq!(json(&body)["error"]["code"], "unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    for h in held {
        assert_eq!(h.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(host.get("/headers").await.status(), 200);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_is_a_json_500() {
    let host = start(|_| {}).await;
    let r = host.get("/panic").await;
    assert_eq!(r.status(), 500);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let body = json(&r.text().await.unwrap());
    assert_eq!(body["error"]["code"], "internal");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("component `fixture` failed"), "{message}");
    assert!(
        !message.contains("backtrace"),
        "no guest backtrace for clients: {message}"
    );
    assert_eq!(host.get("/headers").await.status(), 200);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream() {
    use futures::StreamExt;
    let host = start(|_| {}).await;
    let started = Instant::now();
    let r = host.get("/stream?n=5&delay_ms=300").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut stream = r.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert_eq!(&first[..], b"data: 0\n\n");
    let mut rest = Vec::new();
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    let total = started.elapsed();
    assert_eq!(
        String::from_utf8(rest).unwrap(),
        "data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n"
    );
    // The first event arrived while the guest was still producing the others.
    assert!(total >= Duration::from_millis(1200), "total {total:?}");
    assert!(
        first_at + Duration::from_millis(900) <= total,
        "first chunk at {first_at:?}, total {total:?}"
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_after_the_head_cuts_the_body() {
    use futures::StreamExt;
    let host = start(|c| {
        c.request_deadline = Duration::from_millis(800);
        // The loop after the head is stopped by its run time, long before this.
        c.request_wall_limit = Some(Duration::from_secs(60));
    })
    .await;
    let r = host.get("/stream-then-loop").await;
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(&first[..], b"data: first\n\n");
    // The body must end in an error, not look complete.
    let errored = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = stream.next().await {
            if chunk.is_err() {
                return true;
            }
        }
        false
    })
    .await
    .expect("cut by the run-time deadline, not the wall limit");
    assert!(errored, "a truncated body must not end cleanly");
    assert_eq!(host.get("/headers").await.status(), 200);
    host.stop().await;
}

fn write_manifest(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("spin.toml");
    let text = format!("spin_manifest_version = 2\n[application]\nname = \"t\"\n{body}");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_path_is_a_json_404() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        &format!(
            "[[trigger.http]]\nroute = \"/exact\"\ncomponent = \"c\"\n[component.c]\nsource = {:?}\n",
            fixture_wasm()
        ),
    );
    let mut config = base_config(dir.path());
    config.manifest_path = manifest;
    config.sqlite_path_overrides.clear();
    let host = start_with(dir, config).await;
    assert_eq!(host.databases, vec![], "no component uses a database");
    let r = host.get("/elsewhere").await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert_eq!(json(&r.text().await.unwrap())["error"]["code"], "not_found");
    assert_eq!(host.get("/exact").await.status(), 200);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_errors_are_plain_text_unless_the_app_asks_for_json() {
    let dir = tempfile::tempdir().unwrap();
    // No catch-all route: the host itself answers an unknown path.
    let manifest = write_manifest(
        dir.path(),
        &format!(
            "[[trigger.http]]\nroute = \"/exact\"\ncomponent = \"c\"\n[component.c]\nsource = {:?}\n",
            fixture_wasm()
        ),
    );
    let mut config = base_config(dir.path());
    config.manifest_path = manifest;
    config.sqlite_path_overrides.clear();
    config.error_body = ErrorBody::default();
    let host = start_with(dir, config).await;
    let r = host.get("/no/such/route").await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/plain; charset=utf-8"
    );
    assert_eq!(r.text().await.unwrap(), "no route matches /no/such/route");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_database_lives_next_to_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        &format!(
            "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n[component.c]\nsource = {:?}\nsqlite_databases = [\"default\"]\n",
            fixture_wasm()
        ),
    );
    let mut config = base_config(dir.path());
    config.manifest_path = manifest;
    config.sqlite_path_overrides.clear();
    let rc = dir.path().join("conf/runtime-config.toml");
    std::fs::create_dir_all(rc.parent().unwrap()).unwrap();
    // A relative `path` would resolve against the test's working directory (as Spin
    // resolves it; see runtime_config's tests), so this one is absolute.
    let expected_extra = dir.path().join("dbs/extra.db");
    std::fs::write(
        &rc,
        format!("[sqlite_database.extra]\ntype = \"spin\"\npath = {expected_extra:?}\n"),
    )
    .unwrap();
    config.runtime_config_path = Some(rc);
    let expected_default = dir.path().join(".spin/sqlite_db.db");
    let host = Host::start(config).await.unwrap();
    assert_eq!(
        host.databases(),
        vec![
            ("default".to_string(), expected_default.clone()),
            ("extra".to_string(), expected_extra.clone())
        ]
    );
    assert!(expected_default.exists());
    assert!(expected_extra.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_errors_name_their_cause() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Missing .wasm.
    let manifest = write_manifest(
        d,
        "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n[component.c]\nsource = \"missing/c.wasm\"\n",
    );
    let mut config = base_config(d);
    config.manifest_path = manifest.clone();
    let e = start_error(config).await;
    assert!(
        e.contains("missing/c.wasm") && e.contains("component `c`"),
        "{e}"
    );

    // Bad TOML.
    std::fs::write(&manifest, "spin_manifest_version = 2\n[application\n").unwrap();
    let mut config = base_config(d);
    config.manifest_path = manifest.clone();
    let e = start_error(config).await;
    assert!(
        e.contains(&manifest.display().to_string()) && e.contains("line 2"),
        "{e}"
    );

    // Missing manifest.
    let mut config = base_config(d);
    config.manifest_path = d.join("nope.toml");
    let e = start_error(config).await;
    assert!(e.contains("nope.toml"), "{e}");

    // Required variable without a value.
    let mut config = base_config(d);
    config.variables.clear();
    let e = start_error(config).await;
    assert!(e.contains("secret_word"), "{e}");

    // A database file that is not SQLite.
    let junk = d.join("junk.db");
    std::fs::write(&junk, vec![b'j'; 8192]).unwrap();
    let mut config = base_config(d);
    config
        .sqlite_path_overrides
        .insert("default".into(), junk.clone());
    let e = start_error(config).await;
    assert!(e.contains(&junk.display().to_string()), "{e}");

    // A component listing an unconfigured database.
    let manifest = write_manifest(
        d,
        &format!(
            "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n[component.c]\nsource = {:?}\nsqlite_databases = [\"analytics\"]\n",
            fixture_wasm()
        ),
    );
    let mut config = base_config(d);
    config.manifest_path = manifest;
    let e = start_error(config).await;
    assert!(
        e.contains("analytics") && e.contains("not configured"),
        "{e}"
    );

    // Port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = base_config(d);
    config.listen = taken.local_addr().unwrap();
    let e = start_error(config).await;
    assert!(e.contains(&taken.local_addr().unwrap().to_string()), "{e}");

    // Bad runtime config.
    let rc = d.join("rc.toml");
    std::fs::write(&rc, "[sqlite_database.default]\ntype = \"libsql\"\n").unwrap();
    let mut config = base_config(d);
    config.sqlite_path_overrides.clear();
    config.runtime_config_path = Some(rc.clone());
    let e = start_error(config).await;
    assert!(
        e.contains(&rc.display().to_string()) && e.contains("libsql"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_import_is_named_at_start_up() {
    // A component importing an interface this host lacks. Built from the text format
    // so no extra toolchain is needed.
    let dir = tempfile::tempdir().unwrap();
    let wat = r#"(component
        (import "fermyon:spin/key-value@2.0.0" (instance (export "open" (func))))
    )"#;
    let wasm = dir.path().join("kv.wasm");
    std::fs::write(&wasm, wat).unwrap();
    let manifest = write_manifest(
        dir.path(),
        &format!(
            "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"kv\"\n[component.kv]\nsource = {wasm:?}\n"
        ),
    );
    let mut config = base_config(dir.path());
    config.manifest_path = manifest;
    let e = start_error(config).await;
    assert!(e.contains("fermyon:spin/key-value@2.0.0"), "{e}");
    assert!(e.contains("component `kv`"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let host = start(|c| c.shutdown_grace = Duration::from_secs(3)).await;
    let url = host.url("/sleep?ms=1500");
    let in_flight = tokio::spawn(async move { reqwest::get(url).await.unwrap().text().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let addr = host.addr;
    let (took, _) = host.stop().await;
    assert_eq!(in_flight.await.unwrap().unwrap(), "slept");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // No longer accepting.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_requests_that_outlive_the_grace() {
    let host = start(|c| {
        c.shutdown_grace = Duration::from_millis(300);
        c.request_deadline = Duration::from_secs(30);
    })
    .await;
    let url = host.url("/sql/hold?ms=20000");
    let in_flight = tokio::spawn(async move {
        match reqwest::get(url).await {
            Ok(r) => Some(r.status().as_u16()),
            Err(_) => None,
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (took, _) = host.stop().await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Either a 503 or a cut connection; never the 200 of a finished request.
    let outcome = in_flight.await.unwrap();
    assert!(matches!(outcome, None | Some(503)), "{outcome:?}");
}
