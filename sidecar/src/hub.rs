//! The shared state: the ring buffer of recent events, the feed status, and the one task
//! that follows the upstream feed.
//!
//! Who holds what:
//! * `ring` (`RwLock<Ring>`): written only by the poller, read by client tasks and
//!   `/health`. Every critical section is a few pointer copies; the lock is never held
//!   across an `.await`, so a std lock is right here.
//! * `status` (`watch::Sender<Status>`): written only by the poller, *after* the ring has
//!   been updated, so a client woken by it always finds the new events in the ring. Each
//!   client task holds a `Receiver`.
//! * `snapshot_flight`: the one in-flight snapshot request that concurrently connecting
//!   clients share (single flight), so a thousand clients connecting at once cost one
//!   upstream snapshot read, not a thousand.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::watch;

use crate::upstream::{Event, FeedConnection, PollError, Snapshot, Upstream, UpstreamError};
use crate::SidecarConfig;

/// The upstream as the poller last saw it.
#[derive(Clone, Debug)]
pub(crate) enum UpstreamState {
    /// No answer yet (just started).
    Connecting,
    /// The last request succeeded.
    Connected,
    /// Requests are failing. `outage` numbers outages from 1, so a client can tell "the
    /// outage I already reported" from a new one.
    Unavailable { outage: u64, message: Arc<str> },
}

/// What the poller publishes through the watch channel.
#[derive(Clone, Debug)]
pub(crate) struct Status {
    /// Events ever pushed into the ring (a clock for "how many arrived meanwhile").
    pub pushed: u64,
    pub upstream: UpstreamState,
    /// Outages so far; the next one will be number `outages + 1`.
    pub outages: u64,
}

/// The last `capacity` events, in cursor order.
struct Ring {
    /// False until the poller has its starting cursor; until then nobody can tell whether
    /// the ring will cover a given cursor.
    started: bool,
    events: VecDeque<Arc<Event>>,
    capacity: usize,
    /// The ring holds every upstream event with a cursor greater than `base` (and not
    /// greater than `head`). It moves up as old events are evicted.
    base: u64,
    /// The newest cursor the poller has seen.
    head: u64,
    pushed: u64,
}

/// What a client finds in the ring after its cursor.
pub(crate) enum Read {
    /// The poller has not started yet: wait for the status to change.
    NotStarted,
    /// Events after the cursor have been evicted (or never were in the ring): the ring
    /// covers only cursors greater than `base`.
    Behind { base: u64 },
    /// Nothing after the cursor yet.
    UpToDate,
    /// The next events after the cursor, in order (at most the requested number).
    Events(Vec<Arc<Event>>),
}

type SnapshotFlight = Shared<BoxFuture<'static, Result<Arc<Snapshot>, UpstreamError>>>;

pub(crate) struct Hub {
    pub upstream: Arc<Upstream>,
    pub heartbeat: Duration,
    pub client_buffer: usize,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Token and origins, for the handshake.
    pub token: Option<String>,
    pub allowed_origins: Vec<String>,
    ring: RwLock<Ring>,
    status: watch::Sender<Status>,
    snapshot_flight: Mutex<Option<SnapshotFlight>>,
    clients: AtomicUsize,
    next_client_id: AtomicU64,
    /// The long-poll `wait` in use (seconds): the configured one until the API's
    /// deadline teaches a shorter one. For `/health`.
    poll_wait_secs: AtomicU64,
}

