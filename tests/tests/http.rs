//! Every route group and every error class, through the real components in the host.

use std::time::{Duration, Instant};

use orchestrator_e2e::{error_code, TestApp};
use serde_json::{json, Value as Json};

#[tokio::test]
async fn health_and_openapi_are_served_by_the_meta_component() {
    let app = TestApp::start().await;
    let r = app.get("/health").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Json>().await.unwrap(), json!({ "status": "ok" }));
    let doc: Json = app.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(
        app.db_path.exists(),
        "the database file is created on first use"
    );
}

#[tokio::test]
async fn definitions_round_trip_through_the_agents_component() {
    let app = TestApp::start().await;
    let r = app
        .post(
            "/api/agents",
            json!({ "name": "planner", "agent_type": "planner", "capabilities": ["plan"] }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let def: Json = r.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/agents/{}", def["id"].as_str().unwrap())
    );
    assert_eq!(app.get(&location).await.json::<Json>().await.unwrap(), def);
    let list: Json = app
        .get("/api/agents?agent_type=planner")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([def]));
    let r = app
        .client
        .put(app.url(&location))
        .json(&json!({ "description": "plans work" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Json>().await.unwrap()["description"], "plans work");
    let r = app.client.delete(app.url(&location)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        error_code(app.get(&location).await).await,
        (404, "not_found".into())
    );
}

#[tokio::test]
async fn runs_prompts_logs_and_stats_through_the_runtime_component() {
    let app = TestApp::start().await;
    let run = app.new_run().await;
    let run_path = format!("/api/runtime/agents/{}", run["id"].as_str().unwrap());
    for status in ["planning", "executing", "reviewing"] {
        let r = app.patch(&run_path, json!({ "status": status })).await;
        assert_eq!(r.status(), 200);
    }
    let prompt = app
        .create(
            "/api/runtime/prompts",
            json!({ "agent_id": run["id"], "prompt_type": "adw", "prompt_text": "go" }),
        )
        .await;
    let r = app
        .patch(
            &format!("/api/runtime/prompts/{}", prompt["id"].as_str().unwrap()),
            json!({ "status": "completed", "cost_usd": 1.5, "tokens_input": 7 }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let run_now: Json = app.get(&run_path).await.json().await.unwrap();
    assert_eq!(run_now["cost_usd"], json!(1.5));
    assert_eq!(run_now["status"], "reviewing");
    // Version 2: the run carries its definition and its token sums.
    assert_eq!(run_now["agent_type"], "builder");
    assert!(run_now["agent_name"].as_str().unwrap().starts_with("def-"));
    assert_eq!(run_now["tokens_input"], 7);
    assert_eq!(run_now["tokens_output"], 0);
    assert!(
        run_now["last_activity_at"].as_str().unwrap() >= run_now["started_at"].as_str().unwrap()
    );
    let log = app
        .create(
            "/api/runtime/logs",
            json!({ "source": "system", "component": "e2e", "message": "hello" }),
        )
        .await;
    assert_eq!(log["source"], "system");
    let logs: Json = app
        .get(&format!(
            "/api/runtime/logs?agent_id={}&log_type=state_change",
            run["id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        logs.as_array().unwrap().len(),
        4,
        "one state_change per status change"
    );
    let stats: Json = app.get("/api/runtime/stats").await.json().await.unwrap();
    assert_eq!(stats["agents_by_status"]["reviewing"], 1);
    assert_eq!(stats["tokens_input"], 7);
    let prompts: Json = app
        .get("/api/runtime/prompts?status=completed")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(prompts.as_array().unwrap().len(), 1);
    let runs: Json = app
        .get("/api/runtime/agents?session_id=e2e")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    let sessions: Json = app.get("/api/runtime/sessions").await.json().await.unwrap();
    assert_eq!(sessions[0]["session_id"], "e2e");
    assert_eq!(sessions[0]["runs"], 1);
    assert_eq!(sessions[0]["tokens_input"], 7);
    let detail: Json = app
        .get("/api/runtime/sessions/e2e")
        .await
        .json()
        .await
        .unwrap();
    // A session lists its runs as lists do: without the single GET's tree roll-up.
    let mut listed = run_now.clone();
    assert_eq!(listed["tree"]["runs"], 1);
    listed.as_object_mut().unwrap().remove("tree");
    assert_eq!(detail["runs"], json!([listed]));
    assert_eq!(
        error_code(app.get("/api/runtime/sessions/no%20such").await).await,
        (404, "not_found".into())
    );
    let r = app.client.delete(app.url(&run_path)).send().await.unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn the_events_component_long_polls_and_snapshots() {
    let app = TestApp::start().await;
    let empty: Json = app.get("/api/events").await.json().await.unwrap();
    assert_eq!(empty, json!({ "cursor": 0, "events": [] }));
    // A long-poll held open is answered as soon as a change happens.
    let poll = {
        let client = app.client.clone();
        let url = app.url("/api/events?after=0&wait=10");
        tokio::spawn(async move {
            let started = Instant::now();
            let body: Json = client.get(url).send().await.unwrap().json().await.unwrap();
            (started.elapsed(), body)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let run = app.new_run().await;
    let (waited, body) = poll.await.unwrap();
    assert!(
        waited < Duration::from_secs(5),
        "answered at once, not at the deadline"
    );
    assert_eq!(body["events"][0]["data"]["id"], run["id"]);
    let snapshot: Json = app.get("/api/events/snapshot").await.json().await.unwrap();
    assert_eq!(snapshot["cursor"], body["cursor"]);
    assert_eq!(snapshot["data"][0]["id"], run["id"]);
}

#[tokio::test]
async fn the_sse_stream_sends_events_as_they_happen() {
    let app = TestApp::start().await;
    let run = app.new_run().await;
    let mut stream = app
        .client
        .get(app.url("/api/events/stream?after=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let run_path = format!("/api/runtime/agents/{}", run["id"].as_str().unwrap());
    app.patch(&run_path, json!({ "status": "planning" })).await;
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while text.matches("event: agent_update").count() < 2 && Instant::now() < deadline {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("a chunk within the deadline")
            .unwrap()
            .expect("the stream is still open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("\"status\":\"initializing\""), "{text}");
    assert!(text.contains("\"status\":\"planning\""), "{text}");
}

#[tokio::test]
async fn the_sse_stream_keeps_alive_and_ends_itself_as_spin_toml_says() {
    // The variables spin.toml declares for the events component, set as a deployment
    // would (SPIN_VARIABLE_SSE_MAX_SECONDS, …).
    let app = TestApp::start_with(|c| {
        c.variables.insert("sse_max_seconds".into(), "2".into());
        c.variables
            .insert("sse_keepalive_seconds".into(), "1".into());
    })
    .await;
    let started = Instant::now();
    let mut stream = app.get("/api/events/stream").await;
    assert_eq!(stream.status(), 200);
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
        .await
        .expect("the stream ends within its limit")
        .unwrap()
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let lasted = started.elapsed();
    assert!(text.starts_with("retry: 1000\n"), "{text}");
    assert!(text.contains(": keep-alive"), "{text}");
    assert!(
        lasted >= Duration::from_millis(1900) && lasted < Duration::from_secs(8),
        "ended after {lasted:?}"
    );
}

#[tokio::test]
async fn every_error_class_has_its_status_and_code() {
    let app = TestApp::start_with(|c| {
        c.variables.insert("max_body_bytes".into(), "1024".into());
    })
    .await;
    let c = &app.client;
    assert_eq!(
        error_code(app.get("/nope").await).await,
        (404, "not_found".into())
    );
    assert_eq!(
        error_code(app.get("/api/nope").await).await,
        (404, "not_found".into())
    );
    assert_eq!(
        error_code(
            app.get("/api/agents/00000000-0000-4000-8000-000000000000")
                .await
        )
        .await,
        (404, "not_found".into())
    );
    let r = c.delete(app.url("/api/agents")).send().await.unwrap();
    assert_eq!(r.headers()["allow"], "GET, POST");
    assert_eq!(error_code(r).await, (405, "method_not_allowed".into()));
    let big = json!({ "name": "x".repeat(2000), "agent_type": "planner" });
    assert_eq!(
        error_code(app.post("/api/agents", big).await).await,
        (413, "payload_too_large".into())
    );
    let r = c
        .post(app.url("/api/agents"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (415, "unsupported_media_type".into()));
    let r = c
        .post(app.url("/api/agents"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (400, "bad_request".into()));
    assert_eq!(
        error_code(app.get("/api/runtime/agents?limit=0").await).await,
        (400, "bad_request".into())
    );
    let r = app
        .post(
            "/api/agents",
            json!({ "name": "a", "agent_type": "wizard" }),
        )
        .await;
    assert_eq!(error_code(r).await, (422, "validation_failed".into()));
    app.create(
        "/api/agents",
        json!({ "name": "a", "agent_type": "tester" }),
    )
    .await;
    let r = app
        .post(
            "/api/agents",
            json!({ "name": "a", "agent_type": "tester" }),
        )
        .await;
    assert_eq!(error_code(r).await, (409, "conflict".into()));
    let agents: Json = app.get("/api/agents").await.json().await.unwrap();
    assert_eq!(
        agents.as_array().unwrap().len(),
        1,
        "rejected requests stored nothing"
    );
}

#[tokio::test]
async fn token_auth_and_cors_apply_to_every_component() {
    let app = TestApp::start_with(|c| {
        c.variables.insert("api_token".into(), "s3cret".into());
        c.variables
            .insert("cors_origins".into(), "https://ui.example".into());
    })
    .await;
    for path in [
        "/api/agents",
        "/api/runtime/agents",
        "/api/events",
        "/api/unknown",
    ] {
        assert_eq!(
            error_code(app.get(path).await).await,
            (401, "unauthorized".into()),
            "{path}"
        );
        let r = app
            .client
            .get(app.url(path))
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 401, "{path}");
    }
    assert_eq!(
        app.get("/health").await.status(),
        200,
        "health needs no token"
    );
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/agents"))
        .header("origin", "https://ui.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://ui.example"
    );
    let r = app
        .client
        .get(app.url("/api/agents"))
        .bearer_auth("s3cret")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_request_past_the_deadline_gets_504_and_the_server_keeps_serving() {
    let app = TestApp::start_with(|c| c.request_deadline = Duration::from_secs(1)).await;
    let started = Instant::now();
    let r = app.get("/api/events?wait=10").await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(error_code(r).await, (504, "timeout".into()));
    assert_eq!(app.get("/health").await.status(), 200);
}
