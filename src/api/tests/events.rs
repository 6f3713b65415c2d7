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
    // A single run's GET adds its tree's roll-up; the feed's runs carry none.
    let mut now = app.get(&path).json_body();
    now.as_object_mut().unwrap().remove("tree");
    assert_eq!(events[3]["data"], now);

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

fn short_streams() -> App {
    App::with_config(crate::http::Config {
        sse_max_duration: Duration::from_millis(300),
        sse_keepalive: Duration::from_millis(100),
        ..crate::http::Config::default()
    })
}

#[test]
fn the_sse_stream_replays_from_after_keeps_alive_and_ends_itself() {
    let app = short_streams();
    let run = app.run();
    app.patch(
        &format!("/api/runtime/agents/{}", run["id"].as_str().unwrap()),
        json!({ "status": "planning" }),
    );
    let started = Instant::now();
    let r = app.get("/api/events/stream?after=0");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let text = String::from_utf8(r.body).unwrap();
    let ids: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    assert_eq!(ids.len(), 2, "{text}");
    assert!(text.contains("event: agent_update\ndata: {\"cursor\":"));
    assert!(text.contains(": keep-alive"), "{text}");
    let data: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(data[1]["data"]["status"], "planning");
}

#[test]
fn last_event_id_wins_over_after_and_no_cursor_means_new_events_only() {
    let app = short_streams();
    let run = app.run();
    let path = format!("/api/runtime/agents/{}", run["id"].as_str().unwrap());
    app.patch(&path, json!({ "status": "planning" }));
    let first = app.get("/api/events").json_body()["events"][0]["cursor"]
        .as_i64()
        .unwrap();
    let r = app.send(
        crate::http::Request::new("GET", "/api/events/stream?after=0")
            .with_header("Last-Event-ID", &first.to_string()),
    );
    let text = String::from_utf8(r.body).unwrap();
    assert_eq!(text.matches("id: ").count(), 1, "{text}");
    // Without a cursor the stream starts at the head: nothing old is replayed.
    let text = String::from_utf8(app.get("/api/events/stream").body).unwrap();
    assert_eq!(text.matches("id: ").count(), 0, "{text}");
    let bad = app.send(
        crate::http::Request::new("GET", "/api/events/stream").with_header("Last-Event-ID", "x"),
    );
    assert_error(&bad, 400, "bad_request");
}
