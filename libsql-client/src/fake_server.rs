//! A stand-in libSQL server for tests: Hrana 3 over HTTP (`POST /v3/pipeline`, JSON) on
//! loopback, each stream a rusqlite connection to one shared file, refusing the
//! statements sqld refuses (`PRAGMA busy_timeout = N`, `PRAGMA journal_mode = …`,
//! `PRAGMA synchronous = …` answer "unsupported statement: …"; see [`SQLD_REFUSES`]).
//! It can answer chosen statements busy or interrupted, stall on `SELECT 'stall'` for 3
//! seconds, and check a token.
//!
//! It is written against the JSON of the Hrana spec, not against this crate's
//! `protocol` types, so a shape this client gets wrong shows up here too. What it does
//! not model: sqld's own behaviour (its locking, durability, replication) — that was
//! checked by hand against a real sqld (docs/scale-out.md).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value as Json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The stand-in server; dropping it stops it.
pub struct FakeLibsql {
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
pub const SQLD_REFUSES: &[&str] = &[
    "pragma busy_timeout =",
    "pragma journal_mode =",
    "pragma synchronous =",
];

impl FakeLibsql {
    /// Start serving on a free loopback port: `refused` are statement prefixes (lower
    /// case) answered "unsupported statement: …"; with a `token`, a request without
    /// `Authorization: Bearer <token>` is answered 401. Call it inside a tokio runtime.
    pub async fn start(refused: &[&'static str], token: Option<&str>) -> FakeLibsql {
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

    /// Its URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The token it checks (empty for none).
    pub fn token(&self) -> &str {
        self.state.token.as_deref().unwrap_or_default()
    }

    /// Every statement executed, with the stream it ran on, in order.
    pub fn log(&self) -> Vec<(u64, String)> {
        self.state.log.lock().unwrap().clone()
    }

    /// Answer `sql` "database is locked" (without running it) its next `times` times.
    pub fn busy(&self, sql: &str, times: u32) {
        self.state
            .busy
            .lock()
            .unwrap()
            .insert(sql.to_string(), times);
    }

    /// Answer the next `times` statements that start with `prefix` "interrupted".
    pub fn interrupt(&self, prefix: &str, times: u32) {
        self.state
            .interrupt
            .lock()
            .unwrap()
            .push((prefix.to_string(), times));
    }

    /// How many times `sql` reached the server.
    pub fn sent(&self, sql: &str) -> usize {
        self.log().iter().filter(|(_, s)| s == sql).count()
    }

    /// Streams open on the server (neither closed nor expired).
    pub fn open_streams(&self) -> usize {
        self.state.streams.lock().unwrap().len()
    }

    /// A direct look at the server's file.
    pub fn query_i64(&self, sql: &str) -> i64 {
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
