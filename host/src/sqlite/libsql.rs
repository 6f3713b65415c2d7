//! `type = "libsql"` databases: a libSQL server (`sqld`, Turso) spoken to over Hrana
//! over HTTP, version 3 with JSON bodies (`POST <url>/v3/pipeline`).
//!
//! Why not the `libsql` crate (what Spin uses): with only its `remote` feature it still
//! brings hyper 0.14, http 0.2, rustls 0.22 and hyper-rustls 0.25 (a second HTTP and TLS
//! stack beside the hyper 1 / rustls 0.23 this host already has through wasmtime-wasi-http)
//! and libSQL's SQL parser; here the protocol is a few JSON shapes over the hyper 1 client
//! and tokio-rustls already in the build. See `docs/scale-out.md` for the numbers.
//!
//! Same semantics as a local file (see [`super::pool`]):
//! * a guest `connection` pins one Hrana *stream* (one server-side connection, tied
//!   together by the baton the server hands back with every response) from `open` to
//!   drop, so `BEGIN IMMEDIATE … COMMIT` spans `execute` calls;
//! * at most `size` streams per database are open at once; `open` waits at most `wait`
//!   for one, then fails with the pool's "pool exhausted" error;
//! * every HTTP exchange is bounded (`wait + busy_timeout`), so a stalled server ends in
//!   an error, never a hung request. Like every failure to reach the server, it is an
//!   `io` error in words no SQLite error uses ("no answer from HOST within 10s",
//!   "cannot connect to HOST: …"), so a guest can tell "the server did not answer, try
//!   later" from a failed statement (the orchestrator's core answers those 503). A
//!   statement without an answer may still have run: it is never sent again;
//! * when the connection goes (guest drop, trap, deadline), its stream is closed with a
//!   `ROLLBACK` first if a transaction is still open — after any statement still in
//!   flight has come back, so the rollback cannot overtake it;
//! * a writer waits for the server's write lock as a file's writer waits with
//!   `busy_timeout`: a statement the server answers "database is locked"
//!   (`SQLITE_BUSY`) is sent again, with a short backoff, for up to the pool's
//!   `busy_timeout` — but only when resending is safe (see [`retry_when_busy`]);
//! * `PRAGMA busy_timeout = N` and `PRAGMA journal_mode = …` are refused with
//!   "unsupported statement", as libSQL's own client refuses them (the server, not the
//!   connection, decides how writers wait and how the log is kept), so the core's
//!   best-effort rule sees what it sees on Spin.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::pool::{PoolError, PoolOptions};
use super::{DbError, DbQueryResult, DbValue};
use crate::runtime_config::LibsqlConfig;

/// Idle keep-alive connections older than this are not reused: a server or proxy may
/// have closed them, and a request sent on a closed connection cannot be told apart
/// from one the server executed, so it must not be retried.
const IDLE_REUSE: Duration = Duration::from_secs(20);

/// The first pause before a statement the server answered busy is sent again; each
/// further pause doubles, up to [`BUSY_BACKOFF_MAX`].
const BUSY_BACKOFF_FIRST: Duration = Duration::from_millis(1);
const BUSY_BACKOFF_MAX: Duration = Duration::from_millis(50);

/// Where the server is: scheme, authority and the path prefix of its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
    /// `host[:port]`, for the `Host` header and as the connection-reuse key.
    authority: String,
    /// The URL's path without a trailing `/` (usually empty).
    base_path: String,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Endpoint, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("invalid libSQL URL {url:?}: {e}"))?;
        let tls = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("https") | Some("libsql") => true,
            Some("http") => false,
            _ => {
                return Err(format!(
                    "libSQL URL {url:?} must be http://, https:// or libsql://"
                ))
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("libSQL URL {url:?} has no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Endpoint {
            tls,
            host: host.to_string(),
            port,
            authority: authority.as_str().to_string(),
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    }
}

// ---- Hrana 3 JSON shapes (only what this client sends and reads) -----------------

#[derive(Serialize)]
struct PipelineRequest<'a> {
    baton: Option<&'a str>,
    requests: Vec<StreamRequest<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamRequest<'a> {
    Execute { stmt: Stmt<'a> },
    GetAutocommit,
    Close,
}

#[derive(Serialize)]
struct Stmt<'a> {
    sql: &'a str,
    args: Vec<Value>,
    want_rows: bool,
}

