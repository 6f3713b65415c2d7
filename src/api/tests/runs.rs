use serde_json::{json, Value as Json};

use super::{assert_error, assert_invalid, App};

fn path(run: &Json) -> String {
    format!("/api/runtime/agents/{}", run["id"].as_str().unwrap())
}

fn state_changes(app: &App, run: &Json) -> Vec<Json> {
    use crate::db::Database;
    app.connector
        .db()
        .execute(
            "SELECT details FROM agent_logs WHERE agent_id = ?1 AND log_type = 'state_change' ORDER BY id",
            &[run["id"].as_str().unwrap().into()],
        )
        .unwrap()
        .iter()
        .map(|mut r| serde_json::from_str(&r.text(0).unwrap()).unwrap())
        .collect()
}

#[test]
fn a_new_run_starts_initializing_with_a_state_change_from_null() {
    let app = App::new();
    let run = app.run();
    assert_eq!(run["status"], "initializing");
    assert_eq!(run["cost_usd"], json!(0.0));
    assert_eq!(run["completed_at"], json!(null));
    assert_eq!(run["context"], json!({}));
    let changes = state_changes(&app, &run);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["from"], json!(null));
    assert_eq!(changes[0]["to"], "initializing");
    assert_eq!(changes[0]["run"], run);
}

#[test]
fn creating_a_run_validates_fields_and_references() {
    let app = App::new();
    let def = app.definition("d");
    let missing = "00000000-0000-4000-8000-000000000000";
    let cases = [
        (json!({ "session_id": "s" }), "orchestrator_agent_id"),
        (
            json!({ "orchestrator_agent_id": "nope", "session_id": "s" }),
            "orchestrator_agent_id",
        ),
        (
            json!({ "orchestrator_agent_id": missing, "session_id": "s" }),
            "orchestrator_agent_id",
        ),
        (json!({ "orchestrator_agent_id": def["id"] }), "session_id"),
        (
            json!({ "orchestrator_agent_id": def["id"], "session_id": "" }),
            "session_id",
        ),
        (
            json!({ "orchestrator_agent_id": def["id"], "session_id": "s", "parent_agent_id": missing }),
            "parent_agent_id",
        ),
        (
            json!({ "orchestrator_agent_id": def["id"], "session_id": "s", "context": [1] }),
            "context",
        ),
        (
            json!({ "orchestrator_agent_id": def["id"], "session_id": "s", "config": "x" }),
            "config",
        ),
        (
            json!({ "orchestrator_agent_id": def["id"], "session_id": "s", "status": "planning" }),
            "status",
        ),
    ];
    for (body, field) in cases {
        assert_invalid(&app.post("/api/runtime/agents", body), field);
    }
    assert_eq!(app.count("SELECT count(*) FROM agents"), 0);
    assert_eq!(app.count("SELECT count(*) FROM agent_logs"), 0);
}

#[test]
fn a_run_keeps_its_context_config_and_parent() {
    let app = App::new();
    let parent = app.run();
    let r = app.post(
        "/api/runtime/agents",
        json!({
            "orchestrator_agent_id": parent["orchestrator_agent_id"],
            "session_id": "s2",
            "parent_agent_id": parent["id"].as_str().unwrap().to_uppercase(),
            "context": { "task": "build", "n": [1, 2] },
            "config": { "model": "m" }
        }),
    );
    assert_eq!(r.status, 201);
    let child = r.json_body();
    assert_eq!(r.header("location").unwrap(), path(&child));
    assert_eq!(child["parent_agent_id"], parent["id"]);
    assert_eq!(child["context"], json!({ "task": "build", "n": [1, 2] }));
    assert_eq!(child["config"], json!({ "model": "m" }));
    // Deleting the parent keeps the child, with its parent cleared.
    assert_eq!(app.delete(&path(&parent)).status, 204);
    assert_eq!(
        app.get(&path(&child)).json_body()["parent_agent_id"],
        json!(null)
    );
}