impl Hub {
    pub fn new(config: SidecarConfig, upstream: Upstream) -> Hub {
        let (status, _) = watch::channel(Status {
            pushed: 0,
            upstream: UpstreamState::Connecting,
            outages: 0,
        });
        let poll_wait_secs = AtomicU64::new(upstream.wait_secs());
        // The API's own pages (the dashboard) may use the WebSocket too.
        let allowed_origins = config
            .allowed_origins
            .iter()
            .chain(upstream.origins())
            .map(|o| normalize_origin(o))
            .collect();
        Hub {
            upstream: Arc::new(upstream),
            heartbeat: config.heartbeat,
            client_buffer: config.client_buffer,
            backoff_min: config.backoff_min,
            backoff_max: config.backoff_max,
            token: config.token,
            allowed_origins,
            ring: RwLock::new(Ring {
                started: false,
                events: VecDeque::with_capacity(config.replay_buffer.min(16_384)),
                capacity: config.replay_buffer,
                base: 0,
                head: 0,
                pushed: 0,
            }),
            status,
            snapshot_flight: Mutex::new(None),
            clients: AtomicUsize::new(0),
            next_client_id: AtomicU64::new(1),
            poll_wait_secs,
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// The newest cursor the sidecar has seen.
    pub fn head(&self) -> u64 {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).head
    }

    /// Up to `max` events with a cursor greater than `after`, in order.
    pub fn read_after(&self, after: u64, max: usize) -> Read {
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        if !ring.started {
            return Read::NotStarted;
        }
        if after < ring.base {
            return Read::Behind { base: ring.base };
        }
        let start = ring.events.partition_point(|e| e.cursor <= after);
        if start == ring.events.len() {
            return Read::UpToDate;
        }
        let end = ring.events.len().min(start + max);
        Read::Events(ring.events.range(start..end).cloned().collect())
    }

    /// A snapshot from upstream. Concurrent callers share one request; a caller never gets
    /// a snapshot whose request finished before it asked.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, UpstreamError> {
        let flight = {
            let mut slot = self
                .snapshot_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match slot.as_ref() {
                // Join a request still in flight; a finished one is never reused.
                Some(flight) if flight.peek().is_none() => flight.clone(),
                _ => {
                    let upstream = self.upstream.clone();
                    let flight = async move { upstream.snapshot().await.map(Arc::new) }
                        .boxed()
                        .shared();
                    *slot = Some(flight.clone());
                    flight
                }
            }
        };
        let result = flight.clone().await;
        let mut slot = self
            .snapshot_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|f| f.ptr_eq(&flight)) {
            *slot = None;
        }
        result
    }

    /// The long-poll `wait` in use, in seconds.
    pub fn poll_wait_secs(&self) -> u64 {
        self.poll_wait_secs.load(Ordering::Relaxed)
    }

    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// Counts a connected client and returns its id and the new count.
    pub fn client_joined(&self) -> (u64, usize) {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        (id, self.clients.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Uncounts a client and returns the new count.
    pub fn client_left(&self) -> usize {
        self.clients.fetch_sub(1, Ordering::Relaxed) - 1
    }

    /// Poller only: the feed starts after `cursor`.
    fn start_at(&self, cursor: u64) {
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        ring.started = true;
        ring.base = cursor;
        ring.head = cursor;
    }

    /// Poller only: appends new events to the ring (evicting the oldest) and returns the
    /// new `pushed` count if anything was added.
    fn push(&self, events: Vec<Arc<Event>>) -> Option<u64> {
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        let before = ring.pushed;
        for event in events {
            // The feed guarantees order; this also makes a repeated answer harmless.
            if event.cursor <= ring.head {
                continue;
            }
            if ring.events.len() == ring.capacity {
                if let Some(old) = ring.events.pop_front() {
                    ring.base = old.cursor;
                }
            }
            ring.head = event.cursor;
            ring.events.push_back(event);
            ring.pushed += 1;
        }
        (ring.pushed != before).then_some(ring.pushed)
    }
}

/// Origins compare ASCII case-insensitively and without a trailing slash.
pub(crate) fn normalize_origin(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// The one upstream follower. Starts from a snapshot's cursor (the feed's head), then
/// long-polls from the newest cursor it has seen, forever, one request at a time, until
/// `stop` turns true. On failure it marks the upstream unavailable (once per outage: that is
/// what makes each client report it once), backs off exponentially between
/// `backoff_min` and `backoff_max`, and resumes from the same cursor, so nothing is lost.
///
/// A long-poll that the API's own request deadline ends (a 504 before its wait is over)
/// is an empty answer: the wait shrinks under that deadline and the next poll goes at
/// once (see [`Wait`]). Only an unreachable API or another error is an outage.
pub(crate) async fn run_poller(hub: Arc<Hub>, mut stop: watch::Receiver<bool>) {
    let mut backoff = hub.backoff_min;
    let mut failures: u32 = 0;
    let mut outages: u64 = 0;
    let mut start: Option<u64> = None;
    let mut wait = Wait::new(hub.upstream.wait_secs());
    // One connection for the whole feed, whatever the number of clients.
    let mut conn = FeedConnection::default();
    loop {
        let request = async {
            match start {
                None => hub
                    .upstream
                    .snapshot_on(&mut conn)
                    .await
                    .map(|s| Ok(s.cursor))
                    .map_err(PollError::Failed),
                Some(after) => hub
                    .upstream
                    .events_on(&mut conn, after, wait.next_secs())
                    .await
                    .map(Err),
            }
        };
        let result = tokio::select! {
            result = request => result,
            _ = stopped(&mut stop) => return,
        };
        let result = match result {
            Err(PollError::Deadline { elapsed }) => {
                let pause = wait.ended_by_deadline(elapsed);
                hub.poll_wait_secs.store(wait.secs, Ordering::Relaxed);
                if !pause.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stopped(&mut stop) => return,
                    }
                }
                // The API answered: as good as an empty batch.
                Ok(Err(crate::upstream::Batch { events: Vec::new() }))
            }
            Err(PollError::Failed(error)) => Err(error),
            Ok(answer) => {
                wait.answered();
                Ok(answer)
            }
        };
        match result {
            Ok(answer) => {
                failures = 0;
                backoff = hub.backoff_min;
                match answer {
                    Ok(cursor) => {
                        hub.start_at(cursor);
                        start = Some(cursor);
                        // Wake clients waiting for the ring to start.
                        hub.status.send_modify(|_| {});
                        tracing::info!(cursor, "following the upstream feed");
                    }
                    Err(batch) => {
                        if let Some(last) = batch.events.last() {
                            start = Some(last.cursor);
                        }
                        if let Some(pushed) = hub.push(batch.events) {
                            hub.status.send_modify(|s| s.pushed = pushed);
                        }
                    }
                }
                let was = hub.status.borrow().upstream.clone();
                if !matches!(was, UpstreamState::Connected) {
                    if let UpstreamState::Unavailable { outage, .. } = was {
                        tracing::info!(outage, cursor = hub.head(), "upstream is back");
                    } else {
                        tracing::info!(cursor = hub.head(), "upstream connected");
                    }
                    hub.status
                        .send_modify(|s| s.upstream = UpstreamState::Connected);
                }
            }
            Err(error) => {
                failures += 1;
                let connected = matches!(hub.status.borrow().upstream, UpstreamState::Connected);
                // A pooled keep-alive connection that the server closed just as we reused
                // it fails once for no real reason: retry at once before calling it an
                // outage. Every other failure counts.
                if connected && failures == 1 {
                    tracing::debug!(%error, "upstream request failed; retrying at once");
                    continue;
                }
                if !matches!(
                    hub.status.borrow().upstream,
                    UpstreamState::Unavailable { .. }
                ) {
                    outages += 1;
                    tracing::warn!(%error, outage = outages, cursor = hub.head(), "upstream unavailable");
                    let message = error.0.clone();
                    hub.status.send_modify(|s| {
                        s.outages = outages;
                        s.upstream = UpstreamState::Unavailable {
                            outage: outages,
                            message,
                        }
                    });
                } else {
                    tracing::debug!(%error, ?backoff, "upstream still unavailable");
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped(&mut stop) => return,
                }
                backoff = (backoff * 2).min(hub.backoff_max);
            }
        }
    }
}

