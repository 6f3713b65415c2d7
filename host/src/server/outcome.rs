//! How a guest run ended, what the log says of it, and the error answers the host
//! sends on its own.

use std::time::Duration;

use http::Response;
use http_body_util::{BodyExt, Full};
use wasmtime::Trap;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::diag::one_line;
use crate::error::{ErrorBody, HostErrorKind};
use crate::limits::{Exceeded, RunMeter};

/// How a guest run ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// `handle` returned normally.
    Ok,
    /// Trap, panic or host error: a one-line summary (the root cause, for the
    /// client) and the full detail with the guest backtrace (for the log).
    Failed { summary: String, detail: String },
    /// The run used its run time or outlived its wall limit.
    Timeout(Exceeded),
    /// No instance slot free in the pooling allocator.
    Unavailable(String),
    /// The host is shutting down and ended the run.
    Killed,
    /// The client went away (before the response head, or in the middle of a
    /// streamed body) and the run was ended: nobody would read what it produces.
    Abandoned,
}

/// An answer the host makes on its own: what went wrong, and the message for the
/// client.
#[derive(Debug)]
pub(super) struct Refusal {
    kind: HostErrorKind,
    message: String,
}

impl Refusal {
    pub(super) fn new(kind: HostErrorKind, message: impl Into<String>) -> Self {
        Refusal {
            kind,
            message: message.into(),
        }
    }

    /// Why a run of component `id` ended without sending a response head: `outcome` is
    /// how it ended (`None` if that was never said), `wall` its wall limit.
    pub(super) fn without_response(id: &str, outcome: Option<Outcome>, wall: Duration) -> Self {
        use HostErrorKind::{Internal, Timeout, Unavailable};
        match outcome {
            Some(Outcome::Timeout(Exceeded::RunTime(limit))) => Refusal::new(
                Timeout,
                format!(
                    "component `{id}` did not respond within its run time of {:.1} s",
                    limit.as_secs_f64()
                ),
            ),
            Some(Outcome::Timeout(Exceeded::Wall)) => Refusal::new(
                Timeout,
                format!(
                    "component `{id}` did not respond within {:.1} s",
                    wall.as_secs_f64()
                ),
            ),
            Some(Outcome::Failed { summary, .. }) => {
                Refusal::new(Internal, format!("component `{id}` failed: {summary}"))
            }
            Some(Outcome::Unavailable(e)) => Refusal::new(
                Unavailable,
                format!("no capacity for component `{id}`: {e}"),
            ),
            Some(Outcome::Killed) => Refusal::new(Unavailable, "the server is shutting down"),
            // Only when the client left, which ends the request first: never sent.
            Some(Outcome::Abandoned) => Refusal::new(Unavailable, "the client went away"),
            Some(Outcome::Ok) | None => Refusal::new(
                Internal,
                format!("component `{id}` returned without sending a response"),
            ),
        }
    }

    /// The response to send, its body as the app chose.
    pub(super) fn answer(self, body: ErrorBody) -> Response<HyperOutgoingBody> {
        body.response(self.kind, &self.message)
            .map(|b| Full::new(b).map_err(|never| match never {}).boxed_unsync())
    }
}

pub(super) fn classify(e: wasmtime::Error, meter: &RunMeter) -> Outcome {
    if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return Outcome::Timeout(meter.exceeded().unwrap_or(Exceeded::Wall));
    }
    let detail = one_line(&format!("{e:#}"));
    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return Outcome::Unavailable(detail);
    }
    Outcome::Failed {
        summary: one_line(&e.root_cause().to_string()),
        detail,
    }
}

pub(super) fn log_outcome(component: &str, outcome: &Outcome, meter: &RunMeter) {
    tracing::debug!(
        component,
        run_time_ms = meter.run_time().as_secs_f64() * 1000.0,
        "guest run ended"
    );
    match outcome {
        Outcome::Ok => {}
        Outcome::Failed { detail, .. } => {
            tracing::error!(component, error = %detail, "component failed")
        }
        Outcome::Timeout(Exceeded::RunTime(limit)) => tracing::warn!(
            component,
            run_time_limit_ms = limit.as_millis() as u64,
            "component used up its run time (request deadline)"
        ),
        Outcome::Timeout(Exceeded::Wall) => tracing::warn!(
            component,
            run_time_ms = meter.run_time().as_millis() as u64,
            "component exceeded the request's wall-time limit"
        ),
        Outcome::Unavailable(e) => tracing::warn!(component, error = %e, "no instance slot free"),
        Outcome::Killed => tracing::warn!(component, "component ended by shutdown"),
        Outcome::Abandoned => {
            tracing::info!(component, "client went away; component run ended")
        }
    }
}
