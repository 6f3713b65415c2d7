//! The upstream API as the sidecar sees it: two GET endpoints that speak the feed's JSON.
//!
//! Client tasks' reads (snapshots, catch-ups) go through reqwest's connection pool and may
//! run concurrently. The poller's reads go over a [`FeedConnection`] of its own: one
//! keep-alive connection, reused request after request. (Through the pool, the next
//! long-poll, sent the moment an answer is read, usually finds the previous connection not
//! yet handed back, so the live feed alternated between two connections and the pool
//! opened spare ones.)

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::SidecarConfig;

/// Extra time given to a long-poll beyond its `wait` before the request is abandoned.
const LONG_POLL_MARGIN: Duration = Duration::from_secs(10);
/// Time limit of a plain (non-waiting) upstream request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time limit of opening a connection to the upstream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How much later than its `wait` a long-poll's 504 may come and still count as the
/// API's deadline ending the wait (the host's deadline and the wait can be equal).
const DEADLINE_TOLERANCE: Duration = Duration::from_secs(1);
/// `limit` of every feed read: the API's maximum.
pub(crate) const FEED_LIMIT: u32 = 1000;

/// One event of the feed, ready to send: `text` is the complete WebSocket message
/// `{"type":"agent_update","cursor":n,"data":run}`, built once and shared by every client.
#[derive(Debug)]
pub(crate) struct Event {
    pub cursor: u64,
    pub text: Arc<str>,
}

/// A snapshot, ready to send: `text` is `{"type":"snapshot","cursor":N,"data":[...]}`.
pub(crate) struct Snapshot {
    pub cursor: u64,
    pub text: String,
}

/// One answer of `GET /api/events`.
pub(crate) struct Batch {
    pub events: Vec<Arc<Event>>,
}

/// Why an upstream request failed, in words fit for a client's error message.
#[derive(Clone, Debug)]
pub(crate) struct UpstreamError(pub Arc<str>);

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a long-poll brought no events.
#[derive(Debug)]
pub(crate) enum PollError {
    /// The API's request deadline ended the wait (a 504 before the wait was over),
    /// `elapsed` after the request was sent: an empty answer from a live API.
    Deadline { elapsed: Duration },
    /// Anything else: the API is unreachable or failing.
    Failed(UpstreamError),
}

impl From<UpstreamError> for PollError {
    fn from(error: UpstreamError) -> Self {
        PollError::Failed(error)
    }
}

#[derive(Deserialize)]
struct SnapshotBody {
    cursor: u64,
    data: Box<RawValue>,
}

#[derive(Deserialize)]
struct FeedBody {
    #[allow(dead_code)] // part of the contract; the events' own cursors are what we follow
    cursor: u64,
    events: Vec<FeedEvent>,
}

#[derive(Deserialize)]
struct FeedEvent {
    cursor: u64,
    #[serde(rename = "type")]
    kind: String,
    data: Box<RawValue>,
}

#[derive(Serialize)]
struct OutMessage<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    cursor: u64,
    data: &'a RawValue,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

pub(crate) struct Upstream {
    http: reqwest::Client,
    base: String,
    /// `host:port` of the base URL: where a [`FeedConnection`] connects, and its `Host`.
    authority: String,
    /// The origins a page served by the API itself has (the dashboard at `/`), which the
    /// handshake allows like the configured ones.
    origins: Vec<String>,
    /// The base URL's path without a trailing slash (usually empty).
    base_path: String,
    token: Option<String>,
    /// The long-poll `wait`, in whole seconds (1..=30).
    wait_secs: u64,
}

