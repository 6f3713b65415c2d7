//! A process's output on its way to the API: read line by line from its pipes, kept
//! (bounded) while the API cannot take it, and sent in batches, each answer telling
//! whether the run was cancelled or is no longer this runner's.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{json, Value as Json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::{mpsc, watch, Mutex};

use super::api::{Api, Sent};

/// The longest line the runner reads in one piece (the API cuts further).
pub(super) const READ_LINE_BYTES: u64 = 64 * 1024;
/// Lines kept while the API cannot take them; older ones are dropped (the API is told by
/// the next batch's `from`, and says so in the run's output).
pub(super) const BUFFERED_LINES: usize = 10_000;
/// Lines per output request.
pub(super) const BATCH_LINES: usize = 500;
/// How often output is sent.
pub(super) const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// What output answers told the run's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Told {
    Nothing,
    Cancelled,
    Gone,
}

/// Output waiting to be sent. Lines are numbered in the order they were read; `first`
/// is the number of the oldest one kept, which is the `from` of the next batch (the API
/// skips what it has and says what was lost in between).
#[derive(Default)]
pub(super) struct Pending {
    pub(super) lines: VecDeque<Json>,
    pub(super) first: u64,
}

/// Read `pipe` line by line (a line over [`READ_LINE_BYTES`] comes in pieces), as
/// `{"stream", "text"}`; invalid UTF-8 is replaced.
pub(super) async fn read_lines(
    pipe: impl AsyncRead + Unpin,
    stream: &'static str,
    tx: mpsc::Sender<Json>,
) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader)
            .take(READ_LINE_BYTES)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while matches!(buf.last(), Some(b'\n' | b'\r')) {
                    buf.pop();
                }
                let text = String::from_utf8_lossy(&buf).into_owned();
                if tx
                    .send(json!({ "stream": stream, "text": text }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Send one batch of pending output; true when it was taken (or there was nothing).
pub(super) async fn flush(
    api: &Api,
    base: &str,
    lease: &str,
    pending: &Mutex<Pending>,
    gone: &watch::Sender<Told>,
) -> bool {
    let (batch, from) = {
        let p = pending.lock().await;
        let batch: Vec<Json> = p.lines.iter().take(BATCH_LINES).cloned().collect();
        (batch, p.first)
    };
    if batch.is_empty() {
        return true;
    }
    let body = json!({ "lease": lease, "lines": batch, "from": from });
    match api
        .post::<Json>(&format!("{base}/output"), &body, Duration::from_secs(10))
        .await
    {
        Sent::Ok(answer) => {
            // The API has every line before from + len: drop those still kept.
            let upto = from + batch.len() as u64;
            let mut p = pending.lock().await;
            while p.first < upto && p.lines.pop_front().is_some() {
                p.first += 1;
            }
            if answer["cancelled"] == json!(true) {
                gone.send_if_modified(|told| {
                    let first = *told == Told::Nothing;
                    if first {
                        tracing::info!("the run was cancelled");
                        *told = Told::Cancelled;
                    }
                    first
                });
            }
            true
        }
        Sent::Gone(why) => {
            tracing::warn!(%why, "output refused: the run is no longer this runner's");
            let _ = gone.send(Told::Gone);
            false
        }
        Sent::Retry(why) => {
            tracing::warn!(%why, "cannot send output; keeping it");
            false
        }
    }
}
