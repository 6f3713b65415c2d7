//! The HTTP server: hyper http/1.1 accept loop (keep-alive, one task per
//! connection), per-request instances, deadlines, request logging and graceful
//! shutdown.
//!
//! Per request: route the path, add Spin's `spin-*` headers, make a fresh store and
//! instance from the pre-instantiated component, and run `handle` on one of tokio's
//! blocking threads (where its SQLite calls run inline) while this side awaits the
//! response outparam. The response head is returned as soon as the guest sets it,
//! and the body streams from the still-running guest (SSE works). Two limits bound the
//! whole guest run, head and body (see [`crate::limits`]): its run time, which epoch
//! interruption enforces on a guest that computes forever, and its wall time, which a
//! tokio timeout enforces on one that waits forever (a guest `sleep` is an async wait in
//! the host, which uses no run time).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderName, HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use wasmtime::Trap;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiBody, WasiHttpView};

use crate::conn_limit::{Admitted, ConnectionLimit};
use crate::diag::one_line;
use crate::error::{error_response, HostErrorKind};
use crate::instance::PreparedComponent;
use crate::limits::{Exceeded, RunLimits, RunMeter};
use crate::outbound_http::{SelfHandler, SelfResponse};
use crate::parse_errors::{Owed, ParseErrorIo};
use crate::routing::Router;

/// Everything the server needs to answer requests. Immutable once built.
pub struct App {
    /// Routes to component ids.
    pub router: Router,
    /// Prepared components by id (every routed id is present).
    pub components: HashMap<String, Arc<PreparedComponent>>,
    /// Run time one guest run may use (head and body; waits not counted).
    pub request_deadline: Duration,
    /// Wall time one guest run may last (head and body, waits included); never shorter
    /// than `request_deadline`.
    pub request_wall_limit: Duration,
    /// How long a client may take to send a request head (and how long a keep-alive
    /// connection may sit idle before its next one): slow-loris protection.
    pub header_read_timeout: Duration,
    /// Open connections per client address.
    pub connection_limit: Arc<ConnectionLimit>,
    /// Set when the host shuts down for good: every guest run, self requests
    /// included, ends.
    pub kill: watch::Sender<bool>,
    /// The `Host` a self request carries (the listener's address): what the app would
    /// see if it had called itself over the network, and never the incoming request's
    /// `Host`, which a client chooses.
    pub self_authority: String,
}

/// How a guest run ended.
#[derive(Debug)]
enum Outcome {
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

/// Serve `listener` until `shutdown` resolves. Then stop accepting, let open
/// connections finish their in-flight requests within `grace` (idle keep-alive
/// connections close at once), end whatever is still running, and return once the
/// guest tasks have been told to stop.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    // `stop`: connections finish in-flight requests and close; `kill`: guest runs end now.
    let (stop_tx, stop_rx) = watch::channel(false);
    let kill_rx = app.kill.subscribe();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, client)) => match app.connection_limit.admit(client.ip()) {
                    Some(admitted) => {
                        connections.spawn(serve_connection(
                            stream,
                            client,
                            admitted,
                            app.clone(),
                            stop_rx.clone(),
                            kill_rx.clone(),
                        ));
                    }
                    None => {
                        connections.spawn(refuse_connection(
                            stream,
                            client,
                            app.connection_limit.max(),
                        ));
                    }
                },
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Reap finished connection tasks so the set does not grow forever.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    tracing::info!(
        connections = connections.len(),
        "shutting down: no longer accepting"
    );
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(grace, drain(&mut connections))
        .await
        .is_ok();
    // Always tell guest runs to end: some may have lost their connection but still
    // be running (up to their deadline) and holding database connections.
    app.kill.send_replace(true);
    if !drained {
        tracing::warn!(
            remaining = connections.len(),
            "shutdown grace elapsed; ending in-flight requests"
        );
        // Killed runs answer 503 or end their body; give that a moment, then cut.
        let _ = tokio::time::timeout(Duration::from_secs(1), drain(&mut connections)).await;
        connections.shutdown().await;
    }
}

async fn drain(set: &mut JoinSet<()>) {
    while set.join_next().await.is_some() {}
}

/// How long the host tries to hand a client its error before closing anyway.
const ERROR_WRITE_PATIENCE: Duration = Duration::from_secs(1);

