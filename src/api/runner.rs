//! `/api/runner/...`: the runner protocol (docs/dispatch.md). A runner claims a queued run
//! (long-poll), heartbeats, sends its output in batches and reports the exit; the
//! database is the only coordinator, so many runners can share one API.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value as Json;

use super::{path_id, Input, Open};
use crate::db::{Connector, Database};
use crate::error::ApiError;
use crate::http::{Config, JsonObject, Response};
use crate::store::dispatches::{self as store, Claim, Line, Stream};

/// How long a waiting claim sleeps between checks. Each check is one indexed read on a
/// fresh connection; no connection is held while sleeping.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// The longest `wait` a claim may ask for, in seconds (under every host's deadline).
pub const MAX_WAIT_SECONDS: i64 = 30;
/// The longest runner name, in characters.
pub const MAX_RUNNER_NAME: usize = 128;
/// The longest `error` an exit report may carry, in characters.
pub const MAX_ERROR: usize = 4_096;

#[derive(Serialize)]
struct ClaimAnswer {
    claim: Option<Claim>,
}

/// `POST /api/runner/claim {"runner", "wait"}`: the oldest queued run, claimed, or
/// `{"claim": null}` at the deadline.
pub(crate) fn claim<C: Connector>(
    connector: &C,
    config: &Config,
    input: &Input,
) -> Result<Response, ApiError> {
    let body = input.body()?;
    body.only(&["runner", "wait"])?;
    let runner = body
        .non_empty_string("runner", MAX_RUNNER_NAME)?
        .required("runner")?;
    let wait = field(body, "wait", |v| {
        v.as_i64()
            .filter(|n| (0..=MAX_WAIT_SECONDS).contains(n))
            .ok_or_else(|| {
                ApiError::validation(
                    "wait",
                    format!("wait must be a whole number of seconds, 0..={MAX_WAIT_SECONDS}"),
                )
            })
    })?
    .unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(wait as u64);
    let mut first = true;
    loop {
        let claim = {
            // The first check migrates a fresh database; later ones only connect.
            let db = if first {
                crate::migrations::open(connector)?
            } else {
                connector.connect()?
            };
            first = false;
            let (queued, expired) = store::pending_work(&db)?;
            if queued || expired {
                store::claim(&db, &runner, config.runner_lease)?
            } else {
                None
            }
        };
        let now = Instant::now();
        if claim.is_some() || now >= deadline {
            return Ok(Response::json(200, &ClaimAnswer { claim }));
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

/// A body field checked by `convert`; absent or null is `None`.
pub(crate) fn field<T>(
    body: &JsonObject,
    name: &str,
    convert: impl FnOnce(&Json) -> Result<T, ApiError>,
) -> Result<Option<T>, ApiError> {
    match body.fields().get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(value) => convert(value).map(Some),
    }
}

/// The `lease` every report carries.
fn lease(input: &Input) -> Result<String, ApiError> {
    input
        .body()?
        .non_empty_string("lease", 64)?
        .required("lease")
}

/// `POST /api/runner/runs/{id}/heartbeat {"lease"}`.
pub(crate) fn heartbeat<D: Database>(
    open: impl Open<D>,
    config: &Config,
    raw_id: &str,
    input: &Input,
) -> Result<Response, ApiError> {
    input.body()?.only(&["lease"])?;
    let lease = lease(input)?;
    let id = path_id(raw_id, "dispatched run")?;
    let beat = store::heartbeat(&open()?, &id, &lease, config.runner_lease)?;
    Ok(Response::json(200, &beat))
}

/// One output line of a batch: `{"stream": "stdout"|"stderr", "text"}`.
fn line(at: &str, value: &Json) -> Result<Line, ApiError> {
    let Json::Object(fields) = value else {
        return Err(ApiError::validation(
            at,
            format!("{at} must be an object {{stream, text}}"),
        ));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "stream" | "text"))
    {
        return Err(ApiError::validation(
            &format!("{at}.{unknown}"),
            format!("{at}.{unknown} is not an accepted field; accepted: stream, text"),
        ));
    }
    let stream = fields
        .get("stream")
        .and_then(Json::as_str)
        .and_then(Stream::parse)
        .ok_or_else(|| {
            ApiError::validation(
                &format!("{at}.stream"),
                format!("{at}.stream must be stdout or stderr"),
            )
        })?;
    let text = fields.get("text").and_then(Json::as_str).ok_or_else(|| {
        ApiError::validation(&format!("{at}.text"), format!("{at}.text must be a string"))
    })?;
    Ok(Line {
        stream,
        text: text.to_owned(),
    })
}

/// `POST /api/runner/runs/{id}/output {"lease", "lines": [{stream, text}]}`.
pub(crate) fn output<D: Database>(
    open: impl Open<D>,
    config: &Config,
    raw_id: &str,
    input: &Input,
) -> Result<Response, ApiError> {
    let body = input.body()?;
    body.only(&["lease", "lines", "from"])?;
    let lease = lease(input)?;
    let lines = field(body, "lines", |v| {
        let Json::Array(items) = v else {
            return Err(ApiError::validation("lines", "lines must be an array"));
        };
        if items.len() > store::MAX_LINES_PER_BATCH {
            return Err(ApiError::validation(
                "lines",
                format!(
                    "a batch holds at most {} lines (got {}); send more batches",
                    store::MAX_LINES_PER_BATCH,
                    items.len()
                ),
            ));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| line(&format!("lines[{i}]"), item))
            .collect::<Result<Vec<_>, _>>()
    })?
    .ok_or_else(|| ApiError::validation("lines", "lines is required"))?;
    let from = field(body, "from", |v| {
        v.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::validation(
                "from",
                "from must be a whole number ≥ 0 (lines sent before)",
            )
        })
    })?;
    let id = path_id(raw_id, "dispatched run")?;
    let answer = store::output(&open()?, &id, &lease, &lines, from, config.runner_lease)?;
    Ok(Response::json(200, &answer))
}

#[derive(Serialize)]
struct ExitAnswer {
    run: crate::store::runs::Run,
}

/// `POST /api/runner/runs/{id}/exit {"lease", "exit_code", "error"}`.
pub(crate) fn exit<D: Database>(
    open: impl Open<D>,
    raw_id: &str,
    input: &Input,
) -> Result<Response, ApiError> {
    let body = input.body()?;
    body.only(&["lease", "exit_code", "error"])?;
    let lease = lease(input)?;
    let exit_code = field(body, "exit_code", |v| {
        v.as_i64()
            .ok_or_else(|| ApiError::validation("exit_code", "exit_code must be an integer"))
    })?;
    let error = body.string("error", MAX_ERROR)?.optional();
    let id = path_id(raw_id, "dispatched run")?;
    let run = store::exit(&open()?, &id, &lease, exit_code, error.as_deref())?;
    Ok(Response::json(200, &ExitAnswer { run }))
}
