//! The live feed end to end: the real components in the host, the sidecar in front,
//! WebSocket clients on loopback.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use orchestrator_e2e::{free_port, spawn_sidecar, spawn_up, TestApp};
use orchestrator_sidecar::{Sidecar, SidecarConfig};
use serde_json::{json, Value as Json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The app with an in-process sidecar following it; returns the sidecar's ws:// base.
async fn app_with_sidecar() -> (TestApp, String) {
    let app = TestApp::start().await;
    let mut config = SidecarConfig::new(app.base.clone(), "127.0.0.1:0".parse().unwrap());
    config.poll_wait = Duration::from_secs(5);
    let sidecar = Sidecar::start(config).await.unwrap();
    let ws = format!("ws://{}", sidecar.local_addr());
    tokio::spawn(sidecar.serve(std::future::pending()));
    (app, ws)
}

async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("handshake")
        .0
}

/// The next feed message (heartbeats skipped), within `wait`.
async fn next_message(ws: &mut Ws, wait: Duration) -> Json {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .expect("a message before the deadline")
            .expect("the socket is open")
            .expect("a valid frame");
        if let Message::Text(text) = msg {
            let value: Json = serde_json::from_str(&text).unwrap();
            if value["type"] != "heartbeat" {
                return value;
            }
        }
    }
}

/// The next `n` agent updates (errors, e.g. `upstream_unavailable`, are skipped).
async fn updates(ws: &mut Ws, n: usize, wait: Duration) -> Vec<Json> {
    let mut out = Vec::new();
    while out.len() < n {
        let msg = next_message(ws, wait).await;
        if msg["type"] == "agent_update" {
            out.push(msg);
        }
    }
    out
}

fn run_path(run: &Json) -> String {
    format!("/api/runtime/agents/{}", run["id"].as_str().unwrap())
}

