use serde_json::{json, Value as Json};

use super::{assert_error, assert_invalid, App};

fn new_prompt(app: &App, run: &Json) -> Json {
    let r = app.post(
        "/api/runtime/prompts",
        json!({ "agent_id": run["id"], "prompt_type": "command", "prompt_text": "do it", "prompt_name": "p" }),
    );
    assert_eq!(r.status, 201, "{}", r.json_body());
    assert!(r
        .header("location")
        .unwrap()
        .ends_with(r.json_body()["id"].as_str().unwrap()));
    r.json_body()
}

fn path(prompt: &Json) -> String {
    format!("/api/runtime/prompts/{}", prompt["id"].as_str().unwrap())
}

#[test]
fn a_new_prompt_is_pending_with_zero_usage() {
    let app = App::new();
    let prompt = new_prompt(&app, &app.run());
    assert_eq!(prompt["status"], "pending");
    assert_eq!(prompt["tokens_input"], 0);
    assert_eq!(prompt["cost_usd"], json!(0.0));
    assert_eq!(prompt["prompt_name"], "p");
    assert_eq!(app.get(&path(&prompt)).json_body(), prompt);
}

#[test]
fn creating_a_prompt_validates_every_field() {
    let app = App::new();
    let run = app.run();
    let missing = "00000000-0000-4000-8000-000000000000";
    for (body, field) in [
        (
            json!({ "prompt_type": "adw", "prompt_text": "x" }),
            "agent_id",
        ),
        (
            json!({ "agent_id": missing, "prompt_type": "adw", "prompt_text": "x" }),
            "agent_id",
        ),
        (
            json!({ "agent_id": run["id"], "prompt_text": "x" }),
            "prompt_type",
        ),
        (
            json!({ "agent_id": run["id"], "prompt_type": "chat", "prompt_text": "x" }),
            "prompt_type",
        ),
        (
            json!({ "agent_id": run["id"], "prompt_type": "adw" }),
            "prompt_text",
        ),
        (
            json!({ "agent_id": run["id"], "prompt_type": "adw", "prompt_text": "x", "cost_usd": 1 }),
            "cost_usd",
        ),
    ] {
        assert_invalid(&app.post("/api/runtime/prompts", body), field);
    }
    assert_eq!(app.count("SELECT count(*) FROM prompts"), 0);
}

#[test]
fn prompts_move_forward_only() {
    let app = App::new();
    let run = app.run();
    let prompt = new_prompt(&app, &run);
    let p = path(&prompt);
    assert_eq!(app.patch(&p, json!({ "status": "pending" })).status, 200);
    let streaming = app.patch(&p, json!({ "status": "streaming" })).json_body();
    assert_eq!(streaming["completed_at"], json!(null));
    assert_error(
        &app.patch(&p, json!({ "status": "pending" })),
        409,
        "conflict",
    );
    let done = app
        .patch(
            &p,
            json!({ "status": "completed", "response_text": "ok", "latency_ms": 120 }),
        )
        .json_body();
    assert!(done["completed_at"].is_string());
    assert_eq!(done["response_text"], "ok");
    assert_eq!(done["latency_ms"], 120);
    assert_error(
        &app.patch(&p, json!({ "status": "failed" })),
        409,
        "conflict",
    );
    assert_eq!(app.patch(&p, json!({ "status": "completed" })).status, 200);
    // pending straight to a final status is allowed.
    let other = new_prompt(&app, &run);
    assert_eq!(
        app.patch(&path(&other), json!({ "status": "cancelled" }))
            .json_body()["status"],
        "cancelled"
    );
}

#[test]
fn prompt_costs_roll_up_into_their_run() {
    let app = App::new();
    let run = app.run();
    let run_path = format!("/api/runtime/agents/{}", run["id"].as_str().unwrap());
    let a = new_prompt(&app, &run);
    let b = new_prompt(&app, &run);
    app.patch(&path(&a), json!({ "cost_usd": 0.5 }));
    app.patch(&path(&b), json!({ "cost_usd": 0.25 }));
    assert_eq!(app.get(&run_path).json_body()["cost_usd"], json!(0.75));
    app.patch(&path(&a), json!({ "cost_usd": 0.0 }));
    assert_eq!(app.get(&run_path).json_body()["cost_usd"], json!(0.25));
}

#[test]
fn prompt_patch_numbers_must_be_non_negative() {
    let app = App::new();
    let prompt = new_prompt(&app, &app.run());
    let p = path(&prompt);
    for (body, field) in [
        (json!({ "tokens_input": -1 }), "tokens_input"),
        (json!({ "tokens_output": 1.5 }), "tokens_output"),
        (json!({ "cost_usd": -0.01 }), "cost_usd"),
        (json!({ "cost_usd": "1" }), "cost_usd"),
        (json!({ "latency_ms": -5 }), "latency_ms"),
        (json!({ "cost_usd": null }), "cost_usd"),
        (json!({ "status": "wizard" }), "status"),
        (json!({ "agent_id": prompt["agent_id"] }), "agent_id"),
    ] {
        assert_invalid(&app.patch(&p, body), field);
    }
    assert_eq!(app.get(&p).json_body(), prompt);
}

#[test]
fn listing_prompts_filters_by_run_and_status() {
    let app = App::new();
    let run_a = app.run();
    let run_b = app.run();
    let a = new_prompt(&app, &run_a);
    new_prompt(&app, &run_b);
    app.patch(&path(&a), json!({ "status": "streaming" }));
    let by_run = app
        .get(&format!(
            "/api/runtime/prompts?agent_id={}",
            run_a["id"].as_str().unwrap()
        ))
        .json_body();
    assert_eq!(by_run.as_array().unwrap().len(), 1);
    assert_eq!(
        app.get("/api/runtime/prompts?status=streaming").json_body()[0]["id"],
        a["id"]
    );
    assert_eq!(
        app.get("/api/runtime/prompts")
            .json_body()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_error(
        &app.get("/api/runtime/prompts?status=done"),
        400,
        "bad_request",
    );
    assert_error(
        &app.get("/api/runtime/prompts?agent_id=1"),
        400,
        "bad_request",
    );
    assert_error(
        &app.get("/api/runtime/prompts/00000000-0000-4000-8000-000000000000"),
        404,
        "not_found",
    );
}
