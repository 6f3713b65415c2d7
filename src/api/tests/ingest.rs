//! `POST /api/ingest/claude-code`: Claude Code hook events, as its hooks reference
//! documents their bodies, mapped onto runs, prompts and logs.
//! Over 600 lines on purpose: one hook-event builder serves every case.

use serde_json::{json, Value as Json};

use super::{assert_error, assert_invalid, App};
use crate::http::Request;

const HOOKS: &str = "/api/ingest/claude-code";

/// A hook body: the common fields every event carries, then the event's own.
fn hook(event: &str, session: &str, extra: Json) -> Json {
    let mut body = json!({
        "session_id": session,
        "transcript_path": format!("/home/u/.claude/projects/p/{session}.jsonl"),
        "cwd": "/home/u/p",
        "permission_mode": "default",
        "hook_event_name": event,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// A whole session after the hooks reference: start, two prompts with tool calls, a
/// subagent with its own tool call, a failed tool, a notification, end.
fn session(s: &str) -> Vec<Json> {
    vec![
        hook(
            "SessionStart",
            s,
            json!({"source": "startup", "model": "claude-sonnet-4-5"}),
        ),
        hook(
            "UserPromptSubmit",
            s,
            json!({"prompt": "fix the failing test"}),
        ),
        hook(
            "PreToolUse",
            s,
            json!({"tool_name": "Bash", "tool_use_id": "toolu_1",
            "tool_input": {"command": "cargo test", "description": "run tests"}}),
        ),
        hook(
            "PostToolUse",
            s,
            json!({"tool_name": "Bash", "tool_use_id": "toolu_1",
            "tool_input": {"command": "cargo test"},
            "tool_response": {"stdout": "1 failed", "stderr": "", "interrupted": false}}),
        ),
        hook(
            "Stop",
            s,
            json!({"stop_hook_active": false,
            "last_assistant_message": "The test fails because…"}),
        ),
        hook("UserPromptSubmit", s, json!({"prompt": "now fix it"})),
        hook(
            "SubagentStart",
            s,
            json!({"agent_id": "agent-7", "agent_type": "Explore"}),
        ),
        hook(
            "PreToolUse",
            s,
            json!({"agent_id": "agent-7", "agent_type": "Explore",
            "tool_name": "Grep", "tool_use_id": "toolu_2", "tool_input": {"pattern": "fn main"}}),
        ),
        hook(
            "PostToolUse",
            s,
            json!({"agent_id": "agent-7", "agent_type": "Explore",
            "tool_name": "Grep", "tool_use_id": "toolu_2", "tool_input": {"pattern": "fn main"},
            "tool_response": {"matches": 3}}),
        ),
        hook(
            "SubagentStop",
            s,
            json!({"agent_id": "agent-7", "agent_type": "Explore",
            "stop_hook_active": false, "agent_transcript_path": "/tmp/a.jsonl"}),
        ),
        hook(
            "PostToolUseFailure",
            s,
            json!({"tool_name": "Edit", "tool_use_id": "toolu_3",
            "tool_input": {"file_path": "src/lib.rs"}, "error": "old_string not found",
            "is_interrupt": false}),
        ),
        hook(
            "Notification",
            s,
            json!({"message": "Claude needs your permission to use Bash",
            "notification_type": "permission_prompt"}),
        ),
        hook("Stop", s, json!({"stop_hook_active": false})),
        hook("SessionEnd", s, json!({"reason": "prompt_input_exit"})),
    ]
}

fn send(app: &App, query: &str, body: &Json) {
    let r = app.post(&format!("{HOOKS}{query}"), body.clone());
    assert_eq!(r.status, 200, "{}", r.json_body());
    assert_eq!(r.json_body(), json!({}));
}

fn runs_of(app: &App, session: &str) -> Vec<Json> {
    let r = app.get(&format!("/api/runtime/agents?session_id={session}"));
    assert_eq!(r.status, 200);
    r.json_body().as_array().unwrap().clone()
}

fn main_and_child(app: &App, session: &str) -> (Json, Json) {
    let runs = runs_of(app, session);
    assert_eq!(runs.len(), 2, "{runs:?}");
    let main = runs
        .iter()
        .find(|r| r["parent_agent_id"].is_null())
        .unwrap()
        .clone();
    let child = runs
        .iter()
        .find(|r| !r["parent_agent_id"].is_null())
        .unwrap()
        .clone();
    (main, child)
}

/// The statuses a run went through, from its state_change rows, oldest first.
fn transitions(app: &App, run: &str) -> Vec<String> {
    let r = app.get(&format!(
        "/api/runtime/logs?agent_id={run}&log_type=state_change&limit=1000"
    ));
    let mut logs = r.json_body().as_array().unwrap().clone();
    logs.reverse();
    logs.iter()
        .map(|l| l["details"]["to"].as_str().unwrap().to_owned())
        .collect()
}

fn logs(app: &App, run: &str, log_type: &str) -> Vec<Json> {
    let r = app.get(&format!(
        "/api/runtime/logs?agent_id={run}&log_type={log_type}"
    ));
    r.json_body().as_array().unwrap().clone()
}

fn prompts(app: &App, run: &str) -> Vec<Json> {
    let mut p = app
        .get(&format!("/api/runtime/prompts?agent_id={run}"))
        .json_body()
        .as_array()
        .unwrap()
        .clone();
    p.reverse();
    p
}

#[test]
fn a_whole_session_becomes_a_run_with_its_prompts_tool_calls_and_a_subagent() {
    let app = App::new();
    for event in session("sess-1") {
        send(&app, "", &event);
    }
    let (main, child) = main_and_child(&app, "sess-1");
    assert_eq!(main["status"], "completed");
    assert_eq!(main["agent_name"], "claude-code");
    assert_eq!(main["agent_type"], "builder");
    assert!(main["completed_at"].is_string());
    let id = main["id"].as_str().unwrap();
    assert_eq!(
        transitions(&app, id),
        [
            "initializing",
            "planning",
            "executing",
            "reviewing",
            "planning",
            "executing",
            "reviewing",
            "completed"
        ]
    );
    // The subagent: a child run of the session's run, started and completed.
    assert_eq!(child["parent_agent_id"], main["id"]);
    assert_eq!(child["session_id"], "sess-1");
    assert_eq!(child["status"], "completed");
    assert_eq!(child["context"]["claude_code"]["agent_type"], "Explore");
    let child_id = child["id"].as_str().unwrap();
    assert_eq!(
        transitions(&app, child_id),
        ["initializing", "executing", "completed"]
    );

    // Two prompts, each completed by the Stop that followed it. Found by text: the
    // deliveries here come within one millisecond, so both may carry the same
    // `created_at` and the list's order between them is the ids' (random) order.
    let p = prompts(&app, id);
    assert_eq!(p.len(), 2);
    let by_text = |text: &str| {
        p.iter()
            .find(|prompt| prompt["prompt_text"] == text)
            .unwrap_or_else(|| panic!("no prompt {text:?} in {p:?}"))
    };
    let first = by_text("fix the failing test");
    assert_eq!(first["prompt_type"], "command");
    assert_eq!(first["status"], "completed");
    assert_eq!(first["response_text"], "The test fails because…");
    assert_eq!(by_text("now fix it")["status"], "completed");

    // Tool calls: two on the session's run (one failed), one on the subagent's.
    let tools = logs(&app, id, "tool_call");
    assert_eq!(tools.len(), 2);
    let failed = tools
        .iter()
        .find(|l| l["details"]["tool_use_id"] == "toolu_3")
        .unwrap();
    assert_eq!(failed["log_level"], "ERROR");
    assert_eq!(failed["details"]["error"], "old_string not found");
    assert!(failed["message"]
        .as_str()
        .unwrap()
        .starts_with("Edit failed"));
    let bash = tools
        .iter()
        .find(|l| l["details"]["tool_use_id"] == "toolu_1")
        .unwrap();
    assert_eq!(bash["message"], "Bash");
    assert_eq!(bash["details"]["tool_input"]["command"], "cargo test");
    assert_eq!(bash["details"]["tool_response"]["stdout"], "1 failed");
    let grep = logs(&app, child_id, "tool_call");
    assert_eq!(grep.len(), 1);
    assert_eq!(grep[0]["details"]["tool_name"], "Grep");

    let milestones = logs(&app, id, "milestone");
    assert_eq!(milestones.len(), 1);
    assert_eq!(
        milestones[0]["message"],
        "Claude needs your permission to use Bash"
    );

    // Every status change is one event of the feed.
    let feed = app.get("/api/events?after=0&limit=1000").json_body();
    assert_eq!(feed["events"].as_array().unwrap().len(), 8 + 3);
}

#[test]
fn every_event_delivered_twice_changes_nothing_the_second_time() {
    let once = App::new();
    let twice = App::new();
    for event in session("s") {
        send(&once, "", &event);
        send(&twice, "", &event);
        let before = twice.dump();
        send(&twice, "", &event);
        // Same rows (ids aside, which differ between the two apps, but not within one).
        assert_eq!(
            twice.dump(),
            before,
            "second delivery of {}",
            event["hook_event_name"]
        );
    }
    for table in ["agents", "prompts", "agent_logs", "ingest_keys"] {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        assert_eq!(once.count(&sql), twice.count(&sql), "{table}");
    }
}

#[test]
fn events_after_the_session_ended_change_nothing() {
    let app = App::new();
    let events = session("late");
    for event in &events {
        send(&app, "", event);
    }
    let before = app.dump();
    // Redelivered late, in reverse order, and new events after the end.
    for event in events.iter().rev() {
        send(&app, "", event);
    }
    send(
        &app,
        "",
        &hook("UserPromptSubmit", "late", json!({"prompt": "one more"})),
    );
    send(
        &app,
        "",
        &hook(
            "PostToolUse",
            "late",
            json!({"tool_name": "Bash", "tool_use_id": "toolu_9"}),
        ),
    );
    send(
        &app,
        "",
        &hook("SubagentStart", "late", json!({"agent_id": "agent-new"})),
    );
    assert_eq!(app.dump(), before);
}

#[test]
fn a_tool_call_before_any_session_start_creates_the_run() {
    let app = App::new();
    send(
        &app,
        "",
        &hook(
            "PostToolUse",
            "early",
            json!({"tool_name": "Read",
        "tool_use_id": "toolu_e", "tool_input": {"file_path": "a"}, "tool_response": "x"}),
        ),
    );
    let runs = runs_of(&app, "early");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "executing");
    let id = runs[0]["id"].as_str().unwrap();
    assert_eq!(transitions(&app, id), ["initializing", "executing"]);
    // The SessionStart arriving late finds the run and leaves its status.
    send(
        &app,
        "",
        &hook("SessionStart", "early", json!({"source": "startup"})),
    );
    assert_eq!(runs_of(&app, "early").len(), 1);
    assert_eq!(transitions(&app, id), ["initializing", "executing"]);
}

#[test]
fn a_subagent_event_without_agent_id_cannot_end_the_session_run() {
    let app = App::new();
    send(
        &app,
        "",
        &hook("UserPromptSubmit", "n", json!({"prompt": "go"})),
    );
    send(
        &app,
        "",
        &hook("SubagentStop", "n", json!({"stop_hook_active": false})),
    );
    let runs = runs_of(&app, "n");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "planning");
}

#[test]
fn a_stop_failure_fails_the_open_prompt_and_the_run() {
    let app = App::new();
    send(
        &app,
        "",
        &hook("UserPromptSubmit", "f", json!({"prompt": "go"})),
    );
    send(
        &app,
        "",
        &hook("StopFailure", "f", json!({"error": "rate_limit"})),
    );
    let run = &runs_of(&app, "f")[0];
    assert_eq!(run["status"], "failed");
    assert_eq!(
        run["error_message"],
        "Claude Code stopped on an error: rate_limit"
    );
    let p = prompts(&app, run["id"].as_str().unwrap());
    assert_eq!(p[0]["status"], "failed");
    assert_eq!(p[0]["error_message"], run["error_message"]);
}

#[test]
fn a_stop_failure_says_what_failed_in_claude_codes_own_words() {
    let app = App::new();
    send(
        &app,
        "",
        &hook("UserPromptSubmit", "w", json!({"prompt": "go"})),
    );
    let words =
        "API Error: 400 {\"type\":\"error\",\"error\":{\"message\":\"prompt is too long\"}}";
    send(
        &app,
        "",
        &hook(
            "StopFailure",
            "w",
            json!({"error": "unknown", "last_assistant_message": words}),
        ),
    );
    let run = &runs_of(&app, "w")[0];
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error_message"], format!("{words} (error: unknown)"));
    let p = prompts(&app, run["id"].as_str().unwrap());
    assert_eq!(p[0]["error_message"], run["error_message"]);
}

#[test]
fn unknown_events_and_fields_are_harmless_and_kept_once() {
    let app = App::new();
    let odd = hook(
        "PreCompact",
        "u",
        json!({"trigger": "auto", "new_field": [1, 2]}),
    );
    send(&app, "", &odd);
    send(&app, "", &odd);
    send(&app, "", &json!({"session_id": "u", "whatever": true}));
    let run = &runs_of(&app, "u")[0];
    assert_eq!(run["status"], "initializing");
    let m = logs(&app, run["id"].as_str().unwrap(), "milestone");
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m.iter().all(|l| l["log_level"] == "DEBUG"));
}

