//! An in-process stand-in for the API's feed: `GET /api/events` (long-poll) and
//! `GET /api/events/snapshot`, with the contract's JSON, bearer auth, and switches to make
//! it go away (connections refused) or answer errors.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

const FINAL: [&str; 3] = ["completed", "failed", "terminated"];

#[derive(Default)]
struct Data {
    /// (cursor, run) in cursor order.
    events: Vec<(u64, Value)>,
    /// The latest version of every run, by id.
    runs: BTreeMap<String, Value>,
    /// The next cursor to hand out.
    next: u64,
}

struct State {
    data: Mutex<Data>,
    /// The newest cursor; long-polls wait on it.
    head: watch::Sender<u64>,
    token: Option<String>,
    failing: AtomicBool,
    failing_snapshots: AtomicBool,
    active_long_polls: AtomicUsize,
    max_long_polls: AtomicUsize,
    failed_answers: AtomicUsize,
    snapshot_requests: AtomicUsize,
    plain_reads: AtomicUsize,
    unauthorized: AtomicUsize,
    /// A request deadline, as a host has: a long-poll still waiting when it passes is
    /// answered 504 `timeout`.
    deadline: Mutex<Option<Duration>>,
    deadline_answers: AtomicUsize,
}

pub struct Mock {
    pub addr: SocketAddr,
    state: Arc<State>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Mock {
    /// Starts a mock on a free loopback port; with a token, every request must carry it.
    pub async fn start(token: Option<&str>) -> Mock {
        let (head, _) = watch::channel(0);
        let state = Arc::new(State {
            data: Mutex::new(Data {
                next: 1,
                ..Data::default()
            }),
            head,
            token: token.map(str::to_string),
            failing: AtomicBool::new(false),
            failing_snapshots: AtomicBool::new(false),
            active_long_polls: AtomicUsize::new(0),
            max_long_polls: AtomicUsize::new(0),
            failed_answers: AtomicUsize::new(0),
            snapshot_requests: AtomicUsize::new(0),
            plain_reads: AtomicUsize::new(0),
            unauthorized: AtomicUsize::new(0),
            deadline: Mutex::new(None),
            deadline_answers: AtomicUsize::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(accept_loop(listener, state.clone()));
        Mock {
            addr,
            state,
            server: Mutex::new(Some(server)),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Goes away: closes the listener and every open connection (in-flight long-polls
    /// included). Events can still be pushed meanwhile.
    pub fn stop(&self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            // Dropping the accept loop drops its JoinSet, which aborts every connection.
            server.abort();
        }
    }

    /// Comes back on the same address.
    pub async fn resume(&self) {
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                // The aborted accept loop may not have released the port yet.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        let server = tokio::spawn(accept_loop(listener, self.state.clone()));
        *self.server.lock().unwrap() = Some(server);
    }

    /// While on, every request is answered 503 with the API's error shape.
    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    /// While on, only snapshot requests are answered 503.
    pub fn set_failing_snapshots(&self, failing: bool) {
        self.state
            .failing_snapshots
            .store(failing, Ordering::SeqCst);
    }

    /// Gives every request a deadline (as a host's request timeout): a long-poll still
    /// waiting when it passes gets a 504 with the API's error shape.
    pub fn set_deadline(&self, deadline: Option<Duration>) {
        *self.state.deadline.lock().unwrap() = deadline;
    }

    /// Long-polls answered 504 because the deadline passed.
    pub fn deadline_answers(&self) -> usize {
        self.state.deadline_answers.load(Ordering::SeqCst)
    }

    /// Records a change of run `id` to `status`; returns the event's cursor.
    pub fn push(&self, id: &str, status: &str) -> u64 {
        self.push_padded(id, status, 0)
    }

    /// Like `push`, with `pad` bytes of filler in the run (to make events big).
    pub fn push_padded(&self, id: &str, status: &str, pad: usize) -> u64 {
        let mut data = self.state.data.lock().unwrap();
        let cursor = data.next;
        data.next += 1;
        let run =
            json!({"id": id, "status": status, "cursor_seen": cursor, "pad": "x".repeat(pad)});
        data.events.push((cursor, run.clone()));
        data.runs.insert(id.to_string(), run);
        drop(data);
        self.state.head.send_replace(cursor);
        cursor
    }

    /// Leaves a gap of `n` cursors (as deleted agents do).
    pub fn skip_cursors(&self, n: u64) {
        self.state.data.lock().unwrap().next += n;
    }

    pub fn head(&self) -> u64 {
        *self.state.head.borrow()
    }

    /// The most long-polls (`wait` > 0) that were ever in flight at once.
    pub fn max_long_polls(&self) -> usize {
        self.state.max_long_polls.load(Ordering::SeqCst)
    }

    pub fn failed_answers(&self) -> usize {
        self.state.failed_answers.load(Ordering::SeqCst)
    }

    pub fn snapshot_requests(&self) -> usize {
        self.state.snapshot_requests.load(Ordering::SeqCst)
    }

    /// `GET /api/events` with `wait=0` (catch-up reads).
    pub fn plain_reads(&self) -> usize {
        self.state.plain_reads.load(Ordering::SeqCst)
    }

    pub fn unauthorized(&self) -> usize {
        self.state.unauthorized.load(Ordering::SeqCst)
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = state.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(state, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Decrements the in-flight long-poll count however the request ends (even aborted).
struct LongPoll<'a>(&'a State);

impl<'a> LongPoll<'a> {
    fn enter(state: &'a State) -> Self {
        let now = state.active_long_polls.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_long_polls.fetch_max(now, Ordering::SeqCst);
        LongPoll(state)
    }
}

impl Drop for LongPoll<'_> {
    fn drop(&mut self) {
        self.0.active_long_polls.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if let Some(token) = &state.token {
        let expected = format!("Bearer {token}");
        let given = req.headers().get(http::header::AUTHORIZATION);
        if given.is_none_or(|v| v.as_bytes() != expected.as_bytes()) {
            state.unauthorized.fetch_add(1, Ordering::SeqCst);
            return error(StatusCode::UNAUTHORIZED, "unauthorized", "token required");
        }
    }
    let snapshot_failing = state.failing_snapshots.load(Ordering::SeqCst)
        && req.uri().path() == "/api/events/snapshot";
    if state.failing.load(Ordering::SeqCst) || snapshot_failing {
        state.failed_answers.fetch_add(1, Ordering::SeqCst);
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database cannot be reached",
        );
    }
    let query: BTreeMap<String, String> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    match req.uri().path() {
        "/api/events/snapshot" => {
            state.snapshot_requests.fetch_add(1, Ordering::SeqCst);
            // One lock = one transaction: the cursor and the runs agree.
            let data = state.data.lock().unwrap();
            let cursor = data.events.last().map_or(0, |e| e.0);
            let runs: Vec<Value> = data
                .runs
                .values()
                .filter(|r| !FINAL.contains(&r["status"].as_str().unwrap_or("")))
                .cloned()
                .collect();
            ok(json!({"cursor": cursor, "data": runs}))
        }
        "/api/events" => {
            let number = |name: &str, default: u64| match query.get(name) {
                None => Some(default),
                Some(v) => v.parse::<u64>().ok(),
            };
            let (Some(after), Some(wait), Some(limit)) =
                (number("after", 0), number("wait", 0), number("limit", 100))
            else {
                return error(StatusCode::BAD_REQUEST, "bad_request", "bad query");
            };
            if wait > 30 || !(1..=1000).contains(&limit) {
                return error(StatusCode::BAD_REQUEST, "bad_request", "out of range");
            }
            let _guard;
            if wait > 0 {
                _guard = LongPoll::enter(&state);
                let mut head = state.head.subscribe();
                let deadline = *state.deadline.lock().unwrap();
                let wait = Duration::from_secs(wait);
                let waited = tokio::time::timeout(
                    deadline.map_or(wait, |d| d.min(wait)),
                    head.wait_for(|h| *h > after),
                )
                .await;
                if waited.is_err() && deadline.is_some_and(|d| d < wait) {
                    state.deadline_answers.fetch_add(1, Ordering::SeqCst);
                    return error(
                        StatusCode::GATEWAY_TIMEOUT,
                        "timeout",
                        "the component did not respond within the deadline",
                    );
                }
            } else {
                state.plain_reads.fetch_add(1, Ordering::SeqCst);
            }
            let data = state.data.lock().unwrap();
            let events: Vec<Value> = data
                .events
                .iter()
                .filter(|(c, _)| *c > after)
                .take(limit as usize)
                .map(|(c, run)| json!({"cursor": c, "type": "agent_update", "data": run}))
                .collect();
            let cursor = events
                .last()
                .map_or(after, |e| e["cursor"].as_u64().unwrap());
            ok(json!({"cursor": cursor, "events": events}))
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such route"),
    }
}

fn ok(body: Value) -> Response<Full<Bytes>> {
    respond(StatusCode::OK, body)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    respond(status, json!({"error": {"code": code, "message": message}}))
}

fn respond(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}
