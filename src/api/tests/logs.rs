use serde_json::json;

use super::{assert_error, assert_invalid, App};

#[test]
fn agent_and_system_logs_are_written_and_merged_newest_first() {
    let app = App::new();
    let run = app.run();
    let agent_log = app.post(
        "/api/runtime/logs",
        json!({ "source": "agent", "agent_id": run["id"], "log_type": "milestone", "message": "halfway", "details": { "pct": 50 } }),
    );
    assert_eq!(agent_log.status, 201);
    let agent_log = agent_log.json_body();
    assert_eq!(agent_log["log_level"], "INFO");
    assert_eq!(agent_log["details"], json!({ "pct": 50 }));
    assert!(agent_log.get("component").is_none());
    std::thread::sleep(std::time::Duration::from_millis(2));
    let system_log = app
        .post(
            "/api/runtime/logs",
            json!({ "source": "system", "component": "scheduler", "message": "tick", "log_level": "DEBUG" }),
        )
        .json_body();
    assert_eq!(system_log["component"], "scheduler");
    assert!(system_log.get("agent_id").is_none());
    assert!(system_log.get("log_type").is_none());
    assert_eq!(system_log["details"], json!(null));

    let all = app.get("/api/runtime/logs").json_body();
    let all = all.as_array().unwrap();
    // The run's creation state_change, the milestone, the system line.
    assert_eq!(all.len(), 3);
    assert_eq!(all[0], system_log);
    assert_eq!(all[1], agent_log);
    assert_eq!(all[2]["log_type"], "state_change");
}

#[test]
fn log_filters_select_by_source_run_level_and_type() {
    let app = App::new();
    let run = app.run();
    let other = app.run();
    app.post("/api/runtime/logs", json!({ "source": "agent", "agent_id": run["id"], "log_type": "error", "message": "e", "log_level": "ERROR" }));
    app.post(
        "/api/runtime/logs",
        json!({ "source": "system", "component": "c", "message": "s", "log_level": "ERROR" }),
    );
    let n = |q: &str| {
        app.get(&format!("/api/runtime/logs?{q}"))
            .json_body()
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(n(""), 4);
    assert_eq!(n("source=system"), 1);
    assert_eq!(n("source=agent"), 3);
    assert_eq!(n(&format!("agent_id={}", run["id"].as_str().unwrap())), 2);
    assert_eq!(n(&format!("agent_id={}", other["id"].as_str().unwrap())), 1);
    assert_eq!(n("level=ERROR"), 2);
    assert_eq!(n("log_type=state_change"), 2);
    assert_eq!(n("level=ERROR&source=agent"), 1);
    assert_eq!(n("limit=1"), 1);
    assert_eq!(n("limit=2&offset=3"), 1);
}

#[test]
fn bad_log_filters_are_400() {
    let app = App::new();
    for q in [
        "source=both",
        "level=LOUD",
        "log_type=chat",
        "agent_id=7",
        "source=system&agent_id=00000000-0000-4000-8000-000000000000",
        "source=system&log_type=milestone",
    ] {
        assert_error(
            &app.get(&format!("/api/runtime/logs?{q}")),
            400,
            "bad_request",
        );
    }
}

#[test]
fn log_writes_validate_source_fields_and_the_reserved_type() {
    let app = App::new();
    let run = app.run();
    let before = app.dump();
    for (body, field) in [
        (json!({ "message": "m" }), "source"),
        (json!({ "source": "user", "message": "m" }), "source"),
        (
            json!({ "source": "agent", "log_type": "milestone", "message": "m" }),
            "agent_id",
        ),
        (
            json!({ "source": "agent", "agent_id": "00000000-0000-4000-8000-000000000000", "log_type": "milestone", "message": "m" }),
            "agent_id",
        ),
        (
            json!({ "source": "agent", "agent_id": run["id"], "log_type": "state_change", "message": "m" }),
            "log_type",
        ),
        (
            json!({ "source": "agent", "agent_id": run["id"], "log_type": "milestone" }),
            "message",
        ),
        (
            json!({ "source": "agent", "agent_id": run["id"], "log_type": "milestone", "message": "m", "component": "c" }),
            "component",
        ),
        (
            json!({ "source": "agent", "agent_id": run["id"], "log_type": "milestone", "message": "m", "log_level": "LOUD" }),
            "log_level",
        ),
        (json!({ "source": "system", "message": "m" }), "component"),
        (
            json!({ "source": "system", "component": "c", "message": "m", "agent_id": run["id"] }),
            "agent_id",
        ),
        (
            json!({ "source": "system", "component": "c", "message": "m", "log_type": "milestone" }),
            "log_type",
        ),
    ] {
        assert_invalid(&app.post("/api/runtime/logs", body), field);
    }
    assert_eq!(app.dump(), before);
}