async fn serve_connection(
    mut stream: TcpStream,
    client: SocketAddr,
    _admitted: Admitted,
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
    kill: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let owed = Owed::default();
    let header_read_timeout = app.header_read_timeout;
    let service = {
        let owed = owed.clone();
        hyper::service::service_fn(move |req| {
            owed.called();
            let app = app.clone();
            let kill = kill.clone();
            async move { Ok::<_, Infallible>(handle(app, req, client, kill).await) }
        })
    };
    let mut io = TokioIo::new(ParseErrorIo::new(&mut stream, owed));
    let result = {
        let conn = http1::Builder::new()
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(&mut io, service);
        tokio::pin!(conn);
        let stopped = async {
            // The watch `Ref` must not live across the await below (it is not `Send`).
            let _ = stop.wait_for(|stop| *stop).await;
        };
        tokio::select! {
            result = conn.as_mut() => result,
            () = stopped => {
                // Finish the request in flight (if any), then close.
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    };
    let refused = io.inner().refused();
    if let Err(e) = &result {
        if e.is_timeout() {
            tracing::info!(client = %client, "request head not received in time; connection closed");
        } else {
            tracing::debug!(client = %client, error = %e, "connection ended with an error");
        }
    }
    if let Some(status) = refused {
        tracing::info!(
            client = %client,
            status = status.as_u16(),
            error = %result.as_ref().err().map(ToString::to_string).unwrap_or_default(),
            "malformed request refused"
        );
        crate::parse_errors::answer(
            &mut stream,
            status,
            result.as_ref().err(),
            ERROR_WRITE_PATIENCE,
        )
        .await;
    }
}

/// A connection over the per-client cap: a 503 in the API's shape, then closed, without
/// reading the request.
async fn refuse_connection(mut stream: TcpStream, client: SocketAddr, max: usize) {
    tracing::warn!(client = %client, max, "too many connections from one client; refused");
    let body = crate::error::error_body(
        HostErrorKind::Unavailable,
        &format!(
            "too many open connections from {} (at most {max})",
            client.ip()
        ),
    );
    let bytes = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    crate::parse_errors::write_and_close(&mut stream, bytes.as_bytes(), ERROR_WRITE_PATIENCE).await;
}

fn json_response(kind: HostErrorKind, message: &str) -> Response<HyperOutgoingBody> {
    error_response(kind, message)
        .map(|b| Full::new(b).map_err(|never| match never {}).boxed_unsync())
}

/// Answer one request and log it (one line at info).
async fn handle(
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

fn classify(e: wasmtime::Error, meter: &RunMeter) -> Outcome {
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

/// Ends a guest run when dropped while the client still waits on it: before the
/// response head, or while its body is being read. Not once the body has been sent
/// whole (read to its end, or all of its `content-length`: hyper then stops reading),
/// and not when the body is never read (a `HEAD` request, a bodiless status): then the
/// run goes on to its own end, as in Spin, so work a component does after sending its
/// response is not cut short.
struct ClientInterest {
    gone: Option<oneshot::Sender<()>>,
    /// Set when the client is gone, for checks that cannot await (SQLite's).
    gone_flag: Arc<AtomicBool>,
    /// The response head is out and the body is being read.
    reading: bool,
    headed: bool,
    /// Body bytes still to send, when the head declared a `content-length`.
    remaining: Option<u64>,
}

impl ClientInterest {
    /// The interest, and the future the guest run selects on: it resolves when the
    /// client is gone.
    fn new() -> (Self, impl Future<Output = ()> + Send) {
        let (tx, rx) = oneshot::channel::<()>();
        let interest = ClientInterest {
            gone: Some(tx),
            gone_flag: Arc::new(AtomicBool::new(false)),
            reading: false,
            headed: false,
            remaining: None,
        };
        // A send means gone; the sender dropped without a send means the run keeps
        // going, so that case never resolves.
        let gone = async move {
            if rx.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        (interest, gone)
    }

    /// The flag set when the client is gone.
    fn gone_flag(&self) -> Arc<AtomicBool> {
        self.gone_flag.clone()
    }

    /// The head is out (with the body's `content-length`, if it has one): from now on
    /// only a body dropped mid-read means gone.
    fn headed(mut self, content_length: Option<u64>) -> Self {
        self.headed = true;
        self.remaining = content_length;
        if content_length == Some(0) {
            self.keep();
        }
        self
    }

    /// `n` more body bytes went out; all of a declared length means the body is whole.
    fn sent(&mut self, n: usize) {
        if let Some(remaining) = self.remaining.as_mut() {
            *remaining = remaining.saturating_sub(n as u64);
            if *remaining == 0 {
                self.keep();
            }
        }
    }

    /// The run may go on whatever happens to the client.
    fn keep(&mut self) {
        self.gone = None;
    }
}

impl Drop for ClientInterest {
    fn drop(&mut self) {
        if let Some(gone) = self.gone.take() {
            if !self.headed || self.reading {
                self.gone_flag.store(true, Ordering::Relaxed);
                let _ = gone.send(());
            }
        }
    }
}

fn log_outcome(component: &str, outcome: &Outcome, meter: &RunMeter) {
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

/// The guest's response body, which ends with an error (so hyper aborts the
/// connection instead of sending the final chunk) if the guest run failed after the
/// head was sent: a client must be able to tell a truncated body from a complete one.
struct GuardedBody {
    inner: HyperOutgoingBody,
    outcome: Option<oneshot::Receiver<Outcome>>,
    /// Dropped with the body; see [`ClientInterest`].
    interest: Option<ClientInterest>,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(interest) = this.interest.as_mut() {
            interest.reading = true;
        }
        if let Some(frame) = ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            if let (Some(interest), Ok(frame)) = (this.interest.as_mut(), &frame) {
                if let Some(data) = frame.data_ref() {
                    interest.sent(data.len());
                }
            }
            return Poll::Ready(Some(frame));
        }
        // Read to its end: the run is no longer the client's to end.
        if let Some(mut interest) = this.interest.take() {
            interest.keep();
        }
        // The body ended (finished, or its writer went away with the instance); the
        // run's outcome says whether that was complete.
        let Some(outcome) = this.outcome.as_mut() else {
            return Poll::Ready(None);
        };
        let result = ready!(Pin::new(outcome).poll(cx));
        this.outcome = None;
        match result {
            Ok(Outcome::Ok) => Poll::Ready(None),
            other => Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(
                format!("response body ended early: {other:?}"),
            ))))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.outcome.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