fn assert_increasing(events: &[Json]) {
    let cursors: Vec<i64> = events
        .iter()
        .map(|e| e["cursor"].as_i64().unwrap())
        .collect();
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "cursors {cursors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gets_the_snapshot_then_each_change_in_order() {
    let (app, ws_base) = app_with_sidecar().await;
    let run = app.new_run().await;
    let mut ws = connect(&format!("{ws_base}/ws/agent-status")).await;
    let snapshot = next_message(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["data"], json!([run]));
    // Four quick transitions arrive as four events, none merged or lost.
    let statuses = ["planning", "executing", "reviewing", "completed"];
    for status in statuses {
        assert_eq!(
            app.patch(&run_path(&run), json!({ "status": status }))
                .await
                .status(),
            200
        );
    }
    let events = updates(&mut ws, 4, Duration::from_secs(10)).await;
    let seen: Vec<&str> = events
        .iter()
        .map(|e| e["data"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(seen, statuses);
    assert_increasing(&events);
    assert!(events[0]["cursor"].as_i64() > snapshot["cursor"].as_i64());
    // The event is the run as a GET gives it, without the single GET's tree roll-up.
    let mut now = app.get(&run_path(&run)).await.json::<Json>().await.unwrap();
    now.as_object_mut().unwrap().remove("tree");
    assert_eq!(events[3]["data"], now);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_both_get_every_event_and_after_replays_what_was_missed() {
    let (app, ws_base) = app_with_sidecar().await;
    let url = format!("{ws_base}/ws/agent-status");
    let mut a = connect(&url).await;
    let mut b = connect(&url).await;
    let start = next_message(&mut a, Duration::from_secs(10)).await["cursor"]
        .as_i64()
        .unwrap();
    next_message(&mut b, Duration::from_secs(10)).await;
    let run = app.new_run().await;
    for status in ["planning", "executing"] {
        app.patch(&run_path(&run), json!({ "status": status }))
            .await;
    }
    let from_a = updates(&mut a, 3, Duration::from_secs(10)).await;
    let from_b = updates(&mut b, 3, Duration::from_secs(10)).await;
    assert_eq!(from_a, from_b);
    // A client that was away since `start` gets exactly the three events it missed.
    let mut late = connect(&format!("{url}?after={start}")).await;
    let replayed = updates(&mut late, 3, Duration::from_secs(10)).await;
    assert_eq!(replayed, from_a);
    // …and then live ones, without repeats.
    app.patch(&run_path(&run), json!({ "status": "failed" }))
        .await;
    let next = updates(&mut late, 1, Duration::from_secs(10)).await;
    assert_eq!(next[0]["data"]["status"], "failed");
    assert_increasing(&[replayed[2].clone(), next[0].clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_does_not_delay_a_reading_one() {
    let (app, ws_base) = app_with_sidecar().await;
    let url = format!("{ws_base}/ws/agent-status");
    let _idle = connect(&url).await; // never read
    let mut reader = connect(&url).await;
    next_message(&mut reader, Duration::from_secs(10)).await;
    let run = app.new_run().await;
    let started = Instant::now();
    for i in 0..60 {
        let status = ["planning", "executing", "reviewing"][i % 3];
        app.patch(&run_path(&run), json!({ "status": status }))
            .await;
    }
    let events = updates(&mut reader, 61, Duration::from_secs(10)).await;
    assert_increasing(&events);
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_obeys_token_and_origin() {
    let app = TestApp::start_with(|c| {
        c.variables.insert("api_token".into(), "s3cret".into());
    })
    .await;
    let mut config = SidecarConfig::new(app.base.clone(), "127.0.0.1:0".parse().unwrap());
    config.token = Some("s3cret".into());
    let sidecar = Sidecar::start(config).await.unwrap();
    let base = format!("ws://{}/ws/agent-status", sidecar.local_addr());
    tokio::spawn(sidecar.serve(std::future::pending()));
    let refused = tokio_tungstenite::connect_async(base.as_str())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");
    let mut ws = connect(&format!("{base}?token=s3cret")).await;
    assert_eq!(
        next_message(&mut ws, Duration::from_secs(10)).await["type"],
        "snapshot"
    );
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("{base}?token=s3cret")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(refused.to_string().contains("403"), "{refused}");
    let mut req = format!("{base}?token=s3cret")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("origin", "http://localhost:5173".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_and_restarting_the_api_under_a_running_sidecar_loses_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("feed.db");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut api = spawn_up(&db, &listen);
    let sidecar = spawn_sidecar(&api.base, &[]);
    let url = format!("{}/ws/agent-status", sidecar.base);
    let client = reqwest::Client::new();
    let base = api.base.clone();
    let create = |path: &'static str, body: Json| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let r = client
                .post(format!("{base}{path}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Json>().await.unwrap()
        }
    };
    let def = create(
        "/api/agents",
        json!({ "name": "d", "agent_type": "tester" }),
    )
    .await;
    let run = create(
        "/api/runtime/agents",
        json!({ "orchestrator_agent_id": def["id"], "session_id": "s" }),
    )
    .await;
    let mut ws = connect(&url).await;
    let snapshot = next_message(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(snapshot["type"], "snapshot");
    let patch = |status: &'static str| {
        let (client, base, path) = (client.clone(), base.clone(), run_path(&run));
        async move {
            let r = client
                .patch(format!("{base}{path}"))
                .json(&json!({ "status": status }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    patch("planning").await;
    assert_eq!(
        updates(&mut ws, 1, Duration::from_secs(10)).await[0]["data"]["status"],
        "planning"
    );

    api.kill();
    // While the API is down the socket stays open (the sidecar reports the outage).
    let outage = next_message(&mut ws, Duration::from_secs(15)).await;
    assert_eq!(outage["type"], "error");
    assert_eq!(outage["code"], "upstream_unavailable");
    let _api = spawn_up(&db, &listen);
    // Changes made after the restart, and none lost across it.
    patch("executing").await;
    patch("reviewing").await;
    let after = updates(&mut ws, 2, Duration::from_secs(20)).await;
    let seen: Vec<&str> = after
        .iter()
        .map(|e| e["data"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ["executing", "reviewing"]);
    let last_seen = after[1]["cursor"].as_i64().unwrap();

    // The sidecar restarts too; a client coming back with its cursor misses nothing.
    drop(sidecar);
    patch("completed").await;
    let sidecar = spawn_sidecar(&base, &[]);
    let mut back = connect(&format!(
        "{}/ws/agent-status?after={last_seen}",
        sidecar.base
    ))
    .await;
    let missed = updates(&mut back, 1, Duration::from_secs(10)).await;
    assert_eq!(missed[0]["data"]["status"], "completed");
    let _ = ws.close(None).await;
    let _ = back.send(Message::Close(None)).await;
}
