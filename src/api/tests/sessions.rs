//! `/api/runtime/sessions`: runs grouped by `session_id`.

use serde_json::{json, Value as Json};

use super::{assert_error, App};

fn start(app: &App, def: &Json, session: &str) -> Json {
    let r = app.post(
        "/api/runtime/agents",
        json!({ "orchestrator_agent_id": def["id"], "session_id": session }),
    );
    assert_eq!(r.status, 201, "{}", r.json_body());
    r.json_body()
}

fn set_status(app: &App, run: &Json, status: &str) -> Json {
    let r = app.patch(
        &format!("/api/runtime/agents/{}", run["id"].as_str().unwrap()),
        json!({ "status": status }),
    );
    assert_eq!(r.status, 200, "{}", r.json_body());
    r.json_body()
}

fn ids(list: &Json) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect()
}

#[test]
fn sessions_aggregate_their_runs_newest_activity_first() {
    let app = App::new();
    let def = app.definition("d");
    let a1 = start(&app, &def, "adw/1 x");
    std::thread::sleep(std::time::Duration::from_millis(3));
    let b1 = start(&app, &def, "b");
    std::thread::sleep(std::time::Duration::from_millis(3));
    let a2 = start(&app, &def, "adw/1 x");
    let p = app
        .post(
            "/api/runtime/prompts",
            json!({ "agent_id": a1["id"], "prompt_type": "adw", "prompt_text": "x" }),
        )
        .json_body();
    app.patch(
        &format!("/api/runtime/prompts/{}", p["id"].as_str().unwrap()),
        json!({ "tokens_input": 7, "tokens_output": 3, "cost_usd": 0.5 }),
    );
    let a2 = set_status(&app, &a2, "failed");

    let list = app.get("/api/runtime/sessions").json_body();
    assert_eq!(ids(&list), ["adw/1 x", "b"]);
    let a = &list[0];
    assert_eq!(a["runs"], 2);
    assert_eq!(a["active_runs"], 1);
    assert_eq!(a["cost_usd"], json!(0.5));
    assert_eq!(a["tokens_input"], 7);
    assert_eq!(a["tokens_output"], 3);
    assert_eq!(a["started_at"], a1["started_at"]);
    assert_eq!(a["last_activity_at"], a2["last_activity_at"]);
    let by_status = a["agents_by_status"].as_object().unwrap();
    assert_eq!(by_status.len(), 7);
    assert_eq!(by_status["initializing"], 1);
    assert_eq!(by_status["failed"], 1);
    assert_eq!(by_status["completed"], 0);
    assert_eq!(list[1]["runs"], 1);
    assert_eq!(list[1]["cost_usd"], json!(0.0));

    // Activity on b's run moves b to the top.
    std::thread::sleep(std::time::Duration::from_millis(3));
    set_status(&app, &b1, "planning");
    assert_eq!(
        ids(&app.get("/api/runtime/sessions").json_body()),
        ["b", "adw/1 x"]
    );
    let page = app
        .get("/api/runtime/sessions?limit=1&offset=1")
        .json_body();
    assert_eq!(ids(&page), ["adw/1 x"]);
}

#[test]
fn the_active_filter_keeps_sessions_with_or_without_a_running_run() {
    let app = App::new();
    let def = app.definition("d");
    start(&app, &def, "live");
    let done = start(&app, &def, "done");
    set_status(&app, &done, "completed");
    assert_eq!(
        ids(&app.get("/api/runtime/sessions?active=true").json_body()),
        ["live"]
    );
    assert_eq!(
        ids(&app.get("/api/runtime/sessions?active=false").json_body()),
        ["done"]
    );
    for bad in ["active=yes", "active=1", "active=", "limit=0", "offset=-1"] {
        assert_error(
            &app.get(&format!("/api/runtime/sessions?{bad}")),
            400,
            "bad_request",
        );
    }
    assert_eq!(
        app.get("/api/runtime/sessions/live").json_body()["active_runs"],
        1
    );
}

#[test]
fn a_session_detail_lists_its_runs_and_an_unknown_one_is_404() {
    let app = App::new();
    let def = app.definition("d");
    let first = start(&app, &def, "adw/1 x+y");
    std::thread::sleep(std::time::Duration::from_millis(3));
    let second = start(&app, &def, "adw/1 x+y");
    start(&app, &def, "other");

    let r = app.get("/api/runtime/sessions/adw%2F1%20x+y");
    assert_eq!(r.status, 200, "{}", r.json_body());
    let detail = r.json_body();
    assert_eq!(detail["session_id"], "adw/1 x+y");
    assert_eq!(detail["runs"], json!([second, first]));
    assert_eq!(detail["active_runs"], 2);
    assert_eq!(detail["agents_by_status"]["initializing"], 2);
    assert_eq!(detail["started_at"], first["started_at"]);
    assert_eq!(detail["last_activity_at"], second["last_activity_at"]);
    assert_eq!(detail["runs"][0]["agent_name"], "d");

    for unknown in ["/api/runtime/sessions/nope", "/api/runtime/sessions/%FF"] {
        assert_error(&app.get(unknown), 404, "not_found");
    }
    assert_error(
        &app.send(crate::http::Request::new("POST", "/api/runtime/sessions")),
        405,
        "method_not_allowed",
    );
    assert_eq!(
        app.get("/api/runtime/sessions")
            .json_body()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn no_runs_means_no_sessions() {
    let app = App::new();
    assert_eq!(app.get("/api/runtime/sessions").json_body(), json!([]));
}

#[test]
fn openapi_describes_sessions_the_run_display_fields_and_the_new_filters() {
    let doc = App::new().get("/openapi.json").json_body();
    assert!(doc["paths"]["/api/runtime/sessions"]["get"].is_object());
    assert!(doc["paths"]["/api/runtime/sessions/{session_id}"]["get"].is_object());
    let run = &doc["components"]["schemas"]["Run"]["properties"];
    for field in [
        "agent_name",
        "agent_type",
        "tokens_input",
        "tokens_output",
        "last_activity_at",
    ] {
        assert!(run[field].is_object(), "Run lacks {field}");
    }
    let params: Vec<&str> = doc["paths"]["/api/runtime/agents"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        params.contains(&"q") && params.contains(&"since"),
        "{params:?}"
    );
    let session = &doc["components"]["schemas"]["SessionDetail"]["properties"];
    assert_eq!(session["runs"]["type"], "array");
    assert_eq!(
        doc["components"]["schemas"]["Session"]["properties"]["runs"]["type"],
        "integer"
    );
}
