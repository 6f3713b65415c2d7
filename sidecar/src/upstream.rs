//! The upstream API as the sidecar sees it: two GET endpoints that speak the feed's JSON.
//!
//! Stateless apart from reqwest's connection pool, so the poller and every client task may
//! call it concurrently.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::SidecarConfig;

/// Extra time given to a long-poll beyond its `wait` before the request is abandoned.
const LONG_POLL_MARGIN: Duration = Duration::from_secs(10);
/// Time limit of a plain (non-waiting) upstream request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
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
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .context("cannot build the upstream HTTP client")?;
        // Round a sub-second wait up: the API takes whole seconds, and 0 would spin.
        let wait_secs = config.poll_wait.as_secs_f64().ceil().clamp(1.0, 30.0) as u64;
        Ok(Upstream {
            http,
            base,
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

    /// `GET /api/events/snapshot`.
    pub async fn snapshot(&self) -> Result<Snapshot, UpstreamError> {
        let url = format!("{}/api/events/snapshot", self.base);
        let body: SnapshotBody = self.get_json(&url, REQUEST_TIMEOUT).await?;
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

    /// `GET /api/events?after=..&wait=..&limit=1000`. Events come back in cursor order,
    /// each strictly after `after`; anything else is an upstream error.
    pub async fn events(&self, after: u64, wait_secs: u64) -> Result<Batch, UpstreamError> {
        let url = format!(
            "{}/api/events?after={after}&wait={wait_secs}&limit={FEED_LIMIT}",
            self.base
        );
        let timeout = Duration::from_secs(wait_secs) + LONG_POLL_MARGIN;
        let body: FeedBody = self.get_json(&url, timeout).await?;
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

    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<T, UpstreamError> {
        let mut request = self.http.get(url).timeout(timeout);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| transport_error(url, &e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(url, &e))?;
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
}

/// reqwest's own message is "error sending request for url (..)"; the cause (connection
/// refused, timed out, ..) is further down the source chain.
fn transport_error(url: &str, error: &reqwest::Error) -> UpstreamError {
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    let what = if error.is_timeout() {
        "timed out".to_string()
    } else if cause.is_empty() {
        error.to_string()
    } else {
        // "Connection refused (os error 111)": the number adds nothing for a reader.
        match cause.find(" (os error") {
            Some(i) => cause[..i].to_string(),
            None => cause,
        }
    };
    let base = url.split("/api/").next().unwrap_or(url);
    UpstreamError(format!("cannot reach the upstream API at {base}: {what}").into())
}
