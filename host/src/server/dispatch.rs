//! One request to one component: route it, add Spin's headers, run the component in a
//! fresh instance on a blocking thread, and answer with its response head (the body
//! streams on) or with the host's error answer.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderName, HeaderValue, Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use tokio::sync::{oneshot, watch};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiBody, WasiHttpView};

use super::body::{ClientInterest, GuardedBody};
use super::outcome::{classify, json_response, log_outcome, Outcome};
use super::App;
use crate::error::HostErrorKind;
use crate::limits::{Exceeded, RunLimits, RunMeter};
use crate::outbound_http::{SelfHandler, SelfResponse};

/// Answer one request and log it (one line at info).
pub(super) async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
    client: SocketAddr,
    kill: watch::Receiver<bool>,
) -> Response<HyperOutgoingBody> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let limits = RunLimits {
        run_time: app.request_deadline,
        wall_at: started + app.request_wall_limit.max(app.request_deadline),
    };
    let (response, component) = dispatch(&app, req, client, kill, limits).await;
    tracing::info!(
        method = %method,
        path = %path,
        component = component.as_deref().unwrap_or("-"),
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

impl SelfHandler for App {
    fn handle_self(self: Arc<Self>, mut req: Request<WasiBody>, limits: RunLimits) -> SelfResponse {
        Box::pin(async move {
            let started = Instant::now();
            if let Ok(host) = HeaderValue::from_str(&self.self_authority) {
                req.headers_mut().insert(HOST, host);
            }
            let method = req.method().clone();
            let path = req.uri().path().to_string();
            // The app calling itself: the client address Spin reports is the host's own.
            let client = self
                .self_authority
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
            let kill = self.kill.subscribe();
            let (response, component) = dispatch(&self, req, client, kill, limits).await;
            tracing::info!(
                method = %method,
                path = %path,
                component = component.as_deref().unwrap_or("-"),
                status = response.status().as_u16(),
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                self_request = true,
                "request"
            );
            Ok(response)
        })
    }
}

/// Route one request (a client's, or a component's request to its own app) and run its
/// component within `limits`.
async fn dispatch<B>(
    app: &App,
    mut req: Request<B>,
    client: SocketAddr,
    mut kill: watch::Receiver<bool>,
    limits: RunLimits,
) -> (Response<HyperOutgoingBody>, Option<String>)
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let dispatched = Instant::now();
    let path = req.uri().path().to_string();
    // `*` (OPTIONS *) and authority-form targets (CONNECT) name no resource here.
    if !path.starts_with('/') {
        let message = format!(
            "the request target must be a path, not {:?}",
            req.uri().to_string()
        );
        return (json_response(HostErrorKind::BadRequest, &message), None);
    }
    let Some(route) = app.router.route(&path) else {
        let message = format!("no route matches {path}");
        return (json_response(HostErrorKind::NotFound, &message), None);
    };
    let id = route.component_id().to_string();
    let Some(component) = app.components.get(&id).cloned() else {
        let message = format!("component `{id}` is not loaded");
        return (json_response(HostErrorKind::Internal, &message), Some(id));
    };

    // Spin's headers, and an absolute URI (WASI HTTP needs the authority).
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |pq| pq.as_str().to_string());
    for (name, value) in route.spin_headers("http", &host, &path_and_query, client) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            req.headers_mut().insert(name, value);
        }
    }
    let uri = Uri::builder()
        .scheme("http")
        .authority(host.as_str())
        .path_and_query(path_and_query.as_str())
        .build()
        .or_else(|_| {
            Uri::builder()
                .scheme("http")
                .authority("localhost")
                .path_and_query(path_and_query.as_str())
                .build()
        });
    match uri {
        Ok(uri) => *req.uri_mut() = uri,
        // The target came from the client: its fault, not the host's.
        Err(e) => {
            let message = format!("bad request target: {e}");
            return (json_response(HostErrorKind::BadRequest, &message), Some(id));
        }
    }

    // The client's interest in the run: `interest` lives in this future until the head
    // arrives, then in the response body. Hyper drops this future when the client
    // disconnects before the head (a long-poll given up on), and drops the body
    // unfinished when it leaves mid-stream (an SSE client gone): either way the run
    // ends instead of holding its instance, thread and connections to the deadline.
    let (mut interest, client_gone) = ClientInterest::new();
    let meter = Arc::new(RunMeter::new(limits));
    // SQLite statements run inline on the guest's thread, where the `select!` below
    // cannot end them: the binding asks this between steps of a long statement and
    // interrupts it once the run has to end. A statement is bounded by the run's
    // run-time deadline, not only its wall limit: running inline, its time is run time
    // (the meter counts it while it runs), so a statement that never ends is stopped
    // when a guest computing for as long would be, and a held request's quick checks
    // between sleeps are not at risk. The wall limit applies too (a statement on
    // another thread's behalf would not be counted).
    let stop_sqlite: crate::sqlite::StopCheck = {
        let kill = kill.clone();
        let gone = interest.gone_flag();
        let meter = meter.clone();
        Arc::new(move || {
            gone.load(Ordering::Relaxed) || *kill.borrow() || meter.exceeded().is_some()
        })
    };
    let mut store = component.new_store(meter.clone(), stop_sqlite);
    let (head_tx, head_rx) = oneshot::channel();
    let handles = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)
        .and_then(|r| Ok((r, store.data_mut().http().new_response_outparam(head_tx)?)));
    let (wasi_req, outparam) = match handles {
        Ok(h) => h,
        Err(e) => {
            let message = format!("cannot pass the request to the component: {e}");
            return (json_response(HostErrorKind::Internal, &message), Some(id));
        }
    };

    let (outcome_tx, outcome_rx) = oneshot::channel();
    let pre = component.pre().clone();
    let task_component = id.clone();
    let guest = async move {
        let run = async {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, wasi_req, outparam)
                .await
        };
        // Pending stretches of `run` are waits (see `crate::limits`); the wall limit ends
        // a run that is still waiting (the epoch callback only sees one that runs).
        let metered = crate::limits::metered(&meter, run);
        let outcome = tokio::select! {
            result = tokio::time::timeout_at(limits.wall_at.into(), metered) => match result {
                Ok(Ok(())) => Outcome::Ok,
                Ok(Err(e)) => classify(e, &meter),
                Err(_) => Outcome::Timeout(Exceeded::Wall),
            },
            _ = kill.wait_for(|kill| *kill) => Outcome::Killed,
            () = client_gone => Outcome::Abandoned,
        };
        // Dropping the store ends the instance: its resources go (pinned database
        // connections roll back and return to their pools) and the response body,
        // if streaming, ends.
        drop(store);
        log_outcome(&task_component, &outcome, &meter);
        let _ = outcome_tx.send(outcome);
    };
    // The whole guest run goes to one of tokio's blocking threads: its SQLite
    // statements then run right there, inline, instead of each hopping to a blocking
    // thread and back (two thread wake-ups per statement). Waits (pool, write gate,
    // guest sleeps, the deadline) are still async: `block_on` parks this thread and
    // the runtime's drivers wake it. The async workers only do HTTP.
    let runtime = tokio::runtime::Handle::current();
    drop(tokio::task::spawn_blocking(move || {
        crate::sqlite::run_marked_blocking(|| runtime.block_on(guest))
    }));

    let response = match head_rx.await {
        Ok(Ok(head)) => {
            let length = head
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            head.map(|body| {
                GuardedBody {
                    inner: body,
                    outcome: Some(outcome_rx),
                    interest: Some(interest.headed(length)),
                }
                .boxed_unsync()
            })
        }
        Ok(Err(code)) => {
            // An error instead of a response: what the run does next is its own.
            interest.keep();
            let message = format!("component `{id}` failed to respond: {code:?}");
            json_response(HostErrorKind::Internal, &message)
        }
        // The outparam was dropped unset: the run is over; ask it why.
        Err(_) => match outcome_rx.await {
            Ok(Outcome::Timeout(exceeded)) => {
                let message = match exceeded {
                    Exceeded::RunTime(limit) => format!(
                        "component `{id}` did not respond within its run time of {:.1} s",
                        limit.as_secs_f64()
                    ),
                    Exceeded::Wall => format!(
                        "component `{id}` did not respond within {:.1} s",
                        limits
                            .wall_at
                            .saturating_duration_since(dispatched)
                            .as_secs_f64()
                    ),
                };
                json_response(HostErrorKind::Timeout, &message)
            }
            Ok(Outcome::Failed { summary, .. }) => json_response(
                HostErrorKind::Internal,
                &format!("component `{id}` failed: {summary}"),
            ),
            Ok(Outcome::Unavailable(e)) => json_response(
                HostErrorKind::Unavailable,
                &format!("no capacity for component `{id}`: {e}"),
            ),
            Ok(Outcome::Killed) => {
                json_response(HostErrorKind::Unavailable, "the server is shutting down")
            }
            // Only when the client left, which ends this future first: never sent.
            Ok(Outcome::Abandoned) => {
                json_response(HostErrorKind::Unavailable, "the client went away")
            }
            Ok(Outcome::Ok) | Err(_) => json_response(
                HostErrorKind::Internal,
                &format!("component `{id}` returned without sending a response"),
            ),
        },
    };
    (response, Some(id))
}
