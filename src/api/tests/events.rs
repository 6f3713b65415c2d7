use std::time::{Duration, Instant};

use serde_json::json;

use super::{assert_error, App};

#[test]
fn the_feed_carries_every_status_change_in_cursor_order() {
    let app = App::new();
    let run = app.run();
    let path = format!("/api/runtime/agents/{}", run["id"].as_str().unwrap());
    for status in ["planning", "executing", "completed"] {
        app.patch(&path, json!({ "status": status }));
    }
    let feed = app.get("/api/events").json_body();
    let events = feed["events"].as_array().unwrap();
    let statuses: Vec<_> = events.iter().map(|e| e["data"]["status"].clone()).collect();
    assert_eq!(
        statuses,
        [
            json!("initializing"),
            json!("planning"),
            json!("executing"),
            json!("completed")
        ]
    );
    assert!(events
        .windows(2)
        .all(|w| w[0]["cursor"].as_i64() < w[1]["cursor"].as_i64()));
    assert_eq!(feed["cursor"], events[3]["cursor"]);
    assert_eq!(events[0]["type"], "agent_update");
    assert_eq!(events[3]["data"], app.get(&path).json_body());

    // Resuming from a cursor sees exactly what came after it.
    let after = events[1]["cursor"].as_i64().unwrap();
    let rest = app.get(&format!("/api/events?after={after}")).json_body();
    assert_eq!(rest["events"].as_array().unwrap().len(), 2);
    // Past the head: empty, and the cursor stays where the client was.
    let past = app.get("/api/events?after=999999").json_body();
    assert_eq!(past, json!({ "cursor": 999999, "events": [] }));
    let limited = app.get("/api/events?limit=1").json_body();
    assert_eq!(limited["events"].as_array().unwrap().len(), 1);
}

#[test]
fn an_empty_long_poll_waits_then_answers_empty() {
    let app = App::new();
    let started = Instant::now();
    let feed = app.get("/api/events?wait=1").json_body();
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(feed, json!({ "cursor": 0, "events": [] }));
}

#[test]
fn bad_feed_parameters_are_400() {
    let app = App::new();
    for q in [
        "after=-1",
        "after=x",
        "wait=31",
        "wait=-1",
        "limit=0",
        "limit=1001",
    ] {
        assert_error(&app.get(&format!("/api/events?{q}")), 400, "bad_request");
    }
}

#[test]
fn the_snapshot_holds_active_runs_and_the_head_cursor() {
    let app = App::new();
    let active = app.run();
    let done = app.run();
    app.patch(
        &format!("/api/runtime/agents/{}", done["id"].as_str().unwrap()),
        json!({ "status": "cancelled" }),
    );
    let snapshot = app.get("/api/events/snapshot").json_body();
    assert_eq!(snapshot["data"], json!([active]));
    let head = app.get("/api/events").json_body()["cursor"].clone();
    assert_eq!(snapshot["cursor"], head);
}
