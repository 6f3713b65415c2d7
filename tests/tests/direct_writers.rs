//! Another program (here: rusqlite from the test, as the Python ADW scripts would) writes
//! every odd-but-admitted row straight into the database file while the app serves it:
//! every endpoint, the long-poll, the snapshot, SSE and the WebSocket keep answering, and
//! the next API change still comes through the feed.

use std::time::{Duration, Instant};

use futures::StreamExt;
use orchestrator_e2e::TestApp;
use orchestrator_sidecar::{Sidecar, SidecarConfig};
use serde_json::{json, Value as Json};
use tokio_tungstenite::tungstenite::Message;

const SCRIPT_DEF: &str = "0b0e8a1c-4c44-4d2e-9a57-1f7a0d2c0001";
const SCRIPT_RUN: &str = "0b0e8a1c-4c44-4d2e-9a57-1f7a0d2c0002";
const SCRIPT_PROMPT: &str = "0b0e8a1c-4c44-4d2e-9a57-1f7a0d2c0003";
const BAD_PROMPT: &str = "0b0e8a1c-4c44-4d2e-9a57-1f7a0d2c0004";
const GONE_RUN: &str = "0b0e8a1c-4c44-4d2e-9a57-1f7a0d2c0005";

/// What the other program writes, with foreign keys off as Python's sqlite3 leaves them
/// (the bundled SQLite of rusqlite turns them on by default, so say it).
fn write_odd_rows(db: &std::path::Path, api_run: &str, api_def: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    let script = format!(
        "BEGIN IMMEDIATE;
         INSERT INTO orchestrator_agents (id, name, agent_type, capabilities, created_at, updated_at)
           VALUES ('{SCRIPT_DEF}', 'adw-script', 'planner', '[1, {{\"k\": \"v\"}}]',
                   datetime('now'), datetime('now'));
         INSERT INTO agents (id, orchestrator_agent_id, session_id, status, context, config, started_at)
           VALUES ('{SCRIPT_RUN}', '{SCRIPT_DEF}', 'adw-1', 'executing', '[1, 2]', '\"text\"',
                   datetime('now'));
         INSERT INTO prompts (id, agent_id, prompt_type, prompt_text, created_at, completed_at)
           VALUES ('{SCRIPT_PROMPT}', '{SCRIPT_RUN}', 'adw', 'plan it', datetime('now'), datetime('now'));
         INSERT INTO prompts (id, agent_id, prompt_type, prompt_text, cost_usd, created_at)
           VALUES ('{BAD_PROMPT}', '{SCRIPT_RUN}', 'adw', 'odd', 'abc', datetime('now'));
         INSERT INTO system_logs (component, message, details, created_at)
           VALUES ('adw', 'started', '\"just a string\"', datetime('now'));
         INSERT INTO agent_logs (agent_id, log_type, message, details, created_at)
           VALUES ('{api_run}', 'milestone', 'm', '[\"not\", \"an\", \"object\"]', datetime('now'));
         INSERT INTO agent_logs (agent_id, log_type, message, details, created_at)
           VALUES ('{api_run}', 'state_change', 'null details', NULL, datetime('now'));
         INSERT INTO agent_logs (agent_id, log_type, message, details, created_at)
           VALUES ('{SCRIPT_RUN}', 'state_change', 'scalar details', '5', datetime('now'));
         INSERT INTO agent_logs (agent_id, log_type, message, details, created_at)
           VALUES ('{GONE_RUN}', 'state_change', 'its run is gone', NULL, datetime('now'));
         UPDATE orchestrator_agents SET name = 'renamed-behind-the-api' WHERE id = '{api_def}';
         COMMIT;"
    );
    conn.execute_batch(&script).unwrap();
    conn.query_row("SELECT MAX(id) FROM agent_logs", [], |r| r.get(0))
        .unwrap()
}