#[test]
fn each_status_change_logs_once_with_the_run_after_it() {
    let app = App::new();
    let run = app.run();
    for status in ["planning", "executing", "reviewing", "executing"] {
        let r = app.patch(&path(&run), json!({ "status": status }));
        assert_eq!(r.status, 200);
        assert_eq!(r.json_body()["status"], status);
    }
    let changes = state_changes(&app, &run);
    let moves: Vec<_> = changes
        .iter()
        .map(|c| (c["from"].clone(), c["to"].clone()))
        .collect();
    assert_eq!(
        moves,
        [
            (json!(null), json!("initializing")),
            (json!("initializing"), json!("planning")),
            (json!("planning"), json!("executing")),
            (json!("executing"), json!("reviewing")),
            (json!("reviewing"), json!("executing")),
        ]
    );
    // A single run's GET adds its tree's roll-up; the feed's runs carry none.
    let mut now = app.get(&path(&run)).json_body();
    now.as_object_mut().unwrap().remove("tree");
    assert_eq!(changes[4]["run"], now);
}

#[test]
fn the_same_status_again_is_a_no_op_without_a_log_row() {
    let app = App::new();
    let run = app.run();
    let r = app.patch(&path(&run), json!({ "status": "initializing" }));
    assert_eq!(r.status, 200);
    assert_eq!(r.json_body(), run);
    assert_eq!(state_changes(&app, &run).len(), 1);
}

#[test]
fn entering_a_final_status_sets_completed_at_and_leaving_it_is_409() {
    let app = App::new();
    let run = app.run();
    let done = app
        .patch(&path(&run), json!({ "status": "completed" }))
        .json_body();
    assert!(done["completed_at"].is_string());
    let before = app.dump();
    let r = app.patch(&path(&run), json!({ "status": "executing" }));
    assert_error(&r, 409, "conflict");
    assert_eq!(app.dump(), before);
    // Same final status: a 200 no-op.
    assert_eq!(
        app.patch(&path(&run), json!({ "status": "completed" }))
            .status,
        200
    );
    // A final run's context and error_message may still change.
    let r = app.patch(
        &path(&run),
        json!({ "context": { "note": "post-mortem" }, "error_message": "late" }),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json_body()["context"], json!({ "note": "post-mortem" }));
    assert_eq!(r.json_body()["status"], "completed");
    assert_eq!(state_changes(&app, &run).len(), 2);
}

#[test]
fn patch_accepts_only_status_error_message_and_context() {
    let app = App::new();
    let run = app.run();
    let p = path(&run);
    for (body, field) in [
        (json!({ "cost_usd": 3 }), "cost_usd"),
        (json!({ "session_id": "x" }), "session_id"),
        (json!({ "status": "wizard" }), "status"),
        (json!({ "status": null }), "status"),
        (json!({ "context": "x" }), "context"),
        (json!({ "error_message": 1 }), "error_message"),
    ] {
        assert_invalid(&app.patch(&p, body), field);
    }
    let r = app.patch(&p, json!({ "error_message": "boom" }));
    assert_eq!(r.json_body()["error_message"], "boom");
    let r = app.patch(&p, json!({ "error_message": null, "context": null }));
    assert_eq!(r.json_body()["error_message"], json!(null));
    assert_eq!(r.json_body()["context"], json!({}));
}

#[test]
fn listing_runs_filters_and_orders_newest_first() {
    let app = App::new();
    let a = app.run();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let b = app.run();
    app.patch(&path(&b), json!({ "status": "planning" }));
    let all = app.get("/api/runtime/agents").json_body();
    assert_eq!(all[0]["id"], b["id"]);
    assert_eq!(all[1]["id"], a["id"]);
    let planning = app.get("/api/runtime/agents?status=planning").json_body();
    assert_eq!(planning.as_array().unwrap().len(), 1);
    let by_def = app
        .get(&format!(
            "/api/runtime/agents?orchestrator_agent_id={}",
            a["orchestrator_agent_id"].as_str().unwrap()
        ))
        .json_body();
    assert_eq!(by_def.as_array().unwrap().len(), 1);
    assert_eq!(
        app.get("/api/runtime/agents?session_id=s1")
            .json_body()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        app.get("/api/runtime/agents?session_id=zz").json_body(),
        json!([])
    );
    assert_error(
        &app.get("/api/runtime/agents?status=wizard"),
        400,
        "bad_request",
    );
    assert_error(
        &app.get("/api/runtime/agents?orchestrator_agent_id=x"),
        400,
        "bad_request",
    );
}

