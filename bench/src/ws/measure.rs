//! The measuring side of `bench-ws`: one client on a thread and runtime of its own (so
//! the readers' wake-ups don't delay its timestamps) that PATCHes a run and times the
//! matching `agent_update`.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// Non-final statuses the run moves between.
const STATUSES: [&str; 3] = ["planning", "executing", "reviewing"];

pub struct Measurement {
    /// Cursor of the run's creation event.
    pub created_cursor: u64,
    pub samples: Vec<UpdateSample>,
}

pub struct UpdateSample {
    pub cursor: u64,
    /// When the PATCH response was in.
    pub t0: Instant,
    pub latency_ms: f64,
    pub patch_rtt_ms: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn signed_ms(at: Instant, from: Instant) -> f64 {
    if at >= from {
        ms(at - from)
    } else {
        -ms(from - at)
    }
}

/// Connects the measuring client, says so on `connected`, waits for `go`, then creates the
/// run and measures the updates.
pub async fn measure(
    api: String,
    ws_url: String,
    args: MeasureArgs,
    connected: oneshot::Sender<()>,
    go: oneshot::Receiver<()>,
) -> Result<Measurement> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let (ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .context("measuring client: cannot connect")?;
    let (_sink, mut stream) = ws.split();
    // Every message timestamped on arrival.
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, String)>();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Text(text) = message {
                if tx.send((Instant::now(), text)).is_err() {
                    break;
                }
            }
        }
    });
    let first = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .context("measuring client: no snapshot within 30 s")?
        .context("measuring client: closed before the snapshot")?;
    if !first.1.contains(r#""type":"snapshot""#) {
        bail!(
            "measuring client: first message is not a snapshot: {}",
            first.1
        );
    }
    let _ = connected.send(());
    go.await.context("the benchmark gave up")?;

    let name = format!("bench-ws-{}", fastrand::u64(..));
    let definition: Value = http
        .post(format!("{api}/api/agents"))
        .json(&json!({"name": name, "agent_type": "utility"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let definition_id = definition["id"].as_str().context("definition without id")?;
    let run: Value = http
        .post(format!("{api}/api/runtime/agents"))
        .json(&json!({"orchestrator_agent_id": definition_id, "session_id": "bench-ws"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let run_id = run["id"].as_str().context("run without id")?.to_string();
    let mut current = run["status"].as_str().unwrap_or("initializing").to_string();
    let timeout = Duration::from_secs(args.update_timeout_secs);
    let created_cursor = wait_for(&mut rx, &run_id, &current, Instant::now() + timeout)
        .await
        .context("the run's creation event did not arrive")?
        .1;

    let mut rng = fastrand::Rng::with_seed(args.seed);
    let mut samples = Vec::with_capacity(args.updates);
    for i in 0..args.updates {
        let jitter = Duration::from_micros(rng.u64(..=args.jitter_ms * 1000));
        tokio::time::sleep(jitter).await;
        let choices: Vec<&str> = STATUSES.iter().copied().filter(|s| *s != current).collect();
        let target = choices[rng.usize(..choices.len())];
        let sent = Instant::now();
        let response = http
            .patch(format!("{api}/api/runtime/agents/{run_id}"))
            .json(&json!({"status": target}))
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        let t0 = Instant::now();
        if !status.is_success() {
            bail!(
                "PATCH {i} -> {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        current = target.to_string();
        let (at, cursor) = wait_for(&mut rx, &run_id, target, t0 + timeout)
            .await
            .with_context(|| format!("update {i} ({target})"))?;
        samples.push(UpdateSample {
            cursor,
            t0,
            latency_ms: signed_ms(at, t0),
            patch_rtt_ms: ms(t0 - sent),
        });
    }
    reader.abort();
    Ok(Measurement {
        created_cursor,
        samples,
    })
}

#[derive(Clone, Copy)]
pub struct MeasureArgs {
    pub updates: usize,
    pub jitter_ms: u64,
    pub update_timeout_secs: u64,
    pub seed: u64,
}

/// The arrival time and cursor of the next `agent_update` of `id` with `status`.
async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<(Instant, String)>,
    id: &str,
    status: &str,
    deadline: Instant,
) -> Result<(Instant, u64)> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (at, text) = tokio::time::timeout(left, rx.recv())
            .await
            .map_err(|_| anyhow!("no agent_update with status {status} in time"))?
            .context("the measuring client's socket closed")?;
        let message: Value = serde_json::from_str(&text)?;
        if message["type"] == "agent_update"
            && message["data"]["id"] == id
            && message["data"]["status"] == status
        {
            let cursor = message["cursor"]
                .as_u64()
                .context("update without cursor")?;
            return Ok((at, cursor));
        }
    }
}
