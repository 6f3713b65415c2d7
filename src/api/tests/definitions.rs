use serde_json::json;

use super::{assert_error, assert_invalid, App};

#[test]
fn creating_a_definition_returns_it_with_location_and_defaults() {
    let app = App::new();
    let r = app.post(
        "/api/agents",
        json!({ "name": "planner-1", "agent_type": "planner", "description": "plans" }),
    );
    assert_eq!(r.status, 201);
    let body = r.json_body();
    let id = body["id"].as_str().unwrap();
    assert_eq!(r.header("location").unwrap(), format!("/api/agents/{id}"));
    assert_eq!(id, id.to_lowercase());
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    assert_eq!(body["capabilities"], json!([]));
    assert_eq!(body["default_model"], json!(null));
    assert_eq!(body["created_at"], body["updated_at"]);
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(app.get(&format!("/api/agents/{id}")).json_body(), body);
}

#[test]
fn capabilities_are_returned_as_a_json_array_not_a_string() {
    let app = App::new();
    let body = app
        .post(
            "/api/agents",
            json!({ "name": "b", "agent_type": "builder", "capabilities": ["rust", "sql"] }),
        )
        .json_body();
    assert_eq!(body["capabilities"], json!(["rust", "sql"]));
}

#[test]
fn a_duplicate_name_is_409_and_stores_nothing() {
    let app = App::new();
    app.definition("same");
    let before = app.dump();
    let r = app.post(
        "/api/agents",
        json!({ "name": "same", "agent_type": "tester" }),
    );
    assert_error(&r, 409, "conflict");
    assert_eq!(app.dump(), before);
}

#[test]
fn every_rule_of_a_definition_is_a_422_naming_its_field() {
    let app = App::new();
    let cases = [
        (json!({ "agent_type": "planner" }), "name"),
        (json!({ "name": null, "agent_type": "planner" }), "name"),
        (json!({ "name": "", "agent_type": "planner" }), "name"),
        (
            json!({ "name": "x".repeat(129), "agent_type": "planner" }),
            "name",
        ),
        (json!({ "name": 5, "agent_type": "planner" }), "name"),
        (json!({ "name": "a" }), "agent_type"),
        (json!({ "name": "a", "agent_type": "wizard" }), "agent_type"),
        (
            json!({ "name": "a", "agent_type": "planner", "capabilities": "rust" }),
            "capabilities",
        ),
        (
            json!({ "name": "a", "agent_type": "planner", "capabilities": [1] }),
            "capabilities",
        ),
        (
            json!({ "name": "a", "agent_type": "planner", "nmae": "typo" }),
            "nmae",
        ),
        (
            json!({ "name": "a", "agent_type": "planner", "description": 3 }),
            "description",
        ),
    ];
    for (body, field) in cases {
        assert_invalid(&app.post("/api/agents", body), field);
    }
    assert_eq!(app.count("SELECT count(*) FROM orchestrator_agents"), 0);
}

#[test]
fn a_128_character_name_is_accepted() {
    let app = App::new();
    let r = app.post(
        "/api/agents",
        json!({ "name": "é".repeat(128), "agent_type": "utility" }),
    );
    assert_eq!(r.status, 201);
}

#[test]
fn listing_filters_by_type_and_orders_by_creation() {
    let app = App::new();
    for (name, t) in [("a", "planner"), ("b", "builder"), ("c", "planner")] {
        app.post("/api/agents", json!({ "name": name, "agent_type": t }));
        // Same-millisecond rows are ordered by id (random); keep the times apart.
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let all = app.get("/api/agents").json_body();
    let names: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].clone())
        .collect();
    assert_eq!(names, [json!("a"), json!("b"), json!("c")]);
    let planners = app.get("/api/agents?agent_type=planner").json_body();
    assert_eq!(planners.as_array().unwrap().len(), 2);
    let page = app.get("/api/agents?limit=1&offset=1").json_body();
    assert_eq!(page[0]["name"], "b");
    assert_error(
        &app.get("/api/agents?agent_type=wizard"),
        400,
        "bad_request",
    );
    assert_eq!(App::new().get("/api/agents").json_body(), json!([]));
}

#[test]
fn put_updates_a_subset_and_moves_updated_at() {
    let app = App::new();
    let def = app.post(
        "/api/agents",
        json!({ "name": "a", "agent_type": "planner", "description": "d", "capabilities": ["x"] }),
    )
    .json_body();
    std::thread::sleep(std::time::Duration::from_millis(3));
    let id = def["id"].as_str().unwrap();
    let r = app.put(
        &format!("/api/agents/{id}"),
        json!({ "description": null, "capabilities": null }),
    );
    assert_eq!(r.status, 200);
    let updated = r.json_body();
    assert_eq!(updated["description"], json!(null));
    assert_eq!(updated["capabilities"], json!([]));
    assert_eq!(updated["name"], "a");
    assert!(updated["updated_at"].as_str() > def["updated_at"].as_str());
    assert_eq!(updated["created_at"], def["created_at"]);
}

#[test]
fn put_refuses_nulls_for_required_fields_and_taken_names() {
    let app = App::new();
    app.definition("taken");
    let def = app.definition("mine");
    let path = format!("/api/agents/{}", def["id"].as_str().unwrap());
    assert_invalid(&app.put(&path, json!({ "name": null })), "name");
    assert_invalid(&app.put(&path, json!({ "agent_type": null })), "agent_type");
    assert_invalid(&app.put(&path, json!({ "id": "x" })), "id");
    assert_error(&app.put(&path, json!({ "name": "taken" })), 409, "conflict");
    assert_eq!(app.get(&path).json_body()["name"], "mine");
}

#[test]
fn unknown_and_malformed_ids_are_404() {
    let app = App::new();
    let unknown = "/api/agents/6f1c3a52-8f0e-4b5e-9a51-2f9d3f0b7c11";
    assert_error(&app.get(unknown), 404, "not_found");
    assert_error(&app.put(unknown, json!({ "name": "x" })), 404, "not_found");
    assert_error(&app.delete(unknown), 404, "not_found");
    assert_error(&app.get("/api/agents/not-a-uuid"), 404, "not_found");
}

#[test]
fn ids_in_paths_match_case_insensitively() {
    let app = App::new();
    let def = app.definition("a");
    let upper = def["id"].as_str().unwrap().to_uppercase();
    assert_eq!(app.get(&format!("/api/agents/{upper}")).json_body(), def);
}

#[test]
fn deleting_a_definition_cascades_to_runs_prompts_and_logs() {
    let app = App::new();
    let run = app.run();
    let run_id = run["id"].as_str().unwrap();
    app.post(
        "/api/runtime/prompts",
        json!({ "agent_id": run_id, "prompt_type": "adw", "prompt_text": "hi" }),
    );
    app.post(
        "/api/runtime/logs",
        json!({ "source": "agent", "agent_id": run_id, "log_type": "milestone", "message": "m" }),
    );
    let r = app.delete(&format!(
        "/api/agents/{}",
        run["orchestrator_agent_id"].as_str().unwrap()
    ));
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    for table in ["orchestrator_agents", "agents", "prompts", "agent_logs"] {
        assert_eq!(
            app.count(&format!("SELECT count(*) FROM {table}")),
            0,
            "{table}"
        );
    }
    assert_error(
        &app.get(&format!("/api/runtime/agents/{run_id}")),
        404,
        "not_found",
    );
}