#[test]
fn the_query_names_the_definition_its_type_and_the_session() {
    let app = App::new();
    send(
        &app,
        "?agent=reviewer-bot&agent_type=reviewer&session=adw-42",
        &hook("UserPromptSubmit", "cc-1", json!({"prompt": "review"})),
    );
    let run = &runs_of(&app, "adw-42")[0];
    assert_eq!(run["agent_name"], "reviewer-bot");
    assert_eq!(run["agent_type"], "reviewer");
    // The same definition is reused, not duplicated.
    send(
        &app,
        "?agent=reviewer-bot",
        &hook("Stop", "cc-1", json!({})),
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM orchestrator_agents"), 1);
    assert_eq!(runs_of(&app, "adw-42")[0]["status"], "reviewing");
}

#[test]
fn a_tool_input_over_64_kib_is_kept_as_an_excerpt() {
    let app = App::new();
    let big = "é".repeat(40_000); // 80,000 bytes
    send(
        &app,
        "",
        &hook(
            "PostToolUse",
            "big",
            json!({"tool_name": "Write",
        "tool_use_id": "toolu_b", "tool_input": {"content": big}, "tool_response": {"ok": true}}),
        ),
    );
    let run = &runs_of(&app, "big")[0];
    let log = &logs(&app, run["id"].as_str().unwrap(), "tool_call")[0];
    let input = &log["details"]["tool_input"];
    assert_eq!(input["truncated"], true);
    assert!(input["excerpt"].as_str().unwrap().len() <= 65_536);
    assert!(input["bytes"].as_u64().unwrap() > 80_000);
    assert_eq!(log["details"]["tool_response"], json!({"ok": true}));
}

#[test]
fn rejected_deliveries_write_nothing() {
    let app = App::new();
    let before = app.dump();
    let event = hook("UserPromptSubmit", "r", json!({"prompt": "x"}));
    let r = app.post(&format!("{HOOKS}?agent_type=wizard"), event.clone());
    assert_error(&r, 400, "bad_request");
    let r = app.post(&format!("{HOOKS}?agent="), event.clone());
    assert_error(&r, 400, "bad_request");
    let r = app.post(HOOKS, json!({"hook_event_name": "Stop"}));
    assert_invalid(&r, "session_id");
    let r = app.send(raw("text/plain", b"hi"));
    assert_error(&r, 415, "unsupported_media_type");
    let r = app.send(raw("application/json", b"{"));
    assert_error(&r, 400, "bad_request");
    let r = app.get(HOOKS);
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(app.dump(), before);
}

fn raw(content_type: &str, body: &[u8]) -> Request {
    let mut req = Request::new("POST", HOOKS).with_header("content-type", content_type);
    req.body = body.to_vec();
    req
}

#[test]
fn openapi_describes_the_hooks_route() {
    let doc = App::new().get("/openapi.json").json_body();
    let op = &doc["paths"]["/api/ingest/claude-code"]["post"];
    assert!(op["summary"].as_str().unwrap().contains("64 KiB"));
    assert_eq!(
        op["responses"]["415"]["$ref"],
        "#/components/responses/E415"
    );
}

/// An OTLP/JSON logs export of Claude Code events, as its exporter sends them.
fn otlp(records: Vec<Json>) -> Json {
    json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "claude-code"}}]},
        "scopeLogs": [{"scope": {"name": "com.anthropic.claude_code.events"}, "logRecords": records}]
    }]})
}

