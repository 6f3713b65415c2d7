//! One task per WebSocket client.
//!
//! The task owns its socket and its cursor (`pos`: the last event cursor it has sent, or the
//! snapshot's). It is the only writer to its socket, so messages go out in the order it
//! decides: snapshot (or replay), then events in cursor order, with heartbeats and at most
//! one error per upstream outage in between.
//!
//! It reads events from the shared ring (see `hub`), never from a channel of its own: a
//! client that stops reading holds no events and costs the others nothing. It notices
//! new events through its `watch::Receiver<Status>`, which the poller updates after
//! writing the ring, so a wake-up always finds the events that caused it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::hub::{Hub, Read, Status, UpstreamState};
use crate::upstream::{Event, UpstreamError};

/// Events taken from the ring per socket write (one flush per batch).
const BATCH: usize = 256;
const HEARTBEAT: &str = r#"{"type":"heartbeat"}"#;
/// Failed reads in a row of a client's own (while the poller sees the upstream fine)
/// before the client is told the upstream is unavailable.
const LOCAL_FAILURES_REPORTED: u32 = 3;

/// Why a client's task ends.
enum Stop {
    /// The client closed the socket, or it broke.
    Gone(&'static str),
    /// The sidecar is shutting down.
    Shutdown,
    /// The client does not keep up: dropped.
    TooSlow(&'static str),
}

struct Client<S> {
    hub: Arc<Hub>,
    sink: SplitSink<WebSocketStream<S>, Message>,
    stream: SplitStream<WebSocketStream<S>>,
    status: watch::Receiver<Status>,
    stop: watch::Receiver<bool>,
    /// When the last message went out: heartbeats fill silences of `hub.heartbeat`.
    last_sent: Instant,
    /// The upstream outage (by number) this client has been told about and has not yet
    /// seen the end of. The rule is "one error message per outage": the poller numbers
    /// outages, and this is how a client knows it already reported the current one.
    reported: Option<u64>,
}

/// Serves one upgraded WebSocket until the client leaves, falls too far behind, or the
/// sidecar stops. Logs the connect and the disconnect with the client count.
pub(crate) async fn run<S>(
    hub: Arc<Hub>,
    ws: WebSocketStream<S>,
    peer: SocketAddr,
    after: Option<u64>,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (id, clients) = hub.client_joined();
    tracing::info!(client = id, %peer, ?after, clients, "client connected");
    let (sink, stream) = ws.split();
    let mut client = Client {
        status: hub.subscribe(),
        hub: hub.clone(),
        sink,
        stream,
        stop,
        last_sent: Instant::now(),
        reported: None,
    };
    let reason = match client.drive(after).await {
        Ok(never) => match never {},
        Err(stop) => stop,
    };
    let why = match reason {
        Stop::Gone(why) => {
            // Deliver tungstenite's queued reply to a client's close frame, if any.
            let _ = tokio::time::timeout(Duration::from_secs(1), client.sink.flush()).await;
            why
        }
        Stop::Shutdown => {
            let close = Message::Close(Some(CloseFrame {
                code: CloseCode::Away,
                reason: "sidecar shutting down".into(),
            }));
            let _ = tokio::time::timeout(Duration::from_secs(1), client.sink.send(close)).await;
            "sidecar shutting down"
        }
        // Its socket is not being read, so nothing more can be written to it: just close it.
        Stop::TooSlow(why) => why,
    };
    drop(client);
    let clients = hub.client_left();
    tracing::info!(client = id, reason = why, clients, "client disconnected");
}

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Sends the snapshot (or starts from `after`), then every event after the cursor,
    /// forever. Returns only by `Err(Stop)`.
    async fn drive(&mut self, after: Option<u64>) -> Result<std::convert::Infallible, Stop> {
        let mut pos = match after {
            Some(after) => after,
            None => {
                let hub = self.hub.clone();
                let snapshot = self.fetch(|| hub.snapshot()).await?;
                self.write(vec![Message::Text(snapshot.text.clone())])
                    .await?;
                snapshot.cursor
            }
        };
        // Live: has caught up with the ring's head once. From then on, falling out of the
        // ring means "too slow"; before, it means "catch up from upstream".
        let mut live = false;
        loop {
            // Mark the status seen *before* reading the ring: whatever the poller publishes
            // after this line wakes the `idle` below, so no event can slip by unnoticed.
            let status = self.status.borrow_and_update().clone();
            self.report_outage(&status).await?;
            match self.hub.read_after(pos, BATCH) {
                Read::Events(events) => {
                    pos = events.last().map_or(pos, |e| e.cursor);
                    self.write(messages(&events)).await?;
                }
                Read::UpToDate => {
                    live = true;
                    self.idle(None).await?;
                }
                Read::NotStarted => self.idle(None).await?,
                Read::Behind { .. } if live => {
                    return Err(Stop::TooSlow("fell behind the replay buffer"));
                }
                Read::Behind { base } => {
                    // The ring no longer (or not yet) holds what follows `pos`: one plain
                    // read of the upstream feed, then look at the ring again.
                    let upstream = self.hub.upstream.clone();
                    let batch = self.fetch(|| upstream.events(pos, 0)).await?;
                    match batch.events.last() {
                        Some(last) => {
                            pos = last.cursor;
                            self.write(messages(&batch.events)).await?;
                        }
                        // Upstream has nothing after `pos` (those events are gone with
                        // their agents): the ring covers the rest.
                        None => pos = pos.max(base),
                    }
                }
            }
        }
    }

    /// Tells the client, once per upstream outage, that the upstream is unavailable.
    async fn report_outage(&mut self, status: &Status) -> Result<(), Stop> {
        match &status.upstream {
            UpstreamState::Unavailable { outage, message } => {
                if self.reported.is_none_or(|r| r < *outage) {
                    self.reported = Some(*outage);
                    self.write(vec![error_message(message)]).await?;
                }
            }
            UpstreamState::Connected => self.reported = None,
            UpstreamState::Connecting => {}
        }
        Ok(())
    }

    /// Runs an upstream read for this client (snapshot or catch-up) until it succeeds,
    /// with the configured backoff; the socket stays open and heartbeats go on meanwhile.
    /// A failure during a poller outage is reported as that outage (once). If the poller
    /// sees no outage but this client's reads keep failing, the client is told once too,
    /// as the outage the poller would number next, so the poller's report of the same
    /// trouble does not repeat it.
    async fn fetch<T, F, Fut>(&mut self, mut request: F) -> Result<T, Stop>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, UpstreamError>>,
    {
        let mut backoff = self.hub.backoff_min;
        let mut failures = 0u32;
        loop {
            let result = tokio::select! {
                result = request() => result,
                _ = crate::hub::stopped(&mut self.stop) => return Err(Stop::Shutdown),
            };
            let error = match result {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            failures += 1;
            tracing::debug!(%error, failures, "upstream read for a client failed");
            let status = self.status.borrow().clone();
            if matches!(status.upstream, UpstreamState::Unavailable { .. }) {
                self.report_outage(&status).await?;
            } else if failures >= LOCAL_FAILURES_REPORTED && self.reported.is_none() {
                self.reported = Some(status.outages + 1);
                self.write(vec![error_message(&error.0)]).await?;
            }
            self.idle(Some(Instant::now() + backoff)).await?;
            backoff = (backoff * 2).min(self.hub.backoff_max);
        }
    }

    /// Waits until the status changes (`until` = None) or until `until`, sending
    /// heartbeats in silences and watching the socket for a close.
    async fn idle(&mut self, until: Option<Instant>) -> Result<(), Stop> {
        loop {
            let heartbeat_at = self.last_sent + self.hub.heartbeat;
            tokio::select! {
                biased;
                _ = crate::hub::stopped(&mut self.stop) => return Err(Stop::Shutdown),
                incoming = self.stream.next() => on_incoming(incoming)?,
                changed = self.status.changed(), if until.is_none() => {
                    // The sender lives in the hub, which this task keeps alive.
                    debug_assert!(changed.is_ok());
                    return Ok(());
                }
                _ = tokio::time::sleep_until(until.unwrap_or(heartbeat_at)), if until.is_some() => {
                    return Ok(());
                }
                _ = tokio::time::sleep_until(heartbeat_at) => {
                    self.write(vec![Message::Text(HEARTBEAT.to_string()), Message::Ping(Vec::new())])
                        .await?;
                }
            }
        }
    }

    /// Writes and flushes `messages`. While the socket does not take them, keeps counting
    /// the events that arrive: past `client_buffer`, the client is dropped. The wait is
    /// also cut short by shutdown.
    async fn write(&mut self, messages: Vec<Message>) -> Result<(), Stop> {
        let started_at = self.status.borrow().pushed;
        let limit = self.hub.client_buffer as u64;
        let sink = &mut self.sink;
        let status = &mut self.status;
        let stop = &mut self.stop;
        let send = async move {
            for message in messages {
                sink.feed(message).await?;
            }
            sink.flush().await
        };
        let mut send = std::pin::pin!(send);
        loop {
            tokio::select! {
                result = &mut send => {
                    result.map_err(|e: WsError| match e {
                        WsError::ConnectionClosed | WsError::AlreadyClosed => Stop::Gone("closed by the client"),
                        _ => Stop::Gone("socket error"),
                    })?;
                    break;
                }
                changed = status.changed() => {
                    debug_assert!(changed.is_ok());
                    if status.borrow().pushed.saturating_sub(started_at) > limit {
                        return Err(Stop::TooSlow("not reading: client buffer full"));
                    }
                }
                _ = crate::hub::stopped(stop) => return Err(Stop::Shutdown),
            }
        }
        self.last_sent = Instant::now();
        Ok(())
    }
}

fn on_incoming(incoming: Option<Result<Message, WsError>>) -> Result<(), Stop> {
    match incoming {
        // Pings are answered by tungstenite; text, binary and pongs are ignored.
        Some(Ok(Message::Close(_))) => Err(Stop::Gone("closed by the client")),
        Some(Ok(_)) => Ok(()),
        Some(Err(_)) | None => Err(Stop::Gone("connection lost")),
    }
}

fn messages(events: &[Arc<Event>]) -> Vec<Message> {
    events
        .iter()
        .map(|e| Message::Text(e.text.to_string()))
        .collect()
}

fn error_message(message: &str) -> Message {
    Message::Text(
        serde_json::json!({
            "type": "error",
            "code": "upstream_unavailable",
            "message": message,
        })
        .to_string(),
    )
}
