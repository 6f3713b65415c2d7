//! Concurrency and durability: many writers on one database, and a SIGKILL mid-load.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orchestrator_e2e::{spawn_up, TestApp};
use serde_json::{json, Value as Json};

const WRITERS: usize = 8;
const ROUNDS: usize = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_writers_readers_and_long_polls_share_one_database_without_errors() {
    let app = Arc::new(TestApp::start().await);
    // Long-polls held open during the whole load must not starve writers.
    let polls: Vec<_> = (0..4)
        .map(|_| {
            let (client, url) = (
                app.client.clone(),
                app.url("/api/events?after=999999999&wait=3"),
            );
            tokio::spawn(async move { client.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..ROUNDS * 2 {
                    statuses.push(
                        app.get("/api/runtime/agents?limit=100")
                            .await
                            .status()
                            .as_u16(),
                    );
                    statuses.push(app.get("/api/runtime/logs").await.status().as_u16());
                }
                statuses
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut acked: Vec<(String, String)> = Vec::new();
                let mut statuses = Vec::new();
                for i in 0..ROUNDS {
                    let r = app
                        .post("/api/agents", json!({ "name": format!("w{w}-{i}"), "agent_type": "builder" }))
                        .await;
                    statuses.push(r.status().as_u16());
                    if r.status() != 201 {
                        continue;
                    }
                    let def: Json = r.json().await.unwrap();
                    let r = app
                        .post(
                            "/api/runtime/agents",
                            json!({ "orchestrator_agent_id": def["id"], "session_id": format!("w{w}") }),
                        )
                        .await;
                    statuses.push(r.status().as_u16());
                    let run: Json = r.json().await.unwrap();
                    let path = format!("/api/runtime/agents/{}", run["id"].as_str().unwrap());
                    let mut last = "initializing".to_owned();
                    for status in ["planning", "executing"] {
                        let r = app.patch(&path, json!({ "status": status })).await;
                        statuses.push(r.status().as_u16());
                        if r.status() == 200 {
                            last = status.to_owned();
                        }
                    }
                    acked.push((run["id"].as_str().unwrap().to_owned(), last));
                }
                (acked, statuses)
            })
        })
        .collect();

    let mut acked = HashMap::new();
    let mut statuses = Vec::new();
    for writer in writers {
        let (runs, s) = writer.await.unwrap();
        acked.extend(runs);
        statuses.extend(s);
    }
    for reader in readers {
        statuses.extend(reader.await.unwrap());
    }
    for poll in polls {
        statuses.push(poll.await.unwrap());
    }
    let failures: Vec<_> = statuses.iter().filter(|s| **s >= 300).collect();
    assert!(
        failures.is_empty(),
        "non-2xx answers under load: {failures:?}"
    );
    assert_eq!(acked.len(), WRITERS * ROUNDS);
    for (id, status) in &acked {
        let run: Json = app
            .get(&format!("/api/runtime/agents/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(&run["status"], status, "acknowledged write lost for {id}");
    }
    let feed: Json = app
        .get("/api/events?limit=1000")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        feed["events"].as_array().unwrap().len(),
        WRITERS * ROUNDS * 3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkill_mid_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kill.db");
    let mut served = spawn_up(&db, "127.0.0.1:0");
    let client = reqwest::Client::new();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (client, base, acked, stop) = (
                client.clone(),
                served.base.clone(),
                acked.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let sent = client
                        .post(format!("{base}/api/agents"))
                        .json(&json!({ "name": format!("k{w}-{i}"), "agent_type": "tester" }))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 201 => {
                            if let Ok(body) = r.json::<Json>().await {
                                acked
                                    .lock()
                                    .unwrap()
                                    .push(body["id"].as_str().unwrap().to_owned());
                            }
                        }
                        // The kill cuts requests off mid-flight: those were never acknowledged.
                        _ => break,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    served.child.kill().expect("SIGKILL");
    served.child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "the load ran ({} writes)", acked.len());

    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);

    let mut restarted = spawn_up(&db, "127.0.0.1:0");
    for id in &acked {
        let r = client
            .get(format!("{}/api/agents/{id}", restarted.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged definition {id} lost");
    }
    restarted.child.kill().unwrap();
    restarted.child.wait().unwrap();
}