fn api_request(session: &str, cost: Json, n: i64) -> Json {
    json!({"timeUnixNano": format!("17000000000000000{n:02}"),
        "body": {"stringValue": "claude_code.api_request"},
        "attributes": [
            {"key": "event.name", "value": {"stringValue": "api_request"}},
            {"key": "session.id", "value": {"stringValue": session}},
            {"key": "model", "value": {"stringValue": "claude-sonnet-4-5"}},
            {"key": "cost_usd", "value": cost},
            {"key": "duration_ms", "value": {"intValue": "1234"}},
            {"key": "input_tokens", "value": {"intValue": "100"}},
            {"key": "output_tokens", "value": {"stringValue": "50"}},
            {"key": "cache_read_tokens", "value": {"intValue": 1000}},
            {"key": "cache_creation_tokens", "value": {"intValue": "10"}}]})
}

#[test]
fn claude_code_api_requests_over_otlp_json_become_prompts_of_the_hooks_run() {
    let app = App::new();
    for event in session("otel") {
        send(&app, "", &event);
    }
    let before = runs_of(&app, "otel");
    let main = before
        .iter()
        .find(|r| r["parent_agent_id"].is_null())
        .unwrap();
    assert_eq!(main["status"], "completed");
    let batch = otlp(vec![
        api_request("otel", json!({"doubleValue": 0.25}), 1),
        api_request("otel", json!({"stringValue": "0.5"}), 2),
        json!({"attributes": [{"key": "event.name", "value": {"stringValue": "tool_result"}},
            {"key": "session.id", "value": {"stringValue": "otel"}},
            {"key": "tool_name", "value": {"stringValue": "Bash"}},
            {"key": "success", "value": {"stringValue": "false"}}]}),
        json!({"attributes": [{"key": "event.name", "value": {"stringValue": "user_prompt"}}]}),
    ]);
    let r = app.post("/v1/logs", batch.clone());
    assert_eq!(r.status, 200);
    // Full success leaves partial_success unset, as OTLP requires.
    assert_eq!(r.json_body(), json!({}));
    // The same batch again (an exporter's retry) changes nothing.
    let rows = app.dump();
    assert_eq!(app.post("/v1/logs", batch).status, 200);
    assert_eq!(app.dump(), rows);

    let id = main["id"].as_str().unwrap();
    let run = app.get(&format!("/api/runtime/agents/{id}")).json_body();
    assert_eq!(run["status"], "completed", "a final run keeps its status");
    assert!((run["cost_usd"].as_f64().unwrap() - 0.75).abs() < 1e-9);
    let otel: Vec<Json> = prompts(&app, id)
        .into_iter()
        .filter(|p| p["prompt_name"] == "claude_code.api_request")
        .collect();
    assert_eq!(otel.len(), 2);
    assert_eq!(otel[0]["tokens_input"], 1110);
    assert_eq!(otel[0]["tokens_output"], 50);
    assert_eq!(otel[0]["latency_ms"], 1234);
    assert_eq!(otel[0]["model_used"], "claude-sonnet-4-5");
    assert_eq!(otel[0]["status"], "completed");
    assert_eq!(run["tokens_input"], 2220);
    let tools = logs(&app, id, "tool_call");
    assert!(tools
        .iter()
        .any(|l| l["log_level"] == "ERROR" && l["message"] == "Bash failed: no error message"));
}

