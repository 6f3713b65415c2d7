//! The orchestrator's native WebSocket bridge.
//!
//! A Spin component lives for one request, so it cannot hold a WebSocket open. The sidecar
//! does: it follows the API's live feed (`GET /api/events` long-poll and
//! `GET /api/events/snapshot`) of any base URL and serves it as `ws://LISTEN/ws/agent-status`
//! to many clients. It knows only the feed's JSON: no database, no Spin.
//!
//! # Shape
//!
//! ```text
//!                 one long-poll at a time                     N client tasks
//!  upstream API ◀──────────────────────── poller ──push──▶ ring (RwLock) ◀──read── client 1 ──▶ socket
//!                                            │                                  ◀──read── client 2 ──▶ socket
//!                                            └──send──▶ status (watch) ──wake──▶ every client
//! ```
//!
//! * **One poller task** ([`hub::run_poller`]) owns the upstream cursor. It is the only
//!   writer of the ring buffer and of the `status` watch channel, and it never waits on a
//!   client: fan-out costs it one `watch` update per batch, whatever the number of clients.
//! * **The ring** (the last [`SidecarConfig::replay_buffer`] events, behind a
//!   `std::sync::RwLock` that is never held across an `.await`) is the only copy of the
//!   events. Each event's outgoing JSON text is built once and shared (`Arc<str>`).
//! * **One task per client** keeps its own cursor and *pulls* the events after it from the
//!   ring, in cursor order, when the watch says something changed. Joining the live stream
//!   is therefore just "start reading the ring after cursor N": there is no hand-over
//!   between a replay and a live channel, so nothing can be lost or sent twice. A client
//!   whose cursor is older than the ring catches up with plain reads of the upstream feed
//!   (`after=N&limit=1000`) until the ring covers it.
//! * **Slow clients** cost nothing but their own socket: the ring is shared, so a client
//!   that stops reading only falls behind. It is dropped when a socket write stays blocked
//!   while more than [`SidecarConfig::client_buffer`] new events arrive, or when the ring
//!   no longer holds the events it still has to send. Neither the poller nor the other
//!   clients ever wait for it.
//!
//! Why pull from a ring rather than push into per-client channels or a `tokio::broadcast`:
//! a broadcast channel cannot replay history to a client that joins late (`?after=N`), and
//! per-client channels need the poller to do per-client work for every event and a
//! separate hand-over from "replay" to "live". With the ring, replay and live are the same
//! code path, and the poller's cost is independent of the number of clients.

#![warn(missing_docs)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch};

mod client;
mod http;
mod hub;
mod upstream;

use hub::Hub;

/// Everything the sidecar needs to run. Build it with [`SidecarConfig::new`] (which fills
/// in the documented defaults) and adjust the public fields.
#[derive(Clone, Debug)]
pub struct SidecarConfig {
    /// Base URL of the API to follow, e.g. `http://127.0.0.1:8000` (plain HTTP; a trailing
    /// slash is ignored). The sidecar calls `{upstream}/api/events` and
    /// `{upstream}/api/events/snapshot`.
    pub upstream: String,
    /// Address to listen on. Port 0 picks a free port; see [`Sidecar::local_addr`].
    pub listen: SocketAddr,
    /// Bearer token. When set, every WebSocket handshake must carry
    /// `Authorization: Bearer TOKEN` or `?token=TOKEN` (else 401), and every upstream
    /// request carries the same header. Must not be empty.
    pub token: Option<String>,
    /// Browser origins allowed to open a WebSocket (exact match, ASCII case-insensitive,
    /// e.g. `http://localhost:5173`; `*` allows any). A handshake with another `Origin`
    /// gets 403; a handshake without `Origin` (a non-browser client) is always allowed.
    /// Default: `http://localhost:5173` and `http://127.0.0.1:5173`.
    pub allowed_origins: Vec<String>,
    /// Silence after which a client gets `{"type":"heartbeat"}` and a WebSocket ping.
    /// Default 30 s.
    pub heartbeat: Duration,
    /// The upstream long-poll's `wait`, sent in whole seconds (sub-second values round up).
    /// Must be 1..=30 s. Default 25 s. Keep it under the API's request deadline
    /// ([`SidecarConfig::poll_wait_within`]); if the API still ends a poll with a 504
    /// before its wait is over, the sidecar takes that as an empty answer and waits less
    /// from then on (a second under the time the 504 took), never as an outage.
    pub poll_wait: Duration,
    /// How many new events may arrive while a write to a client's socket is blocked before
    /// that client is dropped. Default 1024.
    pub client_buffer: usize,
    /// Events kept in memory for replay (`?after=N`) and for clients that fall behind.
    /// A live client further behind than this is dropped. Default 10,000.
    pub replay_buffer: usize,
    /// First delay before retrying an unreachable upstream; doubles on each failure.
    /// Default 100 ms.
    pub backoff_min: Duration,
    /// Longest delay between upstream retries. Default 5 s.
    pub backoff_max: Duration,
}