#[test]
fn deleting_a_run_cascades_and_unknown_runs_are_404() {
    let app = App::new();
    let run = app.run();
    app.post(
        "/api/runtime/prompts",
        json!({ "agent_id": run["id"], "prompt_type": "adw", "prompt_text": "x" }),
    );
    assert_eq!(app.delete(&path(&run)).status, 204);
    assert_eq!(app.count("SELECT count(*) FROM prompts"), 0);
    assert_eq!(app.count("SELECT count(*) FROM agent_logs"), 0);
    assert_error(&app.delete(&path(&run)), 404, "not_found");
    assert_error(&app.get(&path(&run)), 404, "not_found");
    assert_error(
        &app.patch(&path(&run), json!({ "status": "failed" })),
        404,
        "not_found",
    );
    assert_error(&app.get("/api/runtime/agents/123"), 404, "not_found");
}

#[test]
fn stats_list_every_status_and_every_definition() {
    let app = App::new();
    let idle = app.definition("idle");
    std::thread::sleep(std::time::Duration::from_millis(2));
    let run = app.run();
    let prompt = app
        .post(
            "/api/runtime/prompts",
            json!({ "agent_id": run["id"], "prompt_type": "adw", "prompt_text": "x" }),
        )
        .json_body();
    app.patch(
        &format!("/api/runtime/prompts/{}", prompt["id"].as_str().unwrap()),
        json!({ "cost_usd": 0.25, "tokens_input": 10, "tokens_output": 5 }),
    );
    app.patch(&path(&run), json!({ "status": "failed" }));
    let stats = app.get("/api/runtime/stats").json_body();
    assert_eq!(stats["agents_by_status"]["failed"], 1);
    assert_eq!(stats["agents_by_status"]["planning"], 0);
    assert_eq!(stats["agents_by_status"].as_object().unwrap().len(), 7);
    assert_eq!(stats["prompts_by_status"]["pending"], 1);
    assert_eq!(stats["prompts_by_status"].as_object().unwrap().len(), 5);
    assert_eq!(stats["cost_usd"], json!(0.25));
    assert_eq!(stats["tokens_input"], 10);
    assert_eq!(stats["tokens_output"], 5);
    let defs = stats["by_definition"].as_array().unwrap();
    assert_eq!(defs.len(), 2);
    assert_eq!(defs[0]["orchestrator_agent_id"], idle["id"]);
    assert_eq!(defs[0]["runs"], 0);
    assert_eq!(defs[1]["runs"], 1);
    assert_eq!(defs[1]["cost_usd"], json!(0.25));
}

#[test]
fn a_run_may_be_named_by_a_title_and_a_project() {
    let app = App::new();
    let def = app.definition("titled");
    let r = app.post(
        "/api/runtime/agents",
        json!({ "orchestrator_agent_id": def["id"], "session_id": "t",
                "title": "Fix the login bug", "project": "/home/dev/shop" }),
    );
    assert_eq!(r.status, 201);
    let run = r.json_body();
    assert_eq!(run["title"], "Fix the login bug");
    assert_eq!(run["project"], "/home/dev/shop");
    // The creation event carries them.
    let feed = app.get("/api/events?after=0").json_body();
    assert_eq!(feed["events"][0]["data"]["title"], "Fix the login bug");

    let p = path(&run);
    let before = app.dump();
    for (body, field) in [
        (json!({ "title": 1 }), "title"),
        (json!({ "title": "x".repeat(257) }), "title"),
        (json!({ "project": ["a"] }), "project"),
        (json!({ "project": "p".repeat(4097) }), "project"),
    ] {
        assert_invalid(&app.patch(&p, body), field);
    }
    assert_eq!(app.dump(), before, "a rejected PATCH writes nothing");
    let r = app.patch(&p, json!({ "title": "Renamed", "project": null }));
    assert_eq!(r.status, 200);
    assert_eq!(r.json_body()["title"], "Renamed");
    assert_eq!(r.json_body()["project"], json!(null));
    // A run nothing named has null for both.
    let plain = app.run();
    assert_eq!(plain["title"], json!(null));
    assert_eq!(plain["project"], json!(null));
}