#[test]
fn an_otlp_batch_stores_what_it_can_and_reports_the_rest() {
    let app = App::new();
    let mut nameless = api_request("x", json!({"doubleValue": 1.0}), 3);
    nameless["attributes"]
        .as_array_mut()
        .unwrap()
        .retain(|kv| kv["key"] != "session.id");
    let r = app.post(
        "/v1/logs",
        otlp(vec![
            api_request("fresh", json!({"doubleValue": 0.1}), 4),
            nameless,
        ]),
    );
    assert_eq!(r.status, 200);
    let body = r.json_body();
    assert_eq!(body["partialSuccess"]["rejectedLogRecords"], "1");
    assert!(body["partialSuccess"]["errorMessage"]
        .as_str()
        .unwrap()
        .contains("session.id"));
    // An unknown session gets its run, like a hook event would.
    let run = &runs_of(&app, "fresh")[0];
    assert!((run["cost_usd"].as_f64().unwrap() - 0.1).abs() < 1e-9);
    assert_eq!(
        app.post("/v1/metrics", json!({"resourceMetrics": []}))
            .json_body(),
        json!({})
    );
}

#[test]
fn rejected_otlp_requests_write_nothing() {
    let app = App::with_config(crate::http::Config {
        api_token: Some("s3cret".into()),
        ..crate::http::Config::default()
    });
    let before = app.dump();
    let batch = otlp(vec![api_request("r", json!({"doubleValue": 1.0}), 5)]);
    assert_error(&app.post("/v1/logs", batch.clone()), 401, "unauthorized");
    let auth = |req: Request| req.with_header("authorization", "Bearer s3cret");
    let mut text = auth(Request::new("POST", "/v1/logs")).with_header("content-type", "text/plain");
    text.body = b"resourceLogs".to_vec();
    assert_error(&app.send(text), 415, "unsupported_media_type");
    let bad = auth(Request::new("POST", "/v1/logs")).with_json(&json!({"resourceLogs": 7}));
    assert_error(&app.send(bad), 400, "bad_request");
    assert_eq!(app.dump(), before);
    let ok = auth(Request::new("POST", "/v1/logs")).with_json(&batch);
    assert_eq!(app.send(ok).status, 200);
}