async fn ok_json(app: &TestApp, path: &str) -> Json {
    let r = app.get(path).await;
    let status = r.status();
    let body: Json = r.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn is_rfc3339_ms(v: &Json) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.'
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_other_programs_write_break_no_endpoint_and_the_feed_flows_past_them() {
    let app = TestApp::start_with(|c| {
        c.variables.insert("sse_max_seconds".into(), "1".into());
    })
    .await;
    // The WebSocket sidecar follows the API from before the odd rows arrive.
    let mut sidecar = SidecarConfig::new(app.base.clone(), "127.0.0.1:0".parse().unwrap());
    sidecar.poll_wait = Duration::from_secs(5);
    let sidecar = Sidecar::start(sidecar).await.unwrap();
    let ws_url = format!("ws://{}/ws/agent-status", sidecar.local_addr());
    tokio::spawn(sidecar.serve(std::future::pending()));

    let run = app.new_run().await;
    let run_id = run["id"].as_str().unwrap().to_owned();
    let def_id = run["orchestrator_agent_id"].as_str().unwrap().to_owned();
    let start = ok_json(&app, "/api/events").await["cursor"]
        .as_i64()
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .unwrap();

    let last_written = write_odd_rows(&app.db_path, &run_id, &def_id);

    // Every list and get answers 200, in the API's shapes.
    let defs = ok_json(&app, "/api/agents").await;
    assert_eq!(defs.as_array().unwrap().len(), 2, "{defs}");
    let def = ok_json(&app, &format!("/api/agents/{SCRIPT_DEF}")).await;
    assert_eq!(def["capabilities"], json!([1, { "k": "v" }]));
    assert!(is_rfc3339_ms(&def["created_at"]), "{def}");
    let script_run = ok_json(&app, &format!("/api/runtime/agents/{SCRIPT_RUN}")).await;
    assert_eq!(script_run["context"], json!([1, 2]));
    assert_eq!(script_run["config"], json!("text"));
    assert!(is_rfc3339_ms(&script_run["started_at"]), "{script_run}");
    let renamed = ok_json(&app, &format!("/api/runtime/agents/{run_id}")).await;
    assert_eq!(renamed["agent_name"], "renamed-behind-the-api");
    let prompts = ok_json(&app, "/api/runtime/prompts").await;
    let ids: Vec<&str> = prompts
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [SCRIPT_PROMPT],
        "the unreadable prompt costs itself only"
    );
    let prompt = ok_json(&app, &format!("/api/runtime/prompts/{SCRIPT_PROMPT}")).await;
    assert!(is_rfc3339_ms(&prompt["completed_at"]), "{prompt}");
    assert_eq!(
        app.get(&format!("/api/runtime/prompts/{BAD_PROMPT}"))
            .await
            .status(),
        404
    );
    for path in [
        "/api/runtime/agents",
        "/api/runtime/logs",
        "/api/runtime/logs?source=system",
        "/api/runtime/stats",
        "/api/runtime/sessions",
        "/health",
    ] {
        ok_json(&app, path).await;
    }
    let logs = ok_json(&app, "/api/runtime/logs?limit=1000").await;
    assert!(
        logs.as_array()
            .unwrap()
            .iter()
            .all(|l| is_rfc3339_ms(&l["created_at"])),
        "{logs}"
    );
    // The unreadable row was reported once, naming its id.
    let reports = ok_json(&app, "/api/runtime/logs?source=system&level=WARNING").await;
    let reports: Vec<&Json> = reports
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["details"]["id"] == BAD_PROMPT)
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");

    // The long-poll: the NULL and scalar rows come with the run as it is now, the orphan is
    // skipped, and the cursor is past all of them.
    let feed = ok_json(&app, &format!("/api/events?after={start}")).await;
    let events = feed["events"].as_array().unwrap();
    let data_ids: Vec<&str> = events
        .iter()
        .map(|e| e["data"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(data_ids, [run_id.as_str(), SCRIPT_RUN], "{feed}");
    assert_eq!(feed["cursor"], last_written);
    let snapshot = ok_json(&app, "/api/events/snapshot").await;
    assert!(snapshot["cursor"].as_i64().unwrap() >= last_written);
    assert_eq!(snapshot["data"].as_array().unwrap().len(), 2, "{snapshot}");

    // SSE replays the same events and ends itself.
    let sse = app.get(&format!("/api/events/stream?after={start}")).await;
    assert_eq!(sse.status(), 200);
    let text = sse.text().await.unwrap();
    assert_eq!(text.matches("event: agent_update").count(), 2, "{text}");

    // The next change through the API comes through the long-poll and the WebSocket.
    let moved = app
        .patch(
            &format!("/api/runtime/agents/{run_id}"),
            json!({ "status": "planning" }),
        )
        .await;
    assert_eq!(moved.status(), 200);
    let next = ok_json(
        &app,
        &format!("/api/events?after={}&wait=5", feed["cursor"]),
    )
    .await;
    assert_eq!(next["events"][0]["data"]["status"], "planning", "{next}");

    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen_planning = false;
    while !seen_planning && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(left, ws.next()).await else {
            continue;
        };
        let msg: Json = serde_json::from_str(&text).unwrap();
        assert_ne!(msg["type"], "error", "{msg}");
        seen_planning = msg["type"] == "agent_update"
            && msg["data"]["id"] == run_id.as_str()
            && msg["data"]["status"] == "planning";
    }
    assert!(
        seen_planning,
        "the WebSocket delivered the change after the odd rows"
    );
    app.stop().await;
}