impl Upstream {
    pub fn new(config: &SidecarConfig) -> anyhow::Result<Upstream> {
        let base = config.upstream.trim().trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base)
            .with_context(|| format!("invalid upstream URL {:?}", config.upstream))?;
        if url.scheme() != "http" {
            bail!(
                "upstream URL {:?}: only http:// is supported (put TLS in front of the API, not between it and the sidecar)",
                config.upstream
            );
        }
        if url.query().is_some() || url.fragment().is_some() {
            bail!(
                "upstream URL {:?} must be a base URL without query or fragment",
                config.upstream
            );
        }
        let host = url
            .host_str()
            .with_context(|| format!("upstream URL {:?} has no host", config.upstream))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = format!("{host}:{port}");
        let origins = page_origins(&url, port);
        let base_path = url.path().trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .context("cannot build the upstream HTTP client")?;
        // Round a sub-second wait up: the API takes whole seconds, and 0 would spin.
        let wait_secs = config.poll_wait.as_secs_f64().ceil().clamp(1.0, 30.0) as u64;
        Ok(Upstream {
            http,
            base,
            authority,
            origins,
            base_path,
            token: config.token.clone(),
            wait_secs,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn wait_secs(&self) -> u64 {
        self.wait_secs
    }

    /// See [`Upstream::origins`]'s field.
    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// `GET /api/events/snapshot`.
    pub async fn snapshot(&self) -> Result<Snapshot, UpstreamError> {
        let path = SNAPSHOT_PATH;
        let body = self.get(path, REQUEST_TIMEOUT).await?;
        snapshot_from(decode(&self.url(path), body)?)
    }

    /// `GET /api/events?after=..&wait=..&limit=1000`. Events come back in cursor order,
    /// each strictly after `after`; anything else is an upstream error.
    pub async fn events(&self, after: u64, wait_secs: u64) -> Result<Batch, UpstreamError> {
        let path = events_path(after, wait_secs);
        let timeout = Duration::from_secs(wait_secs) + LONG_POLL_MARGIN;
        let body = self.get(&path, timeout).await?;
        batch_from(after, decode(&self.url(&path), body)?)
    }

    /// [`Upstream::snapshot`] over the poller's own connection.
    pub async fn snapshot_on(&self, conn: &mut FeedConnection) -> Result<Snapshot, UpstreamError> {
        let path = SNAPSHOT_PATH;
        let body = self.get_on(conn, path, REQUEST_TIMEOUT).await?;
        snapshot_from(decode(&self.url(path), body)?)
    }

    /// [`Upstream::events`] over the poller's own connection. A 504 that ends a poll
    /// asked to wait, before that wait was over (give or take [`DEADLINE_TOLERANCE`]), is
    /// the API's request deadline cutting the wait short: [`PollError::Deadline`], an
    /// empty answer, not an outage. A 504 to a poll that was not asked to wait, or that
    /// came after its wait, means the API cannot answer at all.
    pub async fn events_on(
        &self,
        conn: &mut FeedConnection,
        after: u64,
        wait_secs: u64,
    ) -> Result<Batch, PollError> {
        let path = events_path(after, wait_secs);
        let timeout = Duration::from_secs(wait_secs) + LONG_POLL_MARGIN;
        let started = Instant::now();
        let body = self.get_on(conn, &path, timeout).await?;
        let elapsed = started.elapsed();
        if body.0 == http::StatusCode::GATEWAY_TIMEOUT
            && wait_secs > 0
            && elapsed < Duration::from_secs(wait_secs) + DEADLINE_TOLERANCE
        {
            return Err(PollError::Deadline { elapsed });
        }
        Ok(batch_from(after, decode(&self.url(&path), body)?)?)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A GET through reqwest's pool: the status and the whole body.
    async fn get(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<(http::StatusCode, Bytes), UpstreamError> {
        let url = self.url(path);
        let mut request = self.http.get(&url).timeout(timeout);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(&url, &e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(&url, &e))?;
        Ok((status, bytes))
    }

    /// A GET over `conn`, (re)connecting it first if it is not open. Any failure closes
    /// it, so the next request starts on a fresh connection.
    async fn get_on(
        &self,
        conn: &mut FeedConnection,
        path: &str,
        timeout: Duration,
    ) -> Result<(http::StatusCode, Bytes), UpstreamError> {
        let url = self.url(path);
        let result = tokio::time::timeout(timeout, self.exchange(conn, path)).await;
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => {
                conn.sender = None;
                Err(transport_error(&url, &*error))
            }
            Err(_) => {
                conn.sender = None;
                Err(UpstreamError(
                    format!("cannot reach the upstream API at {}: timed out", self.base).into(),
                ))
            }
        }
    }

    async fn exchange(
        &self,
        conn: &mut FeedConnection,
        path: &str,
    ) -> Result<(http::StatusCode, Bytes), Box<dyn std::error::Error + Send + Sync>> {
        // A connection the server has closed (keep-alive timeout, restart) is replaced
        // before it is used, not discovered by a failed request.
        let open = match conn.sender.take() {
            Some(mut sender) => sender.ready().await.is_ok().then_some(sender),
            None => None,
        };
        let mut sender = match open {
            Some(sender) => sender,
            None => self.connect().await?,
        };
        let mut request = http::Request::get(format!("{}{path}", self.base_path))
            .header(http::header::HOST, &self.authority)
            .header(http::header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = sender.send_request(request.body(Empty::new())?).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        conn.sender = Some(sender);
        Ok((status, body))
    }

    async fn connect(
        &self,
    ) -> Result<SendRequest<Empty<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect(self.authority.as_str()),
        )
        .await
        .map_err(|_| "connect timed out")??;
        let _ = stream.set_nodelay(true);
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "upstream feed connection ended");
            }
        });
        Ok(sender)
    }
}

