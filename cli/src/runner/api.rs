//! The runner protocol as the runner speaks it (docs/dispatch.md): the requests, the
//! answers it reads, what a failed request means (the run is gone, or try again), the
//! backoff while the API is away, and the exit report.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value as Json};
use tokio::sync::watch;

/// Reports tried while the runner is stopping (it does not wait forever for an API that
/// is going away with it).
pub(super) const STOPPING_TRIES: u32 = 3;
/// The API as the runner sees it.
#[derive(Clone)]
pub(super) struct Api {
    pub(super) http: reqwest::Client,
    pub(super) url: String,
    pub(super) token: Option<String>,
}

/// How a report fared.
pub(super) enum Sent<T> {
    Ok(T),
    /// 404 or 409: the run is not (or no longer) this runner's.
    Gone(String),
    /// Anything else (unreachable, 5xx, a 4xx that sending again will not fix is logged
    /// and treated as gone).
    Retry(String),
}

impl Api {
    pub(super) async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Json,
        timeout: Duration,
    ) -> Sent<T> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .json(body)
            .timeout(timeout);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let response = match req.send().await {
            Ok(r) => r,
            Err(err) => return Sent::Retry(format!("{err}")),
        };
        let status = response.status();
        if status.is_success() {
            return match response.json::<T>().await {
                Ok(v) => Sent::Ok(v),
                Err(err) => Sent::Retry(format!("unreadable answer: {err}")),
            };
        }
        let text = response.text().await.unwrap_or_default();
        match status.as_u16() {
            404 | 409 => Sent::Gone(text),
            code if (400..500).contains(&code) && code != 408 && code != 429 => {
                tracing::error!(path, status = code, body = %text, "the API refused a report");
                Sent::Gone(text)
            }
            code => Sent::Retry(format!("HTTP {code}: {text}")),
        }
    }
}

/// The answer to `POST /api/runner/claim`: a run, or none within the wait.
#[derive(Debug, Deserialize)]
pub(super) struct ClaimAnswer {
    pub(super) claim: Option<Claim>,
}

/// A claimed run: what to start, under which lease.
#[derive(Debug, Deserialize)]
pub(super) struct Claim {
    pub(super) run: ClaimedRun,
    pub(super) lease: String,
    pub(super) lease_secs: u64,
    pub(super) argv: Vec<String>,
    pub(super) working_dir: Option<String>,
    pub(super) timeout_secs: Option<u64>,
    pub(super) env: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ClaimedRun {
    pub(super) id: String,
}

/// The answer to a heartbeat: whether someone pressed Stop.
#[derive(Debug, Deserialize)]
pub(super) struct Beat {
    pub(super) cancelled: bool,
}

/// Backoff for reports and claims while the API is away: 0.5 s doubling to 10 s.
pub(super) struct Backoff(Duration);

impl Backoff {
    pub(super) fn new() -> Self {
        Backoff(Duration::from_millis(500))
    }
    pub(super) async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(10));
    }
}

/// Report the end, again with a backoff until the API answers (a runner that lost the API
/// reports when it is back).
pub(super) async fn report_exit(
    api: &Api,
    base: &str,
    lease: &str,
    exit_code: Option<i64>,
    error: Option<String>,
    stopping: &watch::Receiver<bool>,
) {
    let body = json!({ "lease": lease, "exit_code": exit_code, "error": error });
    let mut backoff = Backoff::new();
    let mut tries = 0;
    loop {
        tries += 1;
        match api
            .post::<Json>(&format!("{base}/exit"), &body, Duration::from_secs(10))
            .await
        {
            Sent::Ok(answer) => {
                tracing::info!(
                    exit_code,
                    error = error.as_deref().unwrap_or(""),
                    status = %answer["run"]["status"],
                    "exit reported"
                );
                return;
            }
            Sent::Gone(why) => {
                tracing::warn!(%why, "exit refused: the run is no longer this runner's");
                return;
            }
            Sent::Retry(why) if *stopping.borrow() && tries >= STOPPING_TRIES => {
                tracing::warn!(%why, "cannot report the exit; the runner is stopping");
                return;
            }
            Sent::Retry(why) => {
                tracing::warn!(%why, "cannot report the exit; trying again");
                backoff.wait().await;
            }
        }
    }
}
