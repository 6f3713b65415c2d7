//! A bounded set of Hrana streams to one libSQL database, and the one bounded HTTP
//! exchange every statement and every close goes through.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::connection::{RemoteConnection, StreamState};
use crate::protocol::{HranaError, PipelineRequest, PipelineResponse, StreamRequest};
use crate::transport::{Endpoint, Http};
use crate::Error;

/// How a [`RemotePool`] hands out streams and bounds its waits.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Maximum streams open at once (at least 1).
    pub size: usize,
    /// How long `acquire` waits for a free stream before failing.
    pub wait: Duration,
    /// How long a statement the server answers busy is sent again (when it may be):
    /// the wait a local file's writer gets from SQLite's `busy_timeout`.
    pub busy_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            size: 16,
            wait: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// What the pool and its connections share.
pub(crate) struct RemoteInner {
    pub(crate) label: String,
    url: String,
    endpoint: Endpoint,
    token: Option<String>,
    http: Http,
    permits: Arc<Semaphore>,
    size: usize,
    wait: Duration,
    /// Bound of one HTTP exchange (connect, send, whole answer).
    request_timeout: Duration,
    /// How long a statement the server answers busy is retried (when it may be).
    pub(crate) busy_timeout: Duration,
    closed: AtomicBool,
}

impl RemoteInner {
    /// One pipeline on the stream `baton` (a new stream when `None`), bounded in time.
    /// The words of the errors for a server that did not answer or could not be
    /// reached ("no answer from", "cannot connect to") are what guests classify by:
    /// keep them.
    pub(crate) async fn pipeline(
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

    /// A [`Error::Server`] naming this database and its server.
    pub(crate) fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::Server(format!(
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
    /// Set up database `label` on the server at `url` (`token` empty for none) and
    /// check, with one `SELECT 1`, that the server answers and accepts the token, so
    /// that a wrong URL or token fails here, at start-up, with an error naming the URL
    /// (never the token).
    pub async fn open(
        label: &str,
        url: &str,
        token: &str,
        options: &PoolOptions,
    ) -> Result<RemotePool, Error> {
        let endpoint =
            Endpoint::parse(url).map_err(|e| Error::Open(format!("database `{label}`: {e}")))?;
        let size = options.size.max(1);
        let pool = RemotePool {
            inner: Arc::new(RemoteInner {
                label: label.to_string(),
                url: url.to_string(),
                endpoint,
                token: Some(token.to_string()).filter(|t| !t.is_empty()),
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
            Error::DatabaseFull => Error::Open(format!("cannot open database `{label}`: {e:?}")),
            other => Error::Open(format!("cannot open {other}")),
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
    pub async fn acquire(&self) -> Result<RemoteConnection, Error> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed(inner.label.clone()));
        }
        let permit =
            match tokio::time::timeout(inner.wait, inner.permits.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => return Err(Error::Closed(inner.label.clone())),
                Err(_) => {
                    return Err(Error::Exhausted {
                        label: inner.label.clone(),
                        size: inner.size,
                        wait: inner.wait,
                    })
                }
            };
        Ok(RemoteConnection::new(
            self.inner.clone(),
            StreamState::default(),
            permit,
        ))
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
