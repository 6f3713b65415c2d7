//! `type = "libsql"` databases against a small in-test libSQL stand-in: Hrana 3 over
//! HTTP (`POST /v3/pipeline`, JSON) on loopback, each stream a rusqlite connection to one
//! shared file, refusing the statements sqld refuses (`PRAGMA busy_timeout = N`,
//! `PRAGMA journal_mode = …`, `PRAGMA synchronous = …` answer "unsupported statement:
//! …") and, in one variant, `PRAGMA foreign_keys` too.
//!
//! What this covers: the host's Hrana client (streams pinned per connection, batons,
//! transactions across calls, rollback and close at drop, value mapping, errors, bounded
//! waits, the token), the core's best-effort rule end to end through the real
//! components and through the CLI's native migrations, and migrations racing from
//! several "replicas". What it does not: sqld's own behaviour (its locking, durability,
//! replication) — that was checked by hand against a real sqld (docs/scale-out.md).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orchestrator_cli::database::Target;
use orchestrator_e2e::TestApp;
use serde_json::{json, Value as Json};
use spin_host::runtime_config::LibsqlConfig;
use spin_host::sqlite::{DbError, DbValue, PoolError, PoolOptions, RemotePool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The stand-in server.
struct FakeLibsql {
    url: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

struct State {
    db: PathBuf,
    token: Option<String>,
    /// Statement prefixes (lower case) answered "unsupported statement: …".
    refused: Vec<&'static str>,
    streams: Mutex<HashMap<String, rusqlite::Connection>>,
    next: AtomicU64,
    /// Every statement executed, with the stream it ran on, in order.
    log: Mutex<Vec<(u64, String)>>,
    closed: AtomicU64,
    /// Statements (exact text) answered busy, as sqld answers a writer it cannot fit
    /// in, the given number of times before they run.
    busy: Mutex<HashMap<String, u32>>,
    /// Statement prefixes answered "interrupted" (`SQLITE_INTERRUPT`, without running),
    /// as sqld answers the statement a cancelled cursor request's interrupt lands on,
    /// the given number of times.
    interrupt: Mutex<Vec<(String, u32)>>,
}

/// What sqld 0.24 refuses (its `query_analysis` rejects these pragmas with a value).
const SQLD_REFUSES: &[&str] = &[
    "pragma busy_timeout =",
    "pragma journal_mode =",
    "pragma synchronous =",
];

impl FakeLibsql {
    async fn start(refused: &[&'static str], token: Option<&str>) -> FakeLibsql {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(State {
            db: dir.path().join("server.db"),
            token: token.map(str::to_string),
            refused: refused.to_vec(),
            streams: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            log: Mutex::new(Vec::new()),
            closed: AtomicU64::new(0),
            busy: Mutex::new(HashMap::new()),
            interrupt: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve_connection(socket, served.clone()));
            }
        });
        FakeLibsql {
            url,
            state,
            task,
            _dir: dir,
        }
    }

    fn config(&self) -> LibsqlConfig {
        LibsqlConfig::new(&self.url, self.state.token.clone().unwrap_or_default()).unwrap()
    }

    fn log(&self) -> Vec<(u64, String)> {
        self.state.log.lock().unwrap().clone()
    }

    /// Answer `sql` "database is locked" (without running it) its next `times` times.
    fn busy(&self, sql: &str, times: u32) {
        self.state
            .busy
            .lock()
            .unwrap()
            .insert(sql.to_string(), times);
    }

    /// Answer the next `times` statements that start with `prefix` "interrupted".
    fn interrupt(&self, prefix: &str, times: u32) {
        self.state
            .interrupt
            .lock()
            .unwrap()
            .push((prefix.to_string(), times));
    }

    /// How many times `sql` reached the server.
    fn sent(&self, sql: &str) -> usize {
        self.log().iter().filter(|(_, s)| s == sql).count()
    }

    fn open_streams(&self) -> usize {
        self.state.streams.lock().unwrap().len()
    }

    /// A direct look at the server's file.
    fn query_i64(&self, sql: &str) -> i64 {
        let conn = rusqlite::Connection::open(&self.state.db).unwrap();
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

impl Drop for FakeLibsql {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// HTTP/1.1 with keep-alive and Content-Length bodies: all a Hrana client sends.
async fn serve_connection(mut socket: tokio::net::TcpStream, state: Arc<State>) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);
        let path_ok = head.starts_with("POST /v3/pipeline ");
        let authorized = match &state.token {
            Some(token) => header("authorization") == Some(format!("Bearer {token}")),
            None => true,
        };
        let (status, answer) = if !path_ok {
            ("404 Not Found", json!({ "message": "not found" }))
        } else if !authorized {
            (
                "401 Unauthorized",
                json!({ "error": "Unauthorized: bad token" }),
            )
        } else {
            let request: Json = serde_json::from_slice(&body).unwrap();
            // A statement that makes the server take longer than a client may wait.
            if request.to_string().contains("SELECT 'stall'") {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            let state = state.clone();
            match tokio::task::spawn_blocking(move || pipeline(&state, request))
                .await
                .unwrap()
            {
                Ok(answer) => ("200 OK", answer),
                Err(message) => ("400 Bad Request", json!({ "message": message })),
            }
        };
        let text = answer.to_string();
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        if socket.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn pipeline(state: &State, request: Json) -> Result<Json, String> {
    let baton = request["baton"].as_str().map(str::to_string);
    let mut conn = match &baton {
        Some(b) => state
            .streams
            .lock()
            .unwrap()
            .remove(b)
            .ok_or("stream expired")?,
        None => {
            let conn = rusqlite::Connection::open(&state.db).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            conn
        }
    };
    let stream_id = match &baton {
        Some(b) => b.split('-').next().unwrap().parse().unwrap(),
        None => state.next.fetch_add(1, Ordering::Relaxed),
    };
    let mut results = Vec::new();
    let mut closed = false;
    for req in request["requests"].as_array().unwrap() {
        results.push(match req["type"].as_str().unwrap() {
            "execute" => execute(state, stream_id, &mut conn, &req["stmt"]),
            "get_autocommit" => json!({ "type": "ok", "response": {
                "type": "get_autocommit", "is_autocommit": conn.is_autocommit() } }),
            "close" => {
                closed = true;
                json!({ "type": "ok", "response": { "type": "close" } })
            }
            other => json!({ "type": "error", "error": { "message": format!("unknown {other}") } }),
        });
    }
    let new_baton = if closed {
        state.closed.fetch_add(1, Ordering::Relaxed);
        None
    } else {
        // A fresh baton for every response, as the spec asks.
        let b = format!("{stream_id}-{}", state.next.fetch_add(1, Ordering::Relaxed));
        state.streams.lock().unwrap().insert(b.clone(), conn);
        Some(b)
    };
    Ok(json!({ "baton": new_baton, "base_url": null, "results": results }))
}

fn execute(state: &State, stream: u64, conn: &mut rusqlite::Connection, stmt: &Json) -> Json {
    use rusqlite::types::{Value, ValueRef};
    let sql = stmt["sql"].as_str().unwrap().to_string();
    state.log.lock().unwrap().push((stream, sql.clone()));
    let lower = sql.to_ascii_lowercase();
    if state.refused.iter().any(|p| lower.starts_with(p)) {
        return json!({ "type": "error", "error": { "message": format!("unsupported statement: {sql}") } });
    }
    if let Some(times) = state.busy.lock().unwrap().get_mut(&sql) {
        if *times > 0 {
            *times -= 1;
            // sqld's exact shape (its `StmtError::SqliteError` for SQLITE_BUSY).
            return json!({ "type": "error", "error": {
                "message": "SQLite error: database is locked", "code": "SQLITE_BUSY" } });
        }
    }
    if let Some((_, times)) = state
        .interrupt
        .lock()
        .unwrap()
        .iter_mut()
        .find(|(prefix, times)| sql.starts_with(prefix.as_str()) && *times > 0)
    {
        *times -= 1;
        // sqld's shape for SQLITE_INTERRUPT (what its cursor cancellation causes).
        return json!({ "type": "error", "error": {
            "message": "SQLite error: interrupted", "code": "SQLITE_INTERRUPT" } });
    }
    let args: Vec<Value> = stmt["args"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or(&[])
        .iter()
        .map(|v| match v["type"].as_str().unwrap() {
            "null" => Value::Null,
            "integer" => Value::Integer(v["value"].as_str().unwrap().parse().unwrap()),
            "float" => Value::Real(v["value"].as_f64().unwrap()),
            "text" => Value::Text(v["value"].as_str().unwrap().to_string()),
            "blob" => Value::Blob(decode64(v["base64"].as_str().unwrap())),
            other => panic!("value type {other}"),
        })
        .collect();
    let run = || -> rusqlite::Result<Json> {
        let mut prepared = conn.prepare(&sql)?;
        let cols: Vec<Json> = prepared
            .column_names()
            .iter()
            .map(|c| json!({ "name": c, "decltype": null }))
            .collect();
        let n = cols.len();
        let mut rows = prepared.query(rusqlite::params_from_iter(args.iter()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::new();
            for i in 0..n {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => json!({ "type": "null" }),
                    ValueRef::Integer(i) => json!({ "type": "integer", "value": i.to_string() }),
                    ValueRef::Real(f) => json!({ "type": "float", "value": f }),
                    ValueRef::Text(t) => {
                        json!({ "type": "text", "value": String::from_utf8_lossy(t) })
                    }
                    ValueRef::Blob(b) => json!({ "type": "blob", "base64": encode64(b) }),
                });
            }
            out.push(Json::Array(values));
        }
        drop(rows);
        drop(prepared);
        Ok(
            json!({ "cols": cols, "rows": out, "affected_row_count": conn.changes(),
            "last_insert_rowid": conn.last_insert_rowid().to_string() }),
        )
    };
    match run() {
        Ok(result) => {
            json!({ "type": "ok", "response": { "type": "execute", "result": result } })
        }
        Err(e) => {
            let code = e
                .sqlite_error_code()
                .map(|c| format!("SQLITE_{c:?}").to_uppercase());
            json!({ "type": "error", "error": { "message": format!("SQLite error: {e}"), "code": code } })
        }
    }
}

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Unpadded, as sqld sends blobs.
fn encode64(data: &[u8]) -> String {
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0);
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(B64[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(B64[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

fn decode64(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.trim_end_matches('=').bytes() {
        acc = (acc << 6) | B64.iter().position(|&b| b == c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// The schema version of this build: one migration per file in `migrations/`.
fn latest_version() -> i64 {
    let dir = orchestrator_e2e::repo_root().join("migrations");
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count() as i64
}

fn options(size: usize, wait_ms: u64) -> PoolOptions {
    PoolOptions {
        size,
        wait: Duration::from_millis(wait_ms),
        busy_timeout: Duration::from_millis(500),
        ..PoolOptions::default()
    }
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_pins_one_stream_and_rolls_back_when_dropped() {
    let server = FakeLibsql::start(SQLD_REFUSES, None).await;
    let pool = RemotePool::open("default", &server.config(), &options(4, 1000))
        .await
        .unwrap();
    let mut setup = pool.acquire().await.unwrap();
    setup.execute("CREATE TABLE t(x)", &[]).await.unwrap();
    setup.close().await;

    // A transaction spans calls: every statement on one stream.
    let mut c = pool.acquire().await.unwrap();
    c.execute("BEGIN IMMEDIATE", &[]).await.unwrap();
    c.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    assert!(!c.is_autocommit().await);
    let streams: Vec<u64> = server.log().iter().rev().take(2).map(|(s, _)| *s).collect();
    assert_eq!(streams[0], streams[1], "{:?}", server.log());
    // Dropped mid-transaction (a trap, a deadline): rolled back, stream closed.
    drop(c);
    eventually("the rollback and close", || {
        server.log().last().map(|(_, s)| s.as_str()) == Some("ROLLBACK")
            && server.open_streams() == 0
    })
    .await;
    assert_eq!(server.query_i64("SELECT count(*) FROM t"), 0);

    // A committed transaction stays; an idle connection's stream is closed at drop.
    let mut c = pool.acquire().await.unwrap();
    c.execute("BEGIN IMMEDIATE", &[]).await.unwrap();
    c.execute("INSERT INTO t VALUES (2)", &[]).await.unwrap();
    c.execute("COMMIT", &[]).await.unwrap();
    assert!(c.is_autocommit().await);
    drop(c);
    eventually("the close", || server.open_streams() == 0).await;
    assert_eq!(server.query_i64("SELECT count(*) FROM t"), 1);
    assert_ne!(server.log().last().unwrap().1, "ROLLBACK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_counters_and_errors_map_to_the_binding() {
    let server = FakeLibsql::start(SQLD_REFUSES, Some("s3cret")).await;
    let pool = RemotePool::open("default", &server.config(), &options(2, 1000))
        .await
        .unwrap();
    let mut c = pool.acquire().await.unwrap();
    c.execute(
        "CREATE TABLE v(id INTEGER PRIMARY KEY, name TEXT UNIQUE, score REAL, data BLOB)",
        &[],
    )
    .await
    .unwrap();
    let row = [
        DbValue::Text("héllo".into()),
        DbValue::Real(1.5),
        DbValue::Blob(vec![0, 1, 2, 254, 255]),
    ];
    c.execute("INSERT INTO v(name, score, data) VALUES (?, ?, ?)", &row)
        .await
        .unwrap();
    assert_eq!(c.changes(), 1);
    assert_eq!(c.last_insert_rowid(), 1);
    c.execute(
        "INSERT INTO v(id, name, score, data) VALUES (?, 'n', NULL, NULL)",
        &[DbValue::Integer(9_007_199_254_740_993)],
    )
    .await
    .unwrap();
    let r = c
        .execute("SELECT id, name, score, data FROM v ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(r.columns, ["id", "name", "score", "data"]);
    assert_eq!(
        r.rows,
        vec![
            vec![
                DbValue::Integer(1),
                row[0].clone(),
                row[1].clone(),
                row[2].clone()
            ],
            vec![
                DbValue::Integer(9_007_199_254_740_993),
                DbValue::Text("n".into()),
                DbValue::Null,
                DbValue::Null
            ],
        ]
    );
    // SQLite's message reaches the guest as io(..), where the core classifies it.
    let e = c
        .execute("INSERT INTO v(name) VALUES ('n')", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, DbError::Io(m) if m.contains("UNIQUE constraint failed: v.name")),
        "{e:?}"
    );
    // Refused as libSQL's client refuses them (without a round trip)…
    let before = server.log().len();
    for pragma in ["PRAGMA busy_timeout = 5000", "PRAGMA journal_mode = WAL"] {
        let e = c.execute(pragma, &[]).await.unwrap_err();
        assert_eq!(e, DbError::Io("unsupported statement".into()));
    }
    assert_eq!(server.log().len(), before);
    // …and what the server refuses arrives with its text.
    let e = c
        .execute("PRAGMA synchronous = FULL", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, DbError::Io(m) if m.starts_with("unsupported statement")),
        "{e:?}"
    );
    // The stream survives errors: the table is still there on it.
    let r = c.execute("SELECT count(*) FROM v", &[]).await.unwrap();
    assert_eq!(r.rows, vec![vec![DbValue::Integer(2)]]);

    // A wrong token fails at open, naming the server, never showing the token.
    let wrong = LibsqlConfig::new(&server.url, "nope").unwrap();
    let e = RemotePool::open("default", &wrong, &options(1, 1000))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&server.url) && e.contains("401"), "{e}");
    assert!(!e.contains("nope"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_a_stream_and_for_the_server_are_bounded() {
    let server = FakeLibsql::start(SQLD_REFUSES, None).await;
    // size 1, wait 300 ms; an exchange may take wait + busy_timeout = 800 ms.
    let pool = RemotePool::open("default", &server.config(), &options(1, 300))
        .await
        .unwrap();
    let held = pool.acquire().await.unwrap();
    let started = Instant::now();
    let e = pool
        .acquire()
        .await
        .err()
        .expect("the only stream is taken");
    assert!(matches!(e, PoolError::Exhausted { .. }), "{e}");
    assert!(e.to_string().contains("pool exhausted"), "{e}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(290) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    drop(held);
    // A server that takes 3 s: the statement fails after ~800 ms.
    let mut c = tokio::time::timeout(Duration::from_secs(2), pool.acquire())
        .await
        .unwrap()
        .unwrap();
    let started = Instant::now();
    let e = c.execute("SELECT 'stall'", &[]).await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        // Worded so that a guest can tell it from SQLite's errors: the core answers 503.
        matches!(&e, DbError::Io(m) if m.contains("no answer from")),
        "{e:?}"
    );
    assert!(
        waited >= Duration::from_millis(790) && waited < Duration::from_millis(2500),
        "{waited:?}"
    );
    // Lost outside a transaction: the next statement simply opens a new stream.
    let r = c.execute("SELECT 1", &[]).await.unwrap();
    assert_eq!(r.rows, vec![vec![DbValue::Integer(1)]]);

    // Lost inside one: its later statements must not run outside it.
    c.execute("CREATE TABLE w(x)", &[]).await.unwrap();
    c.execute("BEGIN IMMEDIATE", &[]).await.unwrap();
    c.execute("INSERT INTO w VALUES (1)", &[]).await.unwrap();
    assert!(c.execute("SELECT 'stall'", &[]).await.is_err());
    let e = c
        .execute("INSERT INTO w VALUES (2)", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, DbError::Io(m) if m.contains("lost inside a transaction")),
        "{e:?}"
    );
}

/// The host's configuration for the app with `default` on `server`.
fn on_libsql(server: &FakeLibsql) -> impl FnOnce(&mut spin_host::HostConfig) {
    let remote = server.config();
    move |config| {
        config.sqlite_path_overrides.clear();
        config
            .sqlite_libsql_overrides
            .insert("default".into(), remote);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_components_migrate_and_serve_on_a_server_refusing_the_tuning_pragmas() {
    let server = FakeLibsql::start(SQLD_REFUSES, None).await;
    let app = TestApp::start_with(on_libsql(&server)).await;
    let def = app
        .create(
            "/api/agents",
            json!({ "name": "planner", "agent_type": "planner" }),
        )
        .await;
    // The schema is there, at the latest version, and foreign keys are enforced.
    assert_eq!(server.query_i64("PRAGMA user_version"), latest_version());
    let r = app
        .post(
            "/api/agents",
            json!({ "name": "planner", "agent_type": "planner" }),
        )
        .await;
    assert_eq!(r.status(), 409, "a duplicate name");
    let r = app
        .post(
            "/api/runtime/agents",
            json!({ "orchestrator_agent_id": "00000000-0000-4000-8000-000000000009", "session_id": "s" }),
        )
        .await;
    assert_eq!(r.status(), 422, "a run of an unknown definition");
    let run = app
        .create(
            "/api/runtime/agents",
            json!({ "orchestrator_agent_id": def["id"], "session_id": "s" }),
        )
        .await;
    let r = app
        .patch(
            &format!("/api/runtime/agents/{}", run["id"].as_str().unwrap()),
            json!({ "status": "planning" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let list: Json = app.get("/api/agents").await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    // The guest asked for the tuning pragma and was told "unsupported": skipped.
    let log = server.log();
    assert!(log.iter().any(|(_, s)| s == "PRAGMA foreign_keys = ON"));
    assert!(log.iter().any(|(_, s)| s.starts_with("BEGIN IMMEDIATE")));
    // Every request's stream went back: nothing left open on the server.
    app.stop().await;
    eventually("every stream closed", || server.open_streams() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_foreign_keys_is_an_error_not_skipped() {
    let mut refused = SQLD_REFUSES.to_vec();
    refused.push("pragma foreign_keys");
    let server = FakeLibsql::start(&refused, None).await;
    let app = TestApp::start_with(on_libsql(&server)).await;
    let r = app
        .post(
            "/api/agents",
            json!({ "name": "p", "agent_type": "planner" }),
        )
        .await;
    assert!(r.status().is_server_error(), "{}", r.status());
    assert_eq!(
        server.query_i64("SELECT count(*) FROM sqlite_master WHERE name = 'orchestrator_agents'"),
        0,
        "nothing was migrated or written without foreign keys"
    );
    // The CLI's native path refuses the same way.
    let target = Target::Libsql(server.config());
    let e = tokio::task::spawn_blocking(move || orchestrator_cli::migrate::migrate_target(&target))
        .await
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(e.contains("unsupported statement"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_the_server_once() {
    let server = FakeLibsql::start(SQLD_REFUSES, None).await;
    // Each on a thread of its own, as separate processes would be (the async test must
    // not block its workers, which serve the stand-in).
    let replicas: Vec<_> = (0..4)
        .map(|_| {
            let target = Target::Libsql(server.config());
            tokio::task::spawn_blocking(move || orchestrator_cli::migrate::migrate_target(&target))
        })
        .collect();
    for replica in replicas {
        assert_eq!(replica.await.unwrap().unwrap(), latest_version());
    }
    assert_eq!(
        server.query_i64("SELECT count(*) FROM schema_migrations"),
        latest_version(),
        "each migration recorded once"
    );
    assert_eq!(
        server.query_i64("SELECT count(DISTINCT version) FROM schema_migrations"),
        latest_version()
    );
    let creates = server
        .log()
        .iter()
        .filter(|(_, s)| {
            s.to_ascii_uppercase()
                .starts_with("CREATE TABLE ORCHESTRATOR_AGENTS")
        })
        .count();
    assert_eq!(creates, 1, "the schema was applied by one replica only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_begin_or_autocommit_statement_waits_but_nothing_inside_a_transaction_is_resent() {
    let server = FakeLibsql::start(SQLD_REFUSES, None).await;
    // busy_timeout 500 ms: the same wait a file's writer gets.
    let pool = RemotePool::open("default", &server.config(), &options(2, 1000))
        .await
        .unwrap();
    let mut c = pool.acquire().await.unwrap();
    c.execute("CREATE TABLE t(x)", &[]).await.unwrap();

    // BEGIN IMMEDIATE answered busy 3 times: sent again until the lock is free.
    server.busy("BEGIN IMMEDIATE", 3);
    c.execute("BEGIN IMMEDIATE", &[]).await.unwrap();
    assert_eq!(server.sent("BEGIN IMMEDIATE"), 4);
    assert!(!c.is_autocommit().await);
    // Inside the transaction a busy statement is not resent: the guest sees it once.
    server.busy("INSERT INTO t VALUES (1)", 1);
    let e = c
        .execute("INSERT INTO t VALUES (1)", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, DbError::Io(m) if m.contains("database is locked")),
        "{e:?}"
    );
    assert_eq!(server.sent("INSERT INTO t VALUES (1)"), 1);
    c.execute("INSERT INTO t VALUES (2)", &[]).await.unwrap();
    server.busy("COMMIT", 1);
    assert!(
        c.execute("COMMIT", &[]).await.is_err(),
        "COMMIT is not resent"
    );
    assert_eq!(server.sent("COMMIT"), 1);
    c.execute("COMMIT", &[]).await.unwrap();
    assert_eq!(server.query_i64("SELECT count(*) FROM t"), 1);

    // An autocommit write answered busy 5 times: resent, and applied once.
    server.busy("INSERT INTO t VALUES (3)", 5);
    c.execute("INSERT INTO t VALUES (3)", &[]).await.unwrap();
    assert_eq!(c.changes(), 1);
    assert_eq!(server.sent("INSERT INTO t VALUES (3)"), 6);
    assert_eq!(server.query_i64("SELECT count(*) FROM t WHERE x = 3"), 1);
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_longer_than_the_busy_timeout_is_still_the_busy_error() {
    let server = FakeLibsql::start(SQLD_REFUSES, None).await;
    let pool = RemotePool::open("default", &server.config(), &options(2, 1000))
        .await
        .unwrap();
    let mut c = pool.acquire().await.unwrap();
    c.execute("CREATE TABLE t(x)", &[]).await.unwrap();
    for sql in ["BEGIN IMMEDIATE", "INSERT INTO t VALUES (1)"] {
        server.busy(sql, u32::MAX);
        let started = Instant::now();
        let e = c.execute(sql, &[]).await.unwrap_err();
        let waited = started.elapsed();
        assert!(
            matches!(&e, DbError::Io(m) if m == "SQLite error: database is locked"),
            "{sql}: {e:?}"
        );
        // Retried for the busy timeout (500 ms; pauses 1, 2, 4 … 50 ms), then given up.
        assert!(
            waited >= Duration::from_millis(400) && waited < Duration::from_millis(2000),
            "{sql}: {waited:?}"
        );
        assert!(server.sent(sql) > 5, "{sql}: {}", server.sent(sql));
        server.busy(sql, 0);
    }
    assert!(c.is_autocommit().await);
    assert_eq!(server.query_i64("SELECT count(*) FROM t"), 0);
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_interrupted_inside_a_transaction_is_run_again_by_the_core() {
    let server = FakeLibsql::start(SQLD_REFUSES, None).await;
    let app = TestApp::start_with(on_libsql(&server)).await;
    let def = app
        .create(
            "/api/agents",
            json!({ "name": "planner", "agent_type": "planner" }),
        )
        .await;
    let run = app
        .create(
            "/api/runtime/agents",
            json!({ "orchestrator_agent_id": def["id"], "session_id": "s" }),
        )
        .await;
    let id = run["id"].as_str().unwrap();
    // The PATCH's state_change row is interrupted once: the host hands the error to
    // the guest (an interrupt is not a busy answer), the core rolls back and runs the
    // transaction again.
    let updates_before = server
        .log()
        .iter()
        .filter(|(_, s)| s.starts_with("UPDATE agents"))
        .count();
    server.interrupt(
        "INSERT INTO agent_logs (agent_id, log_level, log_type, message",
        1,
    );
    let r = app
        .patch(
            &format!("/api/runtime/agents/{id}"),
            json!({ "status": "planning" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Json = r.json().await.unwrap();
    assert_eq!(body["status"], "planning");
    let updates = server
        .log()
        .iter()
        .filter(|(_, s)| s.starts_with("UPDATE agents"))
        .count();
    assert_eq!(updates - updates_before, 2, "the PATCH ran twice");
    assert_eq!(
        server.query_i64(&format!(
            "SELECT count(*) FROM agent_logs WHERE agent_id = '{id}' AND log_type = 'state_change'"
        )),
        2,
        "created, then planning: each once"
    );
    app.stop().await;
    eventually("every stream closed", || server.open_streams() == 0).await;
}