impl SidecarConfig {
    /// A configuration with the defaults documented on each field: no token, the web UI's
    /// default origins, 30 s heartbeat, 25 s long-poll wait, a 1024-event client buffer, a
    /// 10,000-event replay buffer and a 100 ms .. 5 s backoff.
    pub fn new(upstream: impl Into<String>, listen: SocketAddr) -> Self {
        SidecarConfig {
            upstream: upstream.into(),
            listen,
            token: None,
            allowed_origins: vec![
                "http://localhost:5173".to_string(),
                "http://127.0.0.1:5173".to_string(),
            ],
            heartbeat: Duration::from_secs(30),
            poll_wait: Duration::from_secs(25),
            client_buffer: 1024,
            replay_buffer: 10_000,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }

    /// The default wait (25 s), or a whole second under `deadline` (the API's request
    /// deadline) when that is shorter, at least 1 s: a long-poll then ends by its own
    /// wait, with an empty answer, before the API's deadline can end it with a 504.
    pub fn poll_wait_within(deadline: Duration) -> Duration {
        let under = deadline.as_secs().saturating_sub(1).clamp(1, 25);
        Duration::from_secs(under)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.token.as_deref() == Some("") {
            bail!("the sidecar's token must not be empty (leave it unset for open access)");
        }
        if self.heartbeat.is_zero() {
            bail!("heartbeat must be longer than zero");
        }
        if self.poll_wait.is_zero() || self.poll_wait > Duration::from_secs(30) {
            bail!(
                "poll_wait must be between 1 and 30 seconds, not {:?}",
                self.poll_wait
            );
        }
        if self.client_buffer == 0 || self.replay_buffer == 0 {
            bail!("client_buffer and replay_buffer must be at least 1");
        }
        if self.backoff_min.is_zero() || self.backoff_max < self.backoff_min {
            bail!("backoff_min must be above zero and backoff_max at least backoff_min");
        }
        Ok(())
    }
}

/// A bound, not yet serving sidecar. [`Sidecar::start`] binds; [`Sidecar::serve`] runs.
pub struct Sidecar {
    listener: TcpListener,
    local_addr: SocketAddr,
    hub: Arc<Hub>,
}

impl Sidecar {
    /// Validates the configuration, raises the open-file limit (see
    /// [`raise_open_file_limit`]; a failure is logged, not fatal) and binds the listening
    /// socket. Nothing is served and the upstream is not contacted until [`Sidecar::serve`].
    ///
    /// Errors: an invalid configuration or upstream URL, or an address that cannot be bound
    /// (the message names the address, e.g. "cannot listen on 127.0.0.1:8001: Address in use").
    pub async fn start(config: SidecarConfig) -> anyhow::Result<Sidecar> {
        config.validate()?;
        match raise_open_file_limit() {
            Ok(limit) => tracing::info!(limit, "open file limit (soft) raised to the hard limit"),
            Err(error) => tracing::warn!(%error, "could not raise the open file limit"),
        }
        let upstream = upstream::Upstream::new(&config)?;
        let listener = listen(config.listen).map_err(|e| {
            anyhow::anyhow!("cannot listen on {}: {}", config.listen, io_message(&e))
        })?;
        let local_addr = listener
            .local_addr()
            .with_context(|| format!("cannot read the address bound for {}", config.listen))?;
        let hub = Arc::new(Hub::new(config, upstream));
        Ok(Sidecar {
            listener,
            local_addr,
            hub,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Runs the upstream follower and serves `/ws/agent-status` and `/health` until
    /// `shutdown` completes. Then it stops accepting, stops the upstream long-poll, sends
    /// every WebSocket client a close frame (1001, going away), lets in-flight HTTP requests
    /// finish, and returns, waiting at most about 5 s for connections to wind down.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Sidecar {
            listener,
            local_addr,
            hub,
        } = self;
        tracing::info!(addr = %local_addr, upstream = %hub.upstream.base(), "sidecar listening");

        // `stop` tells every task to wind down; every connection task holds a clone of
        // `alive`, so `alive_rx.recv()` yields `None` once they have all finished.
        let (stop_tx, stop_rx) = watch::channel(false);
        let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
        let poller = tokio::spawn(hub::run_poller(hub.clone(), stop_rx.clone()));

        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(http::serve_connection(
                            stream,
                            peer,
                            hub.clone(),
                            stop_rx.clone(),
                            alive_tx.clone(),
                        ));
                    }
                    Err(error) => {
                        // Usually EMFILE: back off briefly instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }

        tracing::info!("sidecar shutting down");
        stop_tx.send_replace(true);
        drop(listener);
        drop(alive_tx);
        if tokio::time::timeout(Duration::from_secs(5), alive_rx.recv())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within 5 s; leaving them");
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), poller).await;
        tracing::info!("sidecar stopped");
        Ok(())
    }
}

/// Pending connections the listening socket queues before the sidecar accepts them. The
/// usual default (128, std's and tokio's) overflows when a thousand clients reconnect at
/// once, e.g. after a restart: the kernel drops the excess and those clients wait for a
/// SYN retransmission (1 s, then 3 s, ...). The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` (with `SO_REUSEADDR`, as `TcpListener::bind` does) and listens with
/// [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(not(windows))]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Raises this process's `RLIMIT_NOFILE` soft limit to its hard limit, so that about a
/// thousand sockets fit even where the soft default is 1024. Returns the soft limit now in
/// force (on a platform without `RLIMIT_NOFILE` it changes nothing and returns
/// `u64::MAX`). Errors only if the system calls fail.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// `std::io::Error`'s Display adds "(os error 98)"; keep the words only.
fn io_message(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}