/// The long-poll's `wait`, learnt from the API's request deadline.
///
/// A deadline that ended a poll after `elapsed` is at least `elapsed`; the next wait is a
/// whole second under it (the API's wait has one-second steps, and the component needs
/// a moment after its wait to answer). At the smallest wait (1 s) a deadline-ended poll
/// is followed by one that does not wait at all (`wait=0`): if the API answers that, it
/// is alive and its deadline is just very short; if that fails too, it is an outage
/// (a 504 to a poll that was not asked to wait is never a deadline). The learnt wait
/// never grows back: the deadline of a running API does not change.
#[derive(Debug)]
pub(crate) struct Wait {
    /// The wait of a normal poll, seconds (1..=30).
    pub secs: u64,
    /// The next poll is the `wait=0` check.
    probe: bool,
}

impl Wait {
    /// Below this, a deadline-ended poll at the smallest wait is paced: the `wait=0` check
    /// goes no sooner than this after the poll was sent (at most about two requests a
    /// second against an API whose deadline is under a second).
    const MIN_CYCLE: Duration = Duration::from_secs(1);

    pub fn new(secs: u64) -> Wait {
        Wait {
            secs: secs.max(1),
            probe: false,
        }
    }

    /// The `wait` of the next poll.
    pub fn next_secs(&self) -> u64 {
        if self.probe {
            0
        } else {
            self.secs
        }
    }

