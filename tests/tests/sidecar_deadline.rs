//! The sidecar in front of the real host with a 2 s request deadline (the host answers a
//! long-poll with 504 at its deadline): 20 s without changes is no outage — no
//! `upstream_unavailable` to clients, `/health` says the upstream is connected — and the
//! next PATCH still reaches a WebSocket client at once.
//!
//! The sidecar is deliberately *not* told the deadline (its wait stays the default 25 s),
//! so it has to learn it from the host's 504.

use std::time::{Duration, Instant};

use futures::StreamExt;
use orchestrator_e2e::TestApp;
use orchestrator_sidecar::{Sidecar, SidecarConfig};
use serde_json::{json, Value as Json};
use tokio_tungstenite::tungstenite::Message;

async fn next_json<S>(ws: &mut S, within: Duration) -> Option<Json>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).ok(),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_request_deadline_is_not_an_outage_for_the_sidecar() {
    let app = TestApp::start_with(|c| c.request_deadline = Duration::from_secs(2)).await;
    let mut config = SidecarConfig::new(app.base.clone(), "127.0.0.1:0".parse().unwrap());
    config.heartbeat = Duration::from_secs(60);
    assert_eq!(
        config.poll_wait,
        Duration::from_secs(25),
        "not told the deadline"
    );
    let sidecar = Sidecar::start(config).await.unwrap();
    let addr = sidecar.local_addr();
    tokio::spawn(sidecar.serve(std::future::pending()));

    let run = app.new_run().await;
    let id = run["id"].as_str().unwrap().to_owned();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/agent-status"))
        .await
        .unwrap();
    let snapshot = next_json(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(snapshot["type"], "snapshot");

    // 20 s of silence: each of the sidecar's long-polls ends at the host's deadline.
    let quiet_until = Instant::now() + Duration::from_secs(20);
    while let Some(left) = quiet_until.checked_duration_since(Instant::now()) {
        if let Some(message) = next_json(&mut ws, left).await {
            assert_ne!(message["type"], "error", "a false outage: {message}");
        }
    }
    let health: Json = reqwest::get(format!("http://{addr}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["upstream"], "connected", "{health}");
    assert!(
        health["poll_wait_secs"].as_f64().unwrap() < 2.0,
        "the wait follows the deadline: {health}"
    );

    let sent = Instant::now();
    let patched = app
        .patch(
            &format!("/api/runtime/agents/{id}"),
            json!({"status": "planning"}),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let update = loop {
        let message = next_json(&mut ws, Duration::from_secs(5))
            .await
            .expect("the next change arrives");
        assert_ne!(message["type"], "error", "{message}");
        if message["type"] == "agent_update" {
            break message;
        }
    };
    let latency = sent.elapsed();
    assert_eq!(update["data"]["id"], id.as_str());
    assert_eq!(update["data"]["status"], "planning");
    println!("PATCH → agent_update after 20 s of silence under a 2 s deadline: {latency:?}");
    assert!(latency < Duration::from_secs(2), "{latency:?}");
}
