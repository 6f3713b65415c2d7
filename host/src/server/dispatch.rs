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
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiBody, WasiHttpView};

use super::body::{ClientInterest, GuardedBody};
use super::outcome::{classify, log_outcome, Outcome, Refusal};
use super::App;
use crate::error::{ErrorBody, HostErrorKind};
use crate::instance::PreparedComponent;
use crate::limits::{Exceeded, RunLimits, RunMeter};
use crate::outbound_http::{SelfHandler, SelfResponse};
use crate::routing::RouteMatch;

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
    log_request(
        &method,
        &path,
        component.as_deref(),
        &response,
        started,
        None,
    );
    response
}

/// The one line at info a request leaves (`self_request` only on a component's request
/// to its own app).
fn log_request(
    method: &http::Method,
    path: &str,
    component: Option<&str>,
    response: &Response<HyperOutgoingBody>,
    started: Instant,
    self_request: Option<bool>,
) {
    tracing::info!(
        method = %method,
        path = %path,
        component = component.unwrap_or("-"),
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        self_request,
        "request"
    );
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
            let component = component.as_deref();
            log_request(&method, &path, component, &response, started, Some(true));
            Ok(response)
        })
    }
}

/// Route one request (a client's, or a component's request to its own app) and run its
/// component within `limits`: the response, and the component it went to (if any).
async fn dispatch<B>(
    app: &App,
    req: Request<B>,
    client: SocketAddr,
    kill: watch::Receiver<bool>,
    limits: RunLimits,
) -> (Response<HyperOutgoingBody>, Option<String>)
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let dispatched = Instant::now();
    let (route, component) = match find_component(app, req.uri()) {
        Ok(found) => found,
        Err((refusal, id)) => return (refusal.answer(app.error_body), id),
    };
    let id = component.id().to_string();
    let response = async {
        let req = for_component(req, &route, client)?;
        let run = start_run(&component, req, kill, limits)?;
        Ok::<_, Refusal>(run.response(&id, limits, dispatched, app.error_body).await)
    }
    .await
    .unwrap_or_else(|refusal| refusal.answer(app.error_body));
    (response, Some(id))
}

/// The route matching the request's path and its loaded component; or the refusal,
/// with the component's id once the route named one.
fn find_component(
    app: &App,
    uri: &Uri,
) -> Result<(RouteMatch, Arc<PreparedComponent>), (Refusal, Option<String>)> {
    let path = uri.path();
    // `*` (OPTIONS *) and authority-form targets (CONNECT) name no resource here.
    if !path.starts_with('/') {
        let message = format!(
            "the request target must be a path, not {:?}",
            uri.to_string()
        );
        return Err((Refusal::new(HostErrorKind::BadRequest, message), None));
    }
    let Some(route) = app.router.route(path) else {
        let message = format!("no route matches {path}");
        return Err((Refusal::new(HostErrorKind::NotFound, message), None));
    };
    let id = route.component_id().to_string();
    match app.components.get(&id).cloned() {
        Some(component) => Ok((route, component)),
        None => {
            let message = format!("component `{id}` is not loaded");
            Err((Refusal::new(HostErrorKind::Internal, message), Some(id)))
        }
    }
}

/// The request as the component sees it: Spin's `spin-*` headers added, and an absolute
/// URI (WASI HTTP needs the authority).
fn for_component<B>(
    mut req: Request<B>,
    route: &RouteMatch,
    client: SocketAddr,
) -> Result<Request<B>, Refusal> {
    let path = req.uri().path().to_string();
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
        })
        // The target came from the client: its fault, not the host's.
        .map_err(|e| {
            Refusal::new(
                HostErrorKind::BadRequest,
                format!("bad request target: {e}"),
            )
        })?;
    *req.uri_mut() = uri;
    Ok(req)
}

/// A guest run under way: where its response head arrives, how it ended, and the
/// client's interest in it.
struct Run {
    head: oneshot::Receiver<Result<Response<HyperOutgoingBody>, ErrorCode>>,
    outcome: oneshot::Receiver<Outcome>,
    interest: ClientInterest,
}

/// Start `component` on `req` in a fresh instance on one of tokio's blocking threads.
fn start_run<B>(
    component: &PreparedComponent,
    req: Request<B>,
    mut kill: watch::Receiver<bool>,
    limits: RunLimits,
) -> Result<Run, Refusal>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    // The client's interest in the run: `interest` lives in this future until the head
    // arrives, then in the response body. Hyper drops this future when the client
    // disconnects before the head (a long-poll given up on), and drops the body
    // unfinished when it leaves mid-stream (an SSE client gone): either way the run
    // ends instead of holding its instance, thread and connections to the deadline.
    let (interest, client_gone) = ClientInterest::new();
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
    let (wasi_req, outparam) = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)
        .and_then(|r| Ok((r, store.data_mut().http().new_response_outparam(head_tx)?)))
        .map_err(|e| {
            let message = format!("cannot pass the request to the component: {e}");
            Refusal::new(HostErrorKind::Internal, message)
        })?;

    let (outcome_tx, outcome_rx) = oneshot::channel();
    let pre = component.pre().clone();
    let task_component = component.id().to_string();
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
    Ok(Run {
        head: head_rx,
        outcome: outcome_rx,
        interest,
    })
}

impl Run {
    /// The component's response head with its body streaming on; or, when the run
    /// ended without one, the host's answer saying why.
    async fn response(
        self,
        id: &str,
        limits: RunLimits,
        dispatched: Instant,
        error_body: ErrorBody,
    ) -> Response<HyperOutgoingBody> {
        let Run {
            head,
            outcome,
            mut interest,
        } = self;
        match head.await {
            Ok(Ok(head)) => {
                let length = head
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                head.map(|body| {
                    GuardedBody {
                        inner: body,
                        outcome: Some(outcome),
                        interest: Some(interest.headed(length)),
                    }
                    .boxed_unsync()
                })
            }
            Ok(Err(code)) => {
                // An error instead of a response: what the run does next is its own.
                interest.keep();
                let message = format!("component `{id}` failed to respond: {code:?}");
                Refusal::new(HostErrorKind::Internal, message).answer(error_body)
            }
            // The outparam was dropped unset: the run is over; ask it why.
            Err(_) => {
                let wall = limits.wall_at.saturating_duration_since(dispatched);
                Refusal::without_response(id, outcome.await.ok(), wall).answer(error_body)
            }
        }
    }
}