/// A Hrana value. Integers travel as strings (JSON numbers lose precision past 2^53),
/// blobs as base64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Value {
    Null,
    Integer { value: String },
    Float { value: f64 },
    Text { value: String },
    Blob { base64: String },
}

#[derive(Debug, Deserialize)]
struct PipelineResponse {
    baton: Option<String>,
    base_url: Option<String>,
    results: Vec<StreamResult>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum StreamResult {
    Ok { response: StreamResponse },
    Error { error: HranaError },
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamResponse {
    Execute { result: StmtResult },
    GetAutocommit { is_autocommit: bool },
    Close {},
}

#[derive(Debug, Deserialize)]
struct StmtResult {
    cols: Vec<Col>,
    rows: Vec<Vec<Value>>,
    #[serde(default)]
    affected_row_count: u64,
    #[serde(default)]
    last_insert_rowid: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Col {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HranaError {
    message: String,
    #[serde(default)]
    code: Option<String>,
}

fn to_hrana(v: &DbValue) -> Value {
    match v {
        DbValue::Null => Value::Null,
        DbValue::Integer(i) => Value::Integer {
            value: i.to_string(),
        },
        DbValue::Real(f) => Value::Float { value: *f },
        DbValue::Text(s) => Value::Text { value: s.clone() },
        DbValue::Blob(b) => Value::Blob {
            base64: base64_encode(b),
        },
    }
}

fn from_hrana(v: Value) -> Result<DbValue, DbError> {
    Ok(match v {
        Value::Null => DbValue::Null,
        Value::Integer { value } => DbValue::Integer(
            value
                .parse()
                .map_err(|_| DbError::Io(format!("libSQL server sent a bad integer {value:?}")))?,
        ),
        Value::Float { value } => DbValue::Real(value),
        Value::Text { value } => DbValue::Text(value),
        Value::Blob { base64 } => DbValue::Blob(
            base64_decode(&base64)
                .ok_or_else(|| DbError::Io("libSQL server sent a bad base64 blob".into()))?,
        ),
    })
}

/// The binding's error for a statement the server refused. SQLite's message stays as
/// it is (the core classifies constraint failures by it); a full database is
/// `database-full`, as for a local file.
fn statement_error(e: HranaError) -> DbError {
    match e.code.as_deref() {
        Some(code) if code.starts_with("SQLITE_FULL") => DbError::DatabaseFull,
        _ => DbError::Io(e.message),
    }
}

/// Whether the server refused a statement because another connection holds the lock
/// it needs. sqld reports SQLite's primary code (`SQLITE_BUSY`, also for the extended
/// `SQLITE_BUSY_SNAPSHOT` it answers when a replica's snapshot went stale, and
/// `SQLITE_LOCKED`) with the message "SQLite error: database is locked"; the message
/// is checked too, for servers that send another code or none.
fn is_busy(e: &HranaError) -> bool {
    let code = e.code.as_deref().unwrap_or_default();
    code.starts_with("SQLITE_BUSY")
        || code.starts_with("SQLITE_LOCKED")
        || e.message.contains("database is locked")
        || e.message.contains("database table is locked")
}

/// Whether a statement the server answered busy may simply be sent again, on the same
/// stream: only when the stream was outside a transaction before it and still is
/// after it, as the server reported.
///
/// * Outside a transaction (autocommit) a busy statement did not apply: SQLite rolls
///   back the statement's implicit transaction, so sending it again runs it once.
/// * A `BEGIN` / `BEGIN IMMEDIATE` is sent outside a transaction too, and a busy one
///   opened nothing: retrying it is how a writer waits for the lock.
/// * Never inside an open transaction (any statement after its `BEGIN`, `COMMIT`
///   included): what a busy statement there did to the transaction differs by
///   statement and by server (SQLite may have rolled the whole transaction back, and
///   then a resent statement would run on its own, with the transaction's earlier
///   statements lost), so the error goes back to the guest, which retries the whole
///   transaction if it wants to.
fn retry_when_busy(autocommit_before: bool, autocommit_after: bool) -> bool {
    autocommit_before && autocommit_after
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (servers accept both; libSQL's own sends none).
fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64, padded or not. `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

// ---- HTTP: keep-alive connections over hyper 1 -----------------------------------

/// An open HTTP/1.1 connection's request handle, and since when it has been idle.
type IdleConnection = (SendRequest<Full<Bytes>>, Instant);

/// Keep-alive HTTP/1.1 connections to the server(s), reused one request at a time.
struct Http {
    /// By authority.
    idle: Mutex<HashMap<String, Vec<IdleConnection>>>,
    tls: tokio_rustls::TlsConnector,
}

impl Http {
    fn new() -> Http {
        let roots = tokio_rustls::rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let config = tokio_rustls::rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Http {
            idle: Mutex::new(HashMap::new()),
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }

    fn take_idle(&self, key: &str) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        while let Some((sender, since)) = list.pop() {
            if since.elapsed() < IDLE_REUSE && sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, key: &str, sender: SendRequest<Full<Bytes>>) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.entry(key.to_string())
                .or_default()
                .push((sender, Instant::now()));
        }
    }

    async fn connect(&self, ep: &Endpoint) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = tokio::net::TcpStream::connect((ep.host.as_str(), ep.port))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", ep.authority))?;
        let _ = tcp.set_nodelay(true);
        if ep.tls {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(ep.host.clone())
                .map_err(|e| format!("bad TLS server name {:?}: {e}", ep.host))?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {} failed: {e}", ep.authority))?;
            handshake(tls).await
        } else {
            handshake(tcp).await
        }
    }

    /// POST `body` to `path` and read the whole answer.
    async fn post(
        &self,
        ep: &Endpoint,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(http::StatusCode, Bytes), String> {
        let mut sender = match self.take_idle(&ep.authority) {
            Some(sender) => sender,
            None => self.connect(ep).await?,
        };
        let mut request = http::Request::post(format!("{}{path}", ep.base_path))
            .header(http::header::HOST, &ep.authority)
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("bad request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request to {} failed: {e}", ep.authority))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer of {} failed: {e}", ep.authority))?
            .to_bytes();
        if sender.is_ready() {
            self.put_idle(&ep.authority, sender);
        }
        Ok((status, body))
    }
}

async fn handshake<S>(io: S) -> Result<SendRequest<Full<Bytes>>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    // The connection task ends when the sender is dropped or the server closes.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

// ---- the pool of streams -----------------------------------------------------------

struct RemoteInner {
    label: String,
    url: String,
    endpoint: Endpoint,
    token: Option<String>,
    http: Http,
    permits: Arc<Semaphore>,
    size: usize,
    wait: Duration,
    /// Bound of one HTTP exchange (connect, send, whole answer).
    request_timeout: Duration,
    /// How long a statement the server answers busy is retried (when it may be; see
    /// [`retry_when_busy`]): the pool's `busy_timeout`, the wait a file's writer gets.
    busy_timeout: Duration,
    closed: AtomicBool,
}

impl RemoteInner {
    /// One pipeline on the stream `baton` (a new stream when `None`), bounded in time.
    /// The words of the errors for a server that did not answer or could not be
    /// reached ("no answer from", "cannot connect to") are what guests classify by:
    /// keep them.
    async fn pipeline(
        &self,
        base: Option<&Endpoint>,
        baton: Option<&str>,
        requests: Vec<StreamRequest<'_>>,
    ) -> Result<PipelineResponse, String> {
        let body = serde_json::to_vec(&PipelineRequest { baton, requests })
            .map_err(|e| format!("cannot encode the request: {e}"))?;
        let ep = base.unwrap_or(&self.endpoint);
        let exchange = self
            .http
            .post(ep, "/v3/pipeline", self.token.as_deref(), body);
        let (status, body) = tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| {
                format!(
                    "no answer from {} within {:?}",
                    ep.authority, self.request_timeout
                )
            })??;
        if !status.is_success() {
            // The spec asks for an Error object; proxies send text or HTML.
            let detail = serde_json::from_slice::<HranaError>(&body)
                .map(|e| e.message)
                .or_else(|_| {
                    serde_json::from_slice::<serde_json::Value>(&body).map(|v| {
                        v.get("error")
                            .and_then(|e| e.as_str())
                            .map_or_else(|| v.to_string(), str::to_string)
                    })
                })
                .unwrap_or_else(|_| {
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                        .trim()
                        .to_string()
                });
            return Err(format!("HTTP {status}: {detail}"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("unreadable answer: {e}"))
    }

    /// Send one statement on the stream `state` (with a `get_autocommit` after it) and
    /// record what the server answered about the stream. The outer error is the
    /// exchange's (the statement's fate is unknown); the inner one the statement's.
    async fn execute_once(
        &self,
        state: &mut StreamState,
        sql: &str,
        args: Vec<Value>,
    ) -> Result<Result<StmtResult, HranaError>, DbError> {
        let requests = vec![
            StreamRequest::Execute {
                stmt: Stmt {
                    sql,
                    args,
                    want_rows: true,
                },
            },
            StreamRequest::GetAutocommit,
        ];
        let answer = self
            .pipeline(state.base.as_ref(), state.baton.as_deref(), requests)
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(message) => {
                // The stream's fate is unknown: never reuse its baton.
                state.baton = None;
                state.lost = !state.autocommit;
                return Err(self.error(message));
            }
        };
        state.baton = answer.baton;
        if let Some(base) = answer.base_url.as_deref() {
            state.base = Some(Endpoint::parse(base).map_err(|e| self.error(e))?);
        }
        let mut results = answer.results.into_iter();
        let executed = results.next();
        match results.next() {
            Some(StreamResult::Ok {
                response: StreamResponse::GetAutocommit { is_autocommit },
            }) => state.autocommit = is_autocommit,
            // Cannot tell: assume a transaction may be open, so drop rolls back.
            _ => state.autocommit = false,
        }
        if state.baton.is_none() && !state.autocommit {
            state.lost = true;
        }
        match executed {
            Some(StreamResult::Ok {
                response: StreamResponse::Execute { result },
            }) => Ok(Ok(result)),
            Some(StreamResult::Error { error }) => Ok(Err(error)),
            other => Err(self.error(format!("unexpected answer {other:?}"))),
        }
    }

    fn error(&self, message: impl std::fmt::Display) -> DbError {
        DbError::Io(format!(
            "database `{}` (libSQL at {}): {message}",
            self.label, self.url
        ))
    }
}

/// A bounded set of Hrana streams to one libSQL database. Cloning shares it.
#[derive(Clone)]
pub struct RemotePool {
    inner: Arc<RemoteInner>,
}

impl std::fmt::Debug for RemotePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemotePool")
            .field("label", &self.inner.label)
            .field("url", &self.inner.url)
            .finish()
    }
}

impl RemotePool {
    /// Set up database `label` on the server `config` names and check, with one
    /// `SELECT 1`, that the server answers and accepts the token, so that a wrong URL
    /// or token fails here, at start-up, with an error naming the URL.
    pub async fn open(
        label: &str,
        config: &LibsqlConfig,
        options: &PoolOptions,
    ) -> anyhow::Result<RemotePool> {
        let endpoint =
            Endpoint::parse(&config.url).map_err(|e| anyhow::anyhow!("database `{label}`: {e}"))?;
        let size = options.size.max(1);
        let pool = RemotePool {
            inner: Arc::new(RemoteInner {
                label: label.to_string(),
                url: config.url.clone(),
                endpoint,
                token: Some(config.token.clone()).filter(|t| !t.is_empty()),
                http: Http::new(),
                permits: Arc::new(Semaphore::new(size)),
                size,
                wait: options.wait,
                request_timeout: options.wait + options.busy_timeout,
                busy_timeout: options.busy_timeout,
                closed: AtomicBool::new(false),
            }),
        };
        let mut conn = pool.acquire().await?;
        conn.execute("SELECT 1", &[]).await.map_err(|e| match e {
            DbError::Io(message) => anyhow::anyhow!("cannot open {message}"),
            other => anyhow::anyhow!("cannot open database `{label}`: {other:?}"),
        })?;
        conn.close().await;
        Ok(pool)
    }

    /// The database label.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// The server's URL, as configured.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Streams currently checked out.
    pub fn in_use(&self) -> usize {
        self.inner.size - self.inner.permits.available_permits()
    }

    /// Check out a connection (no server round trip: its stream opens with its first
    /// statement), waiting at most the pool's `wait` for a free slot.
    pub async fn acquire(&self) -> Result<RemoteConnection, PoolError> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(PoolError::Closed(inner.label.clone()));
        }
        let permit =
            match tokio::time::timeout(inner.wait, inner.permits.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => return Err(PoolError::Closed(inner.label.clone())),
                Err(_) => {
                    return Err(PoolError::Exhausted {
                        label: inner.label.clone(),
                        size: inner.size,
                        wait: inner.wait,
                    })
                }
            };
        Ok(RemoteConnection {
            pool: self.inner.clone(),
            stream: Arc::new(tokio::sync::Mutex::new(StreamState::default())),
            permit: Some(permit),
            last_insert_rowid: 0,
            changes: 0,
        })
    }

    /// Refuse new `acquire`s, then wait up to `wait` for checked-out connections to
    /// close their streams.
    pub async fn close(&self, wait: Duration) {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::Release);
        let size = u32::try_from(inner.size).unwrap_or(u32::MAX);
        if tokio::time::timeout(wait, inner.permits.clone().acquire_many_owned(size))
            .await
            .is_err()
        {
            tracing::warn!(database = %inner.label, in_use = self.in_use(), "closing libSQL database with connections still in use");
        }
        inner.permits.close();
    }
}

/// The server-side state of one connection's stream.
#[derive(Debug)]
struct StreamState {
    /// The stream's current baton; `None` before the first statement.
    baton: Option<String>,
    /// Where the server asked this stream's requests to go, if elsewhere.
    base: Option<Endpoint>,
    /// Whether the stream is outside a transaction (as the server last reported).
    autocommit: bool,
    /// The stream was lost inside a transaction (an exchange failed): its statements
    /// must not go on in a fresh stream, outside the transaction they belong to.
    lost: bool,
}

impl Default for StreamState {
    fn default() -> Self {
        StreamState {
            baton: None,
            base: None,
            autocommit: true,
            lost: false,
        }
    }
}

/// One guest connection: a pinned Hrana stream.
pub struct RemoteConnection {
    pool: Arc<RemoteInner>,
    /// Locked for each exchange, so statements go out one at a time and the cleanup at
    /// drop waits for the one in flight.
    stream: Arc<tokio::sync::Mutex<StreamState>>,
    permit: Option<OwnedSemaphorePermit>,
    last_insert_rowid: i64,
    changes: u64,
}

/// Whether libSQL's client refuses `statement` before sending it (see the module doc).
fn refused_by_libsql_clients(statement: &str) -> bool {
    let words: Vec<String> = statement
        .trim()
        .trim_end_matches(';')
        .split(|c: char| c.is_ascii_whitespace() || c == '=' || c == '(')
        .filter(|w| !w.is_empty())
        .take(2)
        .map(str::to_ascii_lowercase)
        .collect();
    let has_value = statement.contains('=') || statement.contains('(');
    matches!(words.as_slice(), [p, name] if p == "pragma"
        && has_value
        && matches!(name.as_str(), "busy_timeout" | "journal_mode" | "main.journal_mode"))
}

impl RemoteConnection {
    /// Run one statement on this connection's stream.
    pub async fn execute(
        &mut self,
        statement: &str,
        params: &[DbValue],
    ) -> Result<DbQueryResult, DbError> {
        if refused_by_libsql_clients(statement) {
            return Err(DbError::Io("unsupported statement".to_string()));
        }
        let pool = self.pool.clone();
        let stream = self.stream.clone();
        let sql = statement.to_string();
        let args: Vec<Value> = params.iter().map(to_hrana).collect();
        // On a task of its own: if the guest is ended mid-statement, the exchange still
        // completes and records the stream's new baton, which the cleanup at drop needs
        // to roll the transaction back.
        let exchange = tokio::spawn(async move {
            let mut state = stream.lock_owned().await;
            if state.lost {
                return Err(
                    pool.error("the connection was lost inside a transaction; open a new one")
                );
            }
            let started = Instant::now();
            let mut backoff = BUSY_BACKOFF_FIRST;
            loop {
                let autocommit_before = state.autocommit;
                match pool.execute_once(&mut state, &sql, args.clone()).await? {
                    Ok(result) => return Ok(result),
                    Err(error)
                        if is_busy(&error)
                            && retry_when_busy(autocommit_before, state.autocommit)
                            && started.elapsed() + backoff <= pool.busy_timeout =>
                    {
                        // The stream lock stays held: the connection's statements
                        // still go out one at a time, and a drop's cleanup waits.
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(BUSY_BACKOFF_MAX);
                    }
                    Err(error) => return Err(statement_error(error)),
                }
            }
        });
        let result = exchange
            .await
            .map_err(|e| self.pool.error(format!("statement task failed: {e}")))??;
        self.changes = result.affected_row_count;
        if let Some(rowid) = result.last_insert_rowid.as_deref() {
            if let Ok(rowid) = rowid.parse() {
                self.last_insert_rowid = rowid;
            }
        }
        let columns = result
            .cols
            .into_iter()
            .map(|c| c.name.unwrap_or_default())
            .collect();
        let rows = result
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(from_hrana).collect())
            .collect::<Result<_, _>>()?;
        Ok(DbQueryResult { columns, rows })
    }

    /// The rowid of the last insert on this connection (as the server reported it).
    pub fn last_insert_rowid(&self) -> i64 {
        self.last_insert_rowid
    }

    /// Rows changed by the last statement.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Whether the server reported the stream outside a transaction after the last
    /// statement.
    pub async fn is_autocommit(&self) -> bool {
        self.stream.lock().await.autocommit
    }

    /// End the stream now (rolling back an open transaction) and wait for it.
    pub async fn close(mut self) {
        let cleanup = self.cleanup();
        cleanup.await;
    }

    fn cleanup(&mut self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let pool = self.pool.clone();
        let stream = self.stream.clone();
        let permit = self.permit.take();
        async move {
            let mut state = stream.lock().await;
            if let Some(baton) = state.baton.take() {
                let mut requests = Vec::new();
                if !state.autocommit {
                    requests.push(StreamRequest::Execute {
                        stmt: Stmt {
                            sql: "ROLLBACK",
                            args: Vec::new(),
                            want_rows: false,
                        },
                    });
                }
                requests.push(StreamRequest::Close);
                if let Err(e) = pool
                    .pipeline(state.base.as_ref(), Some(&baton), requests)
                    .await
                {
                    // The server expires an abandoned stream (and its transaction).
                    tracing::warn!(database = %pool.label, error = %e, "closing a libSQL stream failed");
                }
            }
            // The slot frees only once the server-side stream is gone.
            drop(permit);
        }
    }
}

impl Drop for RemoteConnection {
    fn drop(&mut self) {
        if self.permit.is_none() {
            return; // closed already
        }
        let cleanup = self.cleanup();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn(cleanup)),
            // No runtime to talk to the server: it expires the stream by itself.
            Err(_) => tracing::warn!(database = %self.pool.label, "libSQL stream left to expire"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_matches_the_standard() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(&[0xff, 0xfe, 0x00, 0x01]), "//4AAQ==");
        assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
        assert_eq!(
            base64_decode("Zm8").unwrap(),
            b"fo",
            "unpadded, as libSQL sends"
        );
        assert_eq!(base64_decode("//4AAQ").unwrap(), [0xff, 0xfe, 0x00, 0x01]);
        assert_eq!(base64_decode("Z"), None);
        assert_eq!(base64_decode("Zm9*"), None);
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(&base64_encode(&all)).unwrap(), all);
    }

    #[test]
    fn values_map_both_ways() {
        let values = [
            DbValue::Null,
            DbValue::Integer(i64::MIN),
            DbValue::Integer(9_007_199_254_740_993),
            DbValue::Real(1.5),
            DbValue::Text("héllo".into()),
            DbValue::Blob(vec![0, 1, 254, 255]),
        ];
        for v in values {
            let json = serde_json::to_string(&to_hrana(&v)).unwrap();
            let back: Value = serde_json::from_str(&json).unwrap();
            assert_eq!(from_hrana(back).unwrap(), v, "{json}");
        }
        assert_eq!(
            serde_json::to_string(&to_hrana(&DbValue::Integer(7))).unwrap(),
            r#"{"type":"integer","value":"7"}"#
        );
        assert!(from_hrana(Value::Integer { value: "x".into() }).is_err());
    }

    #[test]
    fn errors_keep_sqlites_message_and_spot_a_full_database() {
        let e = |message: &str, code: Option<&str>| {
            statement_error(HranaError {
                message: message.into(),
                code: code.map(Into::into),
            })
        };
        assert_eq!(
            e(
                "SQLite error: UNIQUE constraint failed: t.x",
                Some("SQLITE_CONSTRAINT_UNIQUE")
            ),
            DbError::Io("SQLite error: UNIQUE constraint failed: t.x".into())
        );
        assert_eq!(
            e("database or disk is full", Some("SQLITE_FULL")),
            DbError::DatabaseFull
        );
    }

    #[test]
    fn what_counts_as_busy_and_when_it_is_retried() {
        let e = |message: &str, code: Option<&str>| HranaError {
            message: message.into(),
            code: code.map(Into::into),
        };
        // What sqld sends (its `sqlite_error_code` maps the primary code).
        assert!(is_busy(&e(
            "SQLite error: database is locked",
            Some("SQLITE_BUSY")
        )));
        assert!(is_busy(&e("database is locked", None)));
        assert!(is_busy(&e(
            "database table is locked",
            Some("SQLITE_LOCKED")
        )));
        assert!(is_busy(&e("busy", Some("SQLITE_BUSY_SNAPSHOT"))));
        assert!(!is_busy(&e(
            "SQLite error: UNIQUE constraint failed: t.x",
            Some("SQLITE_CONSTRAINT")
        )));
        assert!(!is_busy(&e(
            "Transaction timed out",
            Some("TRANSACTION_TIMEOUT")
        )));
        // Outside a transaction before and after (an autocommit statement, a BEGIN
        // that opened nothing): retried. Inside one: never.
        assert!(retry_when_busy(true, true));
        assert!(!retry_when_busy(false, false));
        assert!(
            !retry_when_busy(false, true),
            "a transaction the busy rolled back"
        );
        assert!(!retry_when_busy(true, false));
    }

    #[test]
    fn the_pragmas_libsql_clients_refuse() {
        for refused in [
            "PRAGMA busy_timeout = 5000",
            "pragma BUSY_TIMEOUT=0;",
            "PRAGMA journal_mode = WAL",
            "PRAGMA journal_mode=wal",
        ] {
            assert!(refused_by_libsql_clients(refused), "{refused}");
        }
        for sent in [
            "PRAGMA foreign_keys = ON",
            "PRAGMA user_version",
            "PRAGMA user_version = 3",
            "PRAGMA busy_timeout",
            "SELECT 'PRAGMA busy_timeout = 1'",
            "BEGIN IMMEDIATE",
        ] {
            assert!(!refused_by_libsql_clients(sent), "{sent}");
        }
    }

    #[test]
    fn endpoints() {
        let ep = Endpoint::parse("libsql://db-org.turso.io").unwrap();
        assert!(ep.tls);
        assert_eq!((ep.host.as_str(), ep.port), ("db-org.turso.io", 443));
        assert_eq!(ep.base_path, "");
        let ep = Endpoint::parse("http://127.0.0.1:8080/").unwrap();
        assert!(!ep.tls);
        assert_eq!(ep.authority, "127.0.0.1:8080");
        assert_eq!(ep.base_path, "");
        let ep = Endpoint::parse("https://proxy.example/db1/").unwrap();
        assert_eq!(ep.base_path, "/db1");
        assert!(Endpoint::parse("ftp://x").is_err());
    }

    #[test]
    fn the_response_shapes_of_the_spec_parse() {
        let body = r#"{"baton":"b1","base_url":null,"results":[
            {"type":"ok","response":{"type":"execute","result":{"cols":[{"name":"x","decltype":"INTEGER"}],
             "rows":[[{"type":"integer","value":"1"}]],"affected_row_count":0,"last_insert_rowid":null,
             "replication_index":"3","rows_read":1,"rows_written":0,"query_duration_ms":0.1}}},
            {"type":"ok","response":{"type":"get_autocommit","is_autocommit":true}},
            {"type":"error","error":{"message":"no such table: t","code":"SQLITE_ERROR"}},
            {"type":"ok","response":{"type":"close"}}]}"#;
        let r: PipelineResponse = serde_json::from_str(body).unwrap();
        assert_eq!(r.baton.as_deref(), Some("b1"));
        assert_eq!(r.results.len(), 4);
        assert!(matches!(
            r.results[1],
            StreamResult::Ok {
                response: StreamResponse::GetAutocommit {
                    is_autocommit: true
                }
            }
        ));
        let sent = serde_json::to_value(PipelineRequest {
            baton: None,
            requests: vec![
                StreamRequest::Execute {
                    stmt: Stmt {
                        sql: "SELECT ?",
                        args: vec![Value::Null],
                        want_rows: true,
                    },
                },
                StreamRequest::GetAutocommit,
                StreamRequest::Close,
            ],
        })
        .unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"baton": null, "requests": [
                {"type": "execute", "stmt": {"sql": "SELECT ?", "args": [{"type": "null"}], "want_rows": true}},
                {"type": "get_autocommit"},
                {"type": "close"}]})
        );
    }
}