    /// A poll answered normally.
    pub fn answered(&mut self) {
        self.probe = false;
    }

    /// A poll was ended by the API's deadline after `elapsed`: learn, and return how long
    /// to pause before the next poll (zero: go at once).
    pub fn ended_by_deadline(&mut self, elapsed: Duration) -> Duration {
        if self.secs > 1 {
            let under = elapsed.as_secs().saturating_sub(1).clamp(1, self.secs - 1);
            tracing::info!(
                elapsed_ms = elapsed.as_millis() as u64,
                was = self.secs,
                now = under,
                "the API's request deadline ended a long-poll; waiting less from now on"
            );
            self.secs = under;
            Duration::ZERO
        } else {
            tracing::debug!(
                elapsed_ms = elapsed.as_millis() as u64,
                "the API's request deadline ended a 1 s long-poll; checking with wait=0"
            );
            self.probe = true;
            Self::MIN_CYCLE.saturating_sub(elapsed)
        }
    }
}

/// Completes once `stop` is true (or its sender is gone). Unlike `wait_for` it yields no
/// `watch::Ref`, which would hold the channel's lock and is not `Send`.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_shrinks_the_wait_a_second_under_it() {
        let mut wait = Wait::new(25);
        // A 2 s deadline ended a 25 s wait.
        assert_eq!(
            wait.ended_by_deadline(Duration::from_millis(2_004)),
            Duration::ZERO
        );
        assert_eq!(wait.next_secs(), 1);
        let mut wait = Wait::new(25);
        wait.ended_by_deadline(Duration::from_millis(10_020));
        assert_eq!(wait.next_secs(), 9);
        // Always strictly shorter than before, never below 1.
        let mut wait = Wait::new(5);
        wait.ended_by_deadline(Duration::from_secs(20));
        assert_eq!(wait.next_secs(), 4);
        let mut wait = Wait::new(3);
        wait.ended_by_deadline(Duration::from_millis(10));
        assert_eq!(wait.next_secs(), 1);
    }

    #[test]
    fn at_one_second_a_deadline_is_checked_with_a_poll_that_does_not_wait() {
        let mut wait = Wait::new(1);
        let pause = wait.ended_by_deadline(Duration::from_millis(300));
        assert_eq!(pause, Duration::from_millis(700));
        assert_eq!(wait.next_secs(), 0);
        wait.answered();
        assert_eq!(wait.next_secs(), 1);
        assert_eq!(
            wait.ended_by_deadline(Duration::from_millis(1_000)),
            Duration::ZERO
        );
        assert_eq!(wait.next_secs(), 0);
    }
}
