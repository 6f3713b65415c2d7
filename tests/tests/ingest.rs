//! Ingest through the real `ingest` component in the host: a Claude Code session's hook
//! events posted as Claude Code's `"type": "http"` hooks post them, read back through the
//! REST API and the feed.

use orchestrator_e2e::{error_code, TestApp};
use serde_json::{json, Value as Json};

fn hook(event: &str, extra: Json) -> Json {
    let mut body = json!({
        "session_id": "e2e-session",
        "transcript_path": "/tmp/e2e-session.jsonl",
        "cwd": "/tmp/project",
        "permission_mode": "default",
        "hook_event_name": event,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test]
async fn a_claude_code_session_posted_as_hooks_is_a_run_with_prompts_logs_and_feed_events() {
    let app = TestApp::start().await;
    let events = [
        hook("SessionStart", json!({"source": "startup"})),
        hook("UserPromptSubmit", json!({"prompt": "add a test"})),
        hook(
            "PreToolUse",
            json!({"tool_name": "Bash", "tool_use_id": "toolu_a",
            "tool_input": {"command": "ls"}}),
        ),
        hook(
            "PostToolUse",
            json!({"tool_name": "Bash", "tool_use_id": "toolu_a",
            "tool_input": {"command": "ls"}, "tool_response": {"stdout": "Cargo.toml"}}),
        ),
        hook(
            "SubagentStart",
            json!({"agent_id": "sub-1", "agent_type": "Plan"}),
        ),
        hook(
            "PostToolUse",
            json!({"agent_id": "sub-1", "tool_name": "Read",
            "tool_use_id": "toolu_b", "tool_input": {"file_path": "README.md"}}),
        ),
        hook(
            "SubagentStop",
            json!({"agent_id": "sub-1", "stop_hook_active": false}),
        ),
        hook(
            "Stop",
            json!({"stop_hook_active": false, "last_assistant_message": "done"}),
        ),
        hook("SessionEnd", json!({"reason": "logout"})),
    ];
    for event in &events {
        // Each event twice: a retried delivery changes nothing.
        for _ in 0..2 {
            let r = app.post("/api/ingest/claude-code", event.clone()).await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.json::<Json>().await.unwrap(), json!({}));
        }
    }

    let runs: Json = app
        .get("/api/runtime/agents?session_id=e2e-session")
        .await
        .json()
        .await
        .unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let main = runs
        .iter()
        .find(|r| r["parent_agent_id"].is_null())
        .unwrap();
    let child = runs
        .iter()
        .find(|r| r["parent_agent_id"] == main["id"])
        .unwrap();
    assert_eq!(main["status"], "completed");
    assert_eq!(main["agent_name"], "claude-code");
    assert_eq!(child["status"], "completed");
    let main_id = main["id"].as_str().unwrap();

    let prompts: Json = app
        .get(&format!("/api/runtime/prompts?agent_id={main_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(prompts.as_array().unwrap().len(), 1);
    assert_eq!(prompts[0]["prompt_text"], "add a test");
    assert_eq!(prompts[0]["status"], "completed");
    assert_eq!(prompts[0]["response_text"], "done");

    let tools: Json = app
        .get("/api/runtime/logs?log_type=tool_call")
        .await
        .json()
        .await
        .unwrap();
    let tools = tools.as_array().unwrap();
    assert_eq!(tools.len(), 2, "{tools:?}");
    let read = tools
        .iter()
        .find(|l| l["details"]["tool_name"] == "Read")
        .unwrap();
    assert_eq!(read["agent_id"], child["id"]);

    // The feed: main initializing → planning → executing → reviewing → completed, and the
    // child initializing → executing → completed, each once.
    let feed: Json = app.get("/api/events?after=0").await.json().await.unwrap();
    let statuses: Vec<(String, String)> = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["data"]["id"].as_str().unwrap().to_owned(),
                e["data"]["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let of = |id: &str| -> Vec<&str> {
        statuses
            .iter()
            .filter(|(run, _)| run == id)
            .map(|(_, s)| s.as_str())
            .collect()
    };
    assert_eq!(
        of(main_id),
        [
            "initializing",
            "planning",
            "executing",
            "reviewing",
            "completed"
        ]
    );
    assert_eq!(
        of(child["id"].as_str().unwrap()),
        ["initializing", "executing", "completed"]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_hook_body_that_is_not_json_is_refused_and_writes_nothing() {
    let app = TestApp::start().await;
    let r = app
        .client
        .post(app.url("/api/ingest/claude-code"))
        .header("content-type", "text/plain")
        .body("SessionStart")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (415, "unsupported_media_type".into()));
    let r = app
        .client
        .post(app.url("/api/ingest/claude-code?agent_type=wizard"))
        .json(&hook("SessionStart", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (400, "bad_request".into()));
    let runs: Json = app.get("/api/runtime/agents").await.json().await.unwrap();
    assert_eq!(runs, json!([]));
    let defs: Json = app.get("/api/agents").await.json().await.unwrap();
    assert_eq!(defs, json!([]));
    app.stop().await;
}
