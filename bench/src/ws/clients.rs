//! The reading clients of `bench-ws`: each a WebSocket on the feed that records every
//! `agent_update` it gets and when, so the run can check that every client got every
//! update, in order, once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    cursor: Option<u64>,
}

/// What one reading client saw.
pub struct ClientLog {
    /// `agent_update` cursors and their arrival, in arrival order.
    pub updates: Vec<(u64, Instant)>,
    /// Connection still open when the benchmark stopped reading.
    pub held: bool,
    pub error: Option<String>,
}

/// One reading client: connects, reports when its first message (the snapshot) is in,
/// then records every `agent_update` until `stop`.
pub async fn reading_client(
    url: String,
    permits: Arc<Semaphore>,
    connected: mpsc::UnboundedSender<Result<(), String>>,
    last_cursor: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> ClientLog {
    let mut log = ClientLog {
        updates: Vec::with_capacity(256),
        held: false,
        error: None,
    };
    let ws = {
        let _permit = permits.acquire().await.expect("semaphore never closed");
        let attempt = async {
            let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .map_err(|e| format!("connect: {e}"))?;
            match ws.next().await {
                Some(Ok(Message::Text(text))) if text.contains(r#""type":"snapshot""#) => Ok(ws),
                Some(Ok(other)) => Err(format!("first message is not a snapshot: {other:?}")),
                Some(Err(e)) => Err(format!("read: {e}")),
                None => Err("closed before the snapshot".to_string()),
            }
        };
        match tokio::time::timeout(Duration::from_secs(30), attempt).await {
            Ok(Ok(ws)) => ws,
            failed => {
                let error = match failed {
                    Ok(Err(error)) => error,
                    _ => "no snapshot within 30 s".to_string(),
                };
                let _ = connected.send(Err(error.clone()));
                log.error = Some(error);
                return log;
            }
        }
    };
    let _ = connected.send(Ok(()));
    let (_sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => {
                log.held = true;
                return log;
            }
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let at = Instant::now();
                    if let Ok(head) = serde_json::from_str::<Head>(&text) {
                        if head.kind == "agent_update" {
                            if let Some(cursor) = head.cursor {
                                log.updates.push((cursor, at));
                                last_cursor.store(cursor, Ordering::Release);
                            }
                        }
                    }
                }
                Some(Ok(_)) => {} // pings (answered by tungstenite), pongs
                Some(Err(e)) => {
                    log.error = Some(format!("read: {e}"));
                    return log;
                }
                None => {
                    log.error = Some("closed by the sidecar".into());
                    return log;
                }
            }
        }
    }
}
