//! `/api/events` (long-poll) and `/api/events/snapshot`.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::Input;
use crate::db::{self, Connector};
use crate::error::ApiError;
use crate::http::{Query, Response};
use crate::store::events::{self as store, Event};

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
/// async wait in the host, so it blocks no host thread either).
pub fn wait_for_events<C: Connector>(
    connector: &C,
    params: FeedParams,
) -> Result<Vec<Event>, ApiError> {
    let deadline = Instant::now() + params.wait;
    let mut first = true;
    loop {
        let events = {
            // The first check migrates a fresh database; later ones only connect.
            let db = if first {
                db::open(connector)?
            } else {
                connector.connect()?
            };
            first = false;
            store::after(&db, params.after, params.limit)?
        };
        let now = Instant::now();
        if !events.is_empty() || now >= deadline {
            return Ok(events);
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

pub(crate) fn poll<C: Connector>(connector: &C, input: &Input) -> Result<Response, ApiError> {
    let params = FeedParams::parse(&input.query)?;
    let events = wait_for_events(connector, params)?;
    let cursor = events.last().map_or(params.after, |e| e.cursor);
    Ok(Response::json(200, &Batch { cursor, events }))
}

pub fn snapshot<C: Connector>(connector: &C) -> Result<Response, ApiError> {
    let db = db::open(connector)?;
    Ok(Response::json(200, &store::snapshot(&db)?))
}
