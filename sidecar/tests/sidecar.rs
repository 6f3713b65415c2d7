//! The sidecar against an in-process mock of the API's feed, through real sockets and a
//! real WebSocket client. Intervals are short settings; waits are for conditions.
//! Over 600 lines on purpose: one mock feed serves every scenario; each test is one
//! behaviour a WebSocket client sees.

mod mock;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mock::Mock;
use orchestrator_sidecar::{raise_open_file_limit, Sidecar, SidecarConfig};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any single expected thing may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Test settings: short long-poll and backoff, no heartbeat unless a test wants one.
fn config(mock: &Mock) -> SidecarConfig {
    let mut config = SidecarConfig::new(mock.url(), "127.0.0.1:0".parse().unwrap());
    config.heartbeat = Duration::from_secs(60);
    config.poll_wait = Duration::from_secs(1);
    config.backoff_min = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(100);
    config
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(config: SidecarConfig) -> Running {
    init_tracing();
    let sidecar = Sidecar::start(config).await.unwrap();
    let addr = sidecar.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(sidecar.serve(async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

async fn connect(addr: SocketAddr, query: &str) -> Ws {
    let url = format!("ws://{addr}/ws/agent-status{query}");
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws
}

/// A handshake with extra headers; Err is the HTTP status and JSON body of a refusal.
async fn try_connect(
    addr: SocketAddr,
    query: &str,
    headers: &[(&str, &str)],
) -> Result<Ws, (u16, Value)> {
    let mut request = format!("ws://{addr}/ws/agent-status{query}")
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            Err((
                response.status().as_u16(),
                serde_json::from_slice(&body).unwrap(),
            ))
        }
        Err(other) => panic!("unexpected handshake error: {other}"),
    }
}

/// The next JSON text message (pings and pongs skipped).
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a message in time")
            .expect("the socket stays open")
            .expect("a valid frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Reads `n` messages and checks they are the updates with exactly these cursors.
async fn expect_updates(ws: &mut Ws, cursors: &[u64]) -> Vec<Value> {
    let mut got = Vec::new();
    for &cursor in cursors {
        let message = next_json(ws).await;
        let text = short(&message);
        assert_eq!(message["type"], "agent_update", "{text}");
        assert_eq!(message["cursor"], cursor, "{text}");
        assert_eq!(message["data"]["cursor_seen"], cursor, "{text}");
        got.push(message);
    }
    got
}

/// A message for an assertion, without the kilobytes of padding some tests use.
fn short(message: &Value) -> String {
    let text = message.to_string();
    if text.len() > 300 {
        format!("{}…", &text[..300])
    } else {
        text
    }
}

async fn expect_snapshot(ws: &mut Ws, cursor: u64) -> Value {
    let message = next_json(ws).await;
    assert_eq!(message["type"], "snapshot", "{message}");
    assert_eq!(message["cursor"], cursor, "{message}");
    message
}

async fn health(addr: SocketAddr) -> Value {
    let response = reqwest::get(format!("http://{addr}/health")).await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Polls `condition` every 10 ms until it holds; fails after PATIENCE.
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for_cursor(addr: SocketAddr, cursor: u64) {
    eventually("the sidecar to reach the cursor", || async {
        let h = health(addr).await;
        h["upstream"] == "connected" && h["cursor"] == cursor
    })
    .await;
}

#[tokio::test]
async fn snapshot_first_then_updates_in_order() {
    let mock = Mock::start(None).await;
    mock.push("a", "running");
    mock.push("b", "running");
    let head = mock.push("b", "completed");
    let sidecar = run(config(&mock)).await;

    let mut ws = connect(sidecar.addr, "").await;
    let snapshot = expect_snapshot(&mut ws, head).await;
    let ids: Vec<&str> = snapshot["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a"], "final runs are not in the snapshot");

    // Four quick events, pushed back to back: all arrive, in order.
    let cursors: Vec<u64> = vec![
        mock.push("a", "busy"),
        mock.push("c", "pending"),
        mock.push("c", "running"),
        mock.push("a", "completed"),
    ];
    let updates = expect_updates(&mut ws, &cursors).await;
    assert_eq!(updates[0]["data"]["status"], "busy");
    assert_eq!(updates[3]["data"]["id"], "a");
    assert!(cursors.windows(2).all(|w| w[0] < w[1]));
    sidecar.shutdown().await.unwrap();
}

#[tokio::test]
async fn snapshot_and_live_stream_join_without_gaps_or_duplicates() {
    // Clients connect while events keep coming: each must get, after its snapshot, exactly
    // the events after the snapshot's cursor.
    let mock = Mock::start(None).await;
    mock.push("a", "running");
    let sidecar = run(config(&mock)).await;
    let mut clients = Vec::new();
    for i in 0..8 {
        mock.push("a", &format!("step{i}"));
        let mut ws = connect(sidecar.addr, "").await;
        let snapshot = next_json(&mut ws).await;
        assert_eq!(snapshot["type"], "snapshot");
        clients.push((ws, snapshot["cursor"].as_u64().unwrap()));
    }
    let last = mock.push("a", "done");
    for (ws, from) in &mut clients {
        let expected: Vec<u64> = (*from + 1..=last).collect();
        expect_updates(ws, &expected).await;
    }
}

#[tokio::test]
async fn two_clients_both_get_every_event() {
    let mock = Mock::start(None).await;
    let sidecar = run(config(&mock)).await;
    let mut one = connect(sidecar.addr, "").await;
    let mut two = connect(sidecar.addr, "").await;
    expect_snapshot(&mut one, 0).await;
    expect_snapshot(&mut two, 0).await;
    let cursors: Vec<u64> = (0..50)
        .map(|i| mock.push(&format!("r{i}"), "running"))
        .collect();
    expect_updates(&mut one, &cursors).await;
    expect_updates(&mut two, &cursors).await;
}

#[tokio::test]
async fn after_replays_exactly_what_was_missed() {
    let mock = Mock::start(None).await;
    // Before the sidecar starts: only the upstream has these.
    let early: Vec<u64> = (0..3)
        .map(|i| mock.push(&format!("e{i}"), "running"))
        .collect();
    let sidecar = run(config(&mock)).await;
    wait_for_cursor(sidecar.addr, early[2]).await;
    // After: these are in the sidecar's buffer.
    let mut watcher = connect(sidecar.addr, "").await;
    expect_snapshot(&mut watcher, early[2]).await;
    mock.skip_cursors(5);
    let later: Vec<u64> = (0..3)
        .map(|i| mock.push(&format!("l{i}"), "running"))
        .collect();
    expect_updates(&mut watcher, &later).await;

    // From the buffer only.
    let mut from_buffer = connect(sidecar.addr, &format!("?after={}", later[0])).await;
    expect_updates(&mut from_buffer, &later[1..]).await;

    // Older than the buffer: from the upstream (a catch-up read), then live.
    let reads_before = mock.plain_reads();
    let mut from_upstream = connect(sidecar.addr, &format!("?after={}", early[0])).await;
    let mut expected = early[1..].to_vec();
    expected.extend(&later);
    expect_updates(&mut from_upstream, &expected).await;
    assert!(mock.plain_reads() > reads_before, "used a catch-up read");

    // Everyone continues live, without duplicates.
    let next = mock.push("x", "running");
    for ws in [&mut watcher, &mut from_buffer, &mut from_upstream] {
        expect_updates(ws, &[next]).await;
    }
}

#[tokio::test]
async fn after_beyond_a_small_buffer_catches_up_from_upstream() {
    let mock = Mock::start(None).await;
    let mut config = config(&mock);
    config.replay_buffer = 4;
    let sidecar = run(config).await;
    wait_for_cursor(sidecar.addr, 0).await;
    let mut cursors = Vec::new();
    for i in 0..1500 {
        if i % 100 == 7 {
            mock.skip_cursors(3);
        }
        cursors.push(mock.push(&format!("r{}", i % 10), "running"));
    }
    wait_for_cursor(sidecar.addr, *cursors.last().unwrap()).await;
    // Needs two catch-up reads of 1000, then the ring's last 4 events.
    let mut ws = connect(sidecar.addr, &format!("?after={}", cursors[2])).await;
    expect_updates(&mut ws, &cursors[3..]).await;
    let next = mock.push("z", "running");
    expect_updates(&mut ws, &[next]).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_without_slowing_the_others() {
    let mock = Mock::start(None).await;
    let mut config = config(&mock);
    config.client_buffer = 8;
    let sidecar = run(config).await;
    let mut reader = connect(sidecar.addr, "").await;
    expect_snapshot(&mut reader, 0).await;
    let _idle = connect(sidecar.addr, "").await; // never read again
    eventually("two clients", || async {
        health(sidecar.addr).await["clients"] == 2
    })
    .await;

    // Big events fill the idle client's socket buffers; the reader gets each round in time.
    let mut dropped = false;
    for _round in 0..200 {
        let cursors: Vec<u64> = (0..10)
            .map(|_| mock.push_padded("big", "running", 32 << 10))
            .collect();
        tokio::time::timeout(
            Duration::from_secs(5),
            expect_updates(&mut reader, &cursors),
        )
        .await
        .expect("the reading client is not held up by the idle one");
        if health(sidecar.addr).await["clients"] == 1 {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the idle client was dropped");
    let next = mock.push("small", "running");
    expect_updates(&mut reader, &[next]).await;
}

#[tokio::test]
async fn upstream_going_away_is_reported_once_and_nothing_is_lost() {
    let mock = Mock::start(None).await;
    let sidecar = run(config(&mock)).await;
    let mut ws = connect(sidecar.addr, "").await;
    expect_snapshot(&mut ws, 0).await;
    let first = mock.push("a", "running");
    expect_updates(&mut ws, &[first]).await;

    mock.stop();
    let error = next_json(&mut ws).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "upstream_unavailable");
    assert!(error["message"].as_str().unwrap().contains("cannot reach"));
    assert_eq!(health(sidecar.addr).await["upstream"], "unavailable");
    let missed: Vec<u64> = (0..3).map(|_| mock.push("a", "busy")).collect();
    // Let the sidecar retry many times (backoff tops out at 100 ms): none of the retries may
    // produce a second error message.
    tokio::time::sleep(Duration::from_millis(700)).await;
    mock.resume().await;

    expect_updates(&mut ws, &missed).await;
    let after = mock.push("a", "completed");
    expect_updates(&mut ws, &[after]).await;
    assert_eq!(health(sidecar.addr).await["upstream"], "connected");
}

#[tokio::test]
async fn upstream_errors_are_reported_once_per_client() {
    let mock = Mock::start(None).await;
    let sidecar = run(config(&mock)).await;
    let mut early = connect(sidecar.addr, "").await;
    expect_snapshot(&mut early, 0).await;

    mock.set_failing(true);
    let error = next_json(&mut early).await;
    assert_eq!(error["code"], "upstream_unavailable");
    assert!(
        error["message"].as_str().unwrap().contains("503"),
        "{error}"
    );
    // A client connecting during the outage is told once too (its snapshot read fails).
    let mut late = connect(sidecar.addr, "").await;
    let error = next_json(&mut late).await;
    assert_eq!(error["code"], "upstream_unavailable");
    let seen = mock.failed_answers();
    eventually("many failed retries", || async {
        mock.failed_answers() >= seen + 10
    })
    .await;
    let missed: Vec<u64> = (0..2).map(|_| mock.push("a", "running")).collect();
    mock.set_failing(false);

    expect_updates(&mut early, &missed).await;
    // The late client gets its snapshot once the upstream answers, then only newer events.
    let snapshot = next_json(&mut late).await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    let from = snapshot["cursor"].as_u64().unwrap();
    let next = mock.push("a", "completed");
    let expected: Vec<u64> = missed
        .iter()
        .copied()
        .filter(|c| *c > from)
        .chain([next])
        .collect();
    expect_updates(&mut late, &expected).await;
    expect_updates(&mut early, &[next]).await;
}

#[tokio::test]
async fn a_client_whose_own_reads_fail_is_told_once() {
    // The feed works (the poller is fine) but snapshots fail: the client is told once,
    // keeps its socket, and gets its snapshot when they work again.
    let mock = Mock::start(None).await;
    let sidecar = run(config(&mock)).await;
    wait_for_cursor(sidecar.addr, 0).await;
    mock.set_failing_snapshots(true);
    let mut ws = connect(sidecar.addr, "").await;
    let error = next_json(&mut ws).await;
    assert_eq!(error["code"], "upstream_unavailable", "{error}");
    let seen = mock.failed_answers();
    eventually("more failed snapshots", || async {
        mock.failed_answers() >= seen + 5
    })
    .await;
    mock.set_failing_snapshots(false);
    let cursor = mock.push("a", "running");
    let snapshot = next_json(&mut ws).await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    if snapshot["cursor"] != cursor {
        expect_updates(&mut ws, &[cursor]).await;
    }
    let next = mock.push("a", "completed");
    expect_updates(&mut ws, &[next]).await;
}

#[tokio::test]
async fn one_upstream_long_poll_whatever_the_number_of_clients() {
    let mock = Mock::start(None).await;
    let sidecar = run(config(&mock)).await;
    let mut clients = Vec::new();
    for _ in 0..6 {
        let mut ws = connect(sidecar.addr, "").await;
        expect_snapshot(&mut ws, 0).await;
        clients.push(ws);
    }
    for round in 0..3 {
        let cursor = mock.push("a", &format!("s{round}"));
        for ws in &mut clients {
            expect_updates(ws, &[cursor]).await;
        }
        // Let a long-poll run to its deadline (1 s) now and then, too.
        if round == 1 {
            tokio::time::sleep(Duration::from_millis(1200)).await;
        }
    }
    assert_eq!(mock.max_long_polls(), 1);
}

#[tokio::test]
async fn a_token_is_required_when_configured() {
    let mock = Mock::start(Some("s3cret")).await;
    let mut config = config(&mock);
    config.token = Some("s3cret".into());
    let sidecar = run(config).await;

    let (status, body) = try_connect(sidecar.addr, "", &[]).await.unwrap_err();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = try_connect(sidecar.addr, "", &[("authorization", "Bearer wrong")])
        .await
        .unwrap_err();
    assert_eq!(status, 401);
    let (status, _) = try_connect(sidecar.addr, "?token=s3cre", &[])
        .await
        .unwrap_err();
    assert_eq!(status, 401);

    // With the header, or the query parameter: works, and the upstream got the token too.
    let mut ws = try_connect(sidecar.addr, "", &[("authorization", "Bearer s3cret")])
        .await
        .unwrap();
    expect_snapshot(&mut ws, 0).await;
    let mut ws2 = try_connect(sidecar.addr, "?token=s3cret", &[])
        .await
        .unwrap();
    expect_snapshot(&mut ws2, 0).await;
    let cursor = mock.push("a", "running");
    expect_updates(&mut ws, &[cursor]).await;
    expect_updates(&mut ws2, &[cursor]).await;
    assert_eq!(mock.unauthorized(), 0);
    // /health needs no token.
    assert_eq!(health(sidecar.addr).await["status"], "ok");
}

#[tokio::test]
async fn origins_outside_the_allowed_list_are_refused() {
    let mock = Mock::start(None).await;
    let mut config = config(&mock);
    config.allowed_origins = vec!["http://localhost:5173".into()];
    let sidecar = run(config).await;

    let (status, body) = try_connect(sidecar.addr, "", &[("origin", "http://evil.example")])
        .await
        .unwrap_err();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let mut allowed = try_connect(sidecar.addr, "", &[("origin", "http://localhost:5173")])
        .await
        .unwrap();
    expect_snapshot(&mut allowed, 0).await;
    let mut no_origin = try_connect(sidecar.addr, "", &[]).await.unwrap();
    expect_snapshot(&mut no_origin, 0).await;
}

#[tokio::test]
async fn a_page_served_by_the_api_itself_may_connect() {
    // The dashboard at the API's own address (http://127.0.0.1:PORT, also reached as
    // localhost) opens the WebSocket with that origin; no configuration names it.
    let mock = Mock::start(None).await;
    let mut config = config(&mock);
    config.allowed_origins = vec![];
    let sidecar = run(config).await;
    let port = mock.addr.port();
    for origin in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ] {
        let mut ws = try_connect(sidecar.addr, "", &[("origin", origin.as_str())])
            .await
            .unwrap_or_else(|e| panic!("{origin} refused: {e:?}"));
        expect_snapshot(&mut ws, 0).await;
    }
    // Another port on the same machine is another site.
    let other = format!("http://127.0.0.1:{}", port.wrapping_add(1));
    let (status, _) = try_connect(sidecar.addr, "", &[("origin", other.as_str())])
        .await
        .unwrap_err();
    assert_eq!(status, 403);
}

#[tokio::test]
async fn health_and_errors_for_other_requests() {
    let mock = Mock::start(None).await;
    let cursor = mock.push("a", "running");
    let sidecar = run(config(&mock)).await;
    wait_for_cursor(sidecar.addr, cursor).await;
    let h = health(sidecar.addr).await;
    assert_eq!(
        h,
        serde_json::json!({"status": "ok", "upstream": "connected", "cursor": cursor, "clients": 0, "poll_wait_secs": 1})
    );
    let mut ws = connect(sidecar.addr, "").await;
    expect_snapshot(&mut ws, cursor).await;
    assert_eq!(health(sidecar.addr).await["clients"], 1);
    ws.close(None).await.unwrap();
    eventually("the client to be gone", || async {
        health(sidecar.addr).await["clients"] == 0
    })
    .await;

    let http = reqwest::Client::new();
    let response = http
        .get(format!("http://{}/nope", sidecar.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    // The WebSocket path without an upgrade.
    let response = http
        .get(format!("http://{}/ws/agent-status", sidecar.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 426);
    let response = http
        .get(format!("http://{}/ws/agent-status?after=-1", sidecar.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn heartbeats_and_pings_fill_silences() {
    let mock = Mock::start(None).await;
    let mut config = config(&mock);
    config.heartbeat = Duration::from_millis(150);
    let sidecar = run(config).await;
    let mut ws = connect(sidecar.addr, "").await;
    expect_snapshot(&mut ws, 0).await;
    let (mut heartbeat, mut ping) = (false, false);
    while !(heartbeat && ping) {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match frame {
            Message::Text(text) => {
                assert_eq!(text, r#"{"type":"heartbeat"}"#);
                heartbeat = true;
            }
            Message::Ping(_) => ping = true,
            other => panic!("unexpected {other:?}"),
        }
    }
    // An event still arrives between heartbeats.
    let cursor = mock.push("a", "running");
    loop {
        let message = next_json(&mut ws).await;
        if message["type"] != "heartbeat" {
            assert_eq!(message["cursor"], cursor);
            break;
        }
    }
}

#[tokio::test]
async fn shutdown_closes_clients_and_returns() {
    let mock = Mock::start(None).await;
    let sidecar = run(config(&mock)).await;
    let mut ws = connect(sidecar.addr, "").await;
    expect_snapshot(&mut ws, 0).await;
    let addr = sidecar.addr;
    sidecar.shutdown().await.unwrap();
    match tokio::time::timeout(PATIENCE, ws.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn a_port_in_use_is_a_one_line_error_naming_the_address() {
    let mock = Mock::start(None).await;
    let first = run(config(&mock)).await;
    let mut config = config(&mock);
    config.listen = first.addr;
    let error = Sidecar::start(config)
        .await
        .err()
        .expect("the port is taken");
    let text = error.to_string();
    assert!(text.contains(&first.addr.to_string()), "{text}");
    assert!(!text.contains('\n'), "{text}");
}

#[tokio::test]
async fn bad_settings_are_refused_at_start() {
    let mock = Mock::start(None).await;
    let mut bad = config(&mock);
    bad.poll_wait = Duration::from_secs(31);
    assert!(Sidecar::start(bad).await.is_err());
    let mut bad = config(&mock);
    bad.token = Some(String::new());
    assert!(Sidecar::start(bad).await.is_err());
    let mut bad = config(&mock);
    bad.upstream = "not a url".into();
    assert!(Sidecar::start(bad).await.is_err());
}

#[test]
fn the_open_file_limit_can_be_raised() {
    let limit = raise_open_file_limit().unwrap();
    assert!(limit >= 1024, "{limit}");
}

#[tokio::test]
async fn a_client_sending_close_is_released() {
    let mock = Mock::start(None).await;
    let sidecar = run(config(&mock)).await;
    let mut ws = connect(sidecar.addr, "").await;
    expect_snapshot(&mut ws, 0).await;
    ws.send(Message::Close(None)).await.unwrap();
    // The server answers the close handshake.
    loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("{e}"),
        }
    }
    eventually("no clients", || async {
        health(sidecar.addr).await["clients"] == 0
    })
    .await;
}

/// Asserts that nothing but pings/pongs arrives within `quiet`.
async fn expect_silence(ws: &mut Ws, quiet: Duration) {
    let until = tokio::time::Instant::now() + quiet;
    loop {
        match tokio::time::timeout_at(until, ws.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => panic!("expected silence, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_long_poll_ended_by_the_api_deadline_is_an_empty_answer_not_an_outage() {
    let mock = Mock::start(None).await;
    // A host whose request deadline (2 s) is shorter than the sidecar's 25 s wait.
    mock.set_deadline(Some(Duration::from_secs(2)));
    let mut config = config(&mock);
    config.poll_wait = Duration::from_secs(25);
    let sidecar = run(config).await;
    let mut ws = connect(sidecar.addr, "").await;
    expect_snapshot(&mut ws, 0).await;

    eventually("the first poll to end at the deadline", || async {
        mock.deadline_answers() >= 1
    })
    .await;
    eventually("the wait to shrink under the deadline", || async {
        health(sidecar.addr).await["poll_wait_secs"] == 1
    })
    .await;
    // Several 1 s polls go by, each ended by its own wait: no error reaches the client.
    expect_silence(&mut ws, Duration::from_millis(2_500)).await;
    assert_eq!(
        mock.deadline_answers(),
        1,
        "the learnt wait ends before the deadline"
    );
    let health = health(sidecar.addr).await;
    assert_eq!(health["upstream"], "connected", "{health}");

    let sent = std::time::Instant::now();
    let cursor = mock.push("a", "running");
    expect_updates(&mut ws, &[cursor]).await;
    let took = sent.elapsed();
    println!("event after the learnt wait arrived in {took:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[tokio::test]
async fn a_deadline_under_a_second_is_checked_with_a_poll_that_does_not_wait() {
    let mock = Mock::start(None).await;
    mock.set_deadline(Some(Duration::from_millis(300)));
    let sidecar = run(config(&mock)).await;
    let mut ws = connect(sidecar.addr, "").await;
    expect_snapshot(&mut ws, 0).await;
    eventually("polls ended by the deadline", || async {
        mock.deadline_answers() >= 3
    })
    .await;
    let reads = mock.plain_reads();
    eventually("a wait=0 check after each of them", || async {
        mock.plain_reads() > reads
    })
    .await;
    expect_silence(&mut ws, Duration::from_millis(500)).await;
    assert_eq!(health(sidecar.addr).await["upstream"], "connected");
    let cursor = mock.push("a", "running");
    expect_updates(&mut ws, &[cursor]).await;
}
