//! `/api/events` (long-poll) and `/api/events/snapshot`.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::Input;
use crate::db::Connector;
use crate::error::ApiError;
use crate::http::{Config, Query, Request, Response};
use crate::store::events::{self as store, Event, Feed};

/// How long a long-poll sleeps between checks. Each check is one indexed read on a fresh
/// connection; no connection is held while sleeping.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The longest `wait` a client may ask for, in seconds (under every host's deadline).
pub const MAX_WAIT_SECONDS: i64 = 30;

#[derive(Debug, Serialize)]
struct Batch {
    cursor: i64,
    events: Vec<Event>,
}

/// The validated parameters of a feed read.
#[derive(Debug, Clone, Copy)]
pub struct FeedParams {
    pub after: i64,
    pub wait: Duration,
    pub limit: i64,
}

impl FeedParams {
    pub fn parse(q: &Query) -> Result<Self, ApiError> {
        Ok(FeedParams {
            after: q.int_in("after", 0..=i64::MAX, 0)?,
            wait: Duration::from_secs(q.int_in("wait", 0..=MAX_WAIT_SECONDS, 0)? as u64),
            limit: q.int_in("limit", 1..=1000, 100)?,
        })
    }
}

/// Events after `params.after`, waiting up to `params.wait` for the first one. Sleeps
/// between checks with no connection open (in a Spin component, `thread::sleep` is an
/// async wait in the host, so it blocks no host thread either). Rows the feed skips (see
/// [`store::after`]) move the cursor on while it waits, so they are read once.
pub fn wait_for_events<C: Connector>(connector: &C, params: FeedParams) -> Result<Feed, ApiError> {
    let deadline = Instant::now() + params.wait;
    let mut first = true;
    let mut cursor = params.after;
    loop {
        let feed = {
            // The first check migrates a fresh database, and notices runners' leases that
            // passed (their runs fail, "runner lost": events of this feed); later checks
            // only connect.
            let db = if first {
                let db = crate::migrations::open(connector)?;
                crate::store::dispatches::expire_leases(&db)?;
                db
            } else {
                connector.connect()?
            };
            first = false;
            store::after(&db, cursor, params.limit)?
        };
        cursor = feed.cursor;
        let now = Instant::now();
        if !feed.events.is_empty() || now >= deadline {
            return Ok(feed);
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

pub(crate) fn poll<C: Connector>(connector: &C, input: &Input) -> Result<Response, ApiError> {
    let params = FeedParams::parse(&input.query)?;
    let Feed { cursor, events } = wait_for_events(connector, params)?;
    Ok(Response::json(200, &Batch { cursor, events }))
}

pub fn snapshot<C: Connector>(connector: &C) -> Result<Response, ApiError> {
    let db = crate::migrations::open(connector)?;
    crate::store::dispatches::expire_leases(&db)?;
    Ok(Response::json(200, &store::snapshot(&db)?))
}

/// `GET /api/events/stream`: the response head and the stream of its body chunks.
/// The start cursor is `Last-Event-ID` if sent, else `?after`, else the current head.
pub(crate) fn stream<C: Connector + Clone>(
    connector: &C,
    config: &Config,
    req: &Request,
    input: &Input,
) -> Result<(Response, EventStream<C>), ApiError> {
    let last_event_id = match req.header("last-event-id") {
        None => None,
        Some(raw) => Some(
            raw.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("Last-Event-ID must be a cursor, got {raw:?}"))
                })?,
        ),
    };
    let after = match last_event_id {
        Some(cursor) => Some(cursor),
        None => match input.query.get("after") {
            None => None,
            Some(_) => Some(input.query.int_in("after", 0..=i64::MAX, 0)?),
        },
    };
    let db = crate::migrations::open(connector)?;
    let cursor = match after {
        Some(cursor) => cursor,
        None => store::head(&db)?,
    };
    drop(db);
    let head = Response::empty(200)
        .with_header("content-type", "text/event-stream")
        .with_header("cache-control", "no-cache")
        .with_header("x-accel-buffering", "no");
    let now = Instant::now();
    Ok((
        head,
        EventStream {
            connector: connector.clone(),
            cursor,
            deadline: now + config.sse_max_duration,
            keepalive: config.sse_keepalive,
            last_sent: now,
            opened: false,
        },
    ))
}

/// The body of an SSE response: blocks (sleeping between cheap checks, holding no
/// connection) until there is something to send, yields it, and ends by itself at its
/// deadline so that EventSource clients reconnect with `Last-Event-ID` before any host's
/// request deadline cuts them off.
pub struct EventStream<C> {
    connector: C,
    cursor: i64,
    deadline: Instant,
    keepalive: Duration,
    last_sent: Instant,
    opened: bool,
}

impl<C> EventStream<C> {
    /// The cursor of the last event sent (or the start cursor).
    pub fn cursor(&self) -> i64 {
        self.cursor
    }
}

/// One SSE message per event: `id`, `event`, `data` (the event's JSON).
fn sse_message(event: &Event) -> Vec<u8> {
    let data = serde_json::to_string(event).unwrap_or_default();
    format!(
        "id: {}\nevent: {}\ndata: {data}\n\n",
        event.cursor, event.kind
    )
    .into_bytes()
}

impl<C: Connector> Iterator for EventStream<C> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if !self.opened {
            // Sent at once so clients (and proxies) see the stream open; `retry` tells
            // EventSource how soon to reconnect after the stream ends itself.
            self.opened = true;
            return Some(b"retry: 1000\n: stream open\n\n".to_vec());
        }
        loop {
            let now = Instant::now();
            if now >= self.deadline {
                return None;
            }
            let events = self
                .connector
                .connect()
                .and_then(|db| store::after(&db, self.cursor, 100));
            // A busy database (an error) is retried at the next tick; the stream stays open.
            if let Ok(feed) = events {
                // Past skipped rows too, so they are not read again.
                self.cursor = feed.cursor;
                if !feed.events.is_empty() {
                    self.last_sent = now;
                    return Some(feed.events.iter().flat_map(sse_message).collect());
                }
            }
            if now.duration_since(self.last_sent) >= self.keepalive {
                self.last_sent = now;
                return Some(b": keep-alive\n\n".to_vec());
            }
            let until_keepalive = self.keepalive - now.duration_since(self.last_sent);
            let pause = POLL_INTERVAL.min(self.deadline - now).min(until_keepalive);
            std::thread::sleep(pause);
        }
    }
}