/// The poller's own keep-alive connection to the upstream (opened on first use, replaced
/// after a failure). Holding it in the poller, one request at a time, is what makes the
/// live feed cost exactly one upstream connection.
#[derive(Default)]
pub(crate) struct FeedConnection {
    sender: Option<SendRequest<Empty<Bytes>>>,
}

const SNAPSHOT_PATH: &str = "/api/events/snapshot";

fn events_path(after: u64, wait_secs: u64) -> String {
    format!("/api/events?after={after}&wait={wait_secs}&limit={FEED_LIMIT}")
}

fn snapshot_from(body: SnapshotBody) -> Result<Snapshot, UpstreamError> {
    let text = format!(
        r#"{{"type":"snapshot","cursor":{},"data":{}}}"#,
        body.cursor,
        body.data.get()
    );
    Ok(Snapshot {
        cursor: body.cursor,
        text,
    })
}

fn batch_from(after: u64, body: FeedBody) -> Result<Batch, UpstreamError> {
    let mut last = after;
    let mut events = Vec::with_capacity(body.events.len());
    for event in body.events {
        if event.cursor <= last {
            return Err(UpstreamError(
                format!(
                    "upstream feed out of order: cursor {} after {}",
                    event.cursor, last
                )
                .into(),
            ));
        }
        last = event.cursor;
        let text = serde_json::to_string(&OutMessage {
            kind: &event.kind,
            cursor: event.cursor,
            data: &event.data,
        })
        .map_err(|e| UpstreamError(format!("cannot encode an event: {e}").into()))?;
        events.push(Arc::new(Event {
            cursor: event.cursor,
            text: text.into(),
        }));
    }
    Ok(Batch { events })
}

/// A 2xx body as `T`; anything else as the upstream error it reports.
fn decode<T: for<'de> Deserialize<'de>>(
    url: &str,
    (status, bytes): (http::StatusCode, Bytes),
) -> Result<T, UpstreamError> {
    if !status.is_success() {
        let detail = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => format!("{}: {}", body.error.code, body.error.message),
            Err(_) => String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
        };
        return Err(UpstreamError(
            format!("upstream answered {status} ({detail})").into(),
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        UpstreamError(format!("upstream sent an unexpected body for {url}: {e}").into())
    })
}

/// reqwest's and hyper's own messages are "error sending request for url (..)" and the
/// like; the cause (connection refused, timed out, ..) is further down the source chain.
fn transport_error(url: &str, error: &(dyn std::error::Error + 'static)) -> UpstreamError {
    let mut cause = String::new();
    let mut source = error.source();
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    let timed_out = error
        .downcast_ref::<reqwest::Error>()
        .is_some_and(reqwest::Error::is_timeout);
    let what = if timed_out {
        "timed out".to_string()
    } else {
        let what = if cause.is_empty() {
            error.to_string()
        } else {
            cause
        };
        // "Connection refused (os error 111)": the number adds nothing for a reader.
        match what.find(" (os error") {
            Some(i) => what[..i].to_string(),
            None => what,
        }
    };
    let base = url.split("/api/").next().unwrap_or(url);
    UpstreamError(format!("cannot reach the upstream API at {base}: {what}").into())
}

/// The origins of pages the upstream serves: its own `http://host:port` (the default port
/// omitted, as browsers send it). A loopback upstream is reached by a browser under any of
/// the loopback names, so all three are allowed; the sidecar and the API then sit on one
/// machine, where a page on that port is the API's own dashboard.
fn page_origins(url: &reqwest::Url, port: u16) -> Vec<String> {
    // (An IPv6 host comes with its brackets, as in an Origin.)
    let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
        return Vec::new();
    };
    let port = if port == 80 {
        String::new()
    } else {
        format!(":{port}")
    };
    let loopback = ["127.0.0.1", "localhost", "[::1]"];
    let hosts: Vec<&str> = if loopback.contains(&host.as_str()) {
        loopback.to_vec()
    } else {
        vec![host.as_str()]
    };
    hosts.iter().map(|h| format!("http://{h}{port}")).collect()
}
