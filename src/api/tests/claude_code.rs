//! What a real Claude Code (2.1.337, recorded offline against a stand-in for Anthropic's
//! API: `tests/claude-code/record.mjs`) sent, replayed through the ingest routes: its hook
//! bodies and its OTLP/JSON log exports, in the order they arrived, and in other orders a
//! network may deliver them. Each session's numbers are checked against what Claude Code
//! itself reported (`<name>.result.json`, its `--output-format json`).

use std::collections::BTreeSet;

use serde_json::{json, Value as Json};

use super::App;

/// One recorded delivery.
struct Delivery {
    kind: String,
    body: Json,
}

fn fixture(jsonl: &str) -> Vec<Delivery> {
    jsonl
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let d: Json = serde_json::from_str(l).unwrap();
            Delivery {
                kind: d["kind"].as_str().unwrap().to_owned(),
                body: d["body"].clone(),
            }
        })
        .collect()
}

const TEXT: &str = include_str!("fixtures/claude_code/text.jsonl");
const TOOLS: &str = include_str!("fixtures/claude_code/tools.jsonl");
const SUBAGENT: &str = include_str!("fixtures/claude_code/subagent.jsonl");
const FAILURE: &str = include_str!("fixtures/claude_code/failure.jsonl");
const PERMISSION: &str = include_str!("fixtures/claude_code/permission.jsonl");

fn result(name: &str) -> Json {
    let text = match name {
        "text" => include_str!("fixtures/claude_code/text.result.json"),
        "tools" => include_str!("fixtures/claude_code/tools.result.json"),
        "subagent" => include_str!("fixtures/claude_code/subagent.result.json"),
        "failure" => include_str!("fixtures/claude_code/failure.result.json"),
        _ => include_str!("fixtures/claude_code/permission.result.json"),
    };
    serde_json::from_str(text).unwrap()
}

fn deliver(app: &App, deliveries: &[&Delivery]) {
    for d in deliveries {
        let path = match d.kind.as_str() {
            "hook" => "/api/ingest/claude-code",
            "otlp_logs" => "/v1/logs",
            "otlp_traces" => "/v1/traces",
            _ => "/v1/metrics",
        };
        let r = app.post(path, d.body.clone());
        assert_eq!(r.status, 200, "{path}: {}", r.json_body());
    }
}

/// The orders a session's reports may arrive in: as recorded; all telemetry first (hooks
/// delayed); all hooks first (telemetry flushed at exit).
fn orders(deliveries: &[Delivery]) -> Vec<(&'static str, Vec<&Delivery>)> {
    let recorded: Vec<&Delivery> = deliveries.iter().collect();
    let (hooks, telemetry): (Vec<&Delivery>, Vec<&Delivery>) =
        deliveries.iter().partition(|d| d.kind == "hook");
    let telemetry_first = telemetry.iter().chain(&hooks).copied().collect();
    let hooks_first = hooks.iter().chain(&telemetry).copied().collect();
    vec![
        ("as recorded", recorded),
        ("telemetry first", telemetry_first),
        ("hooks first", hooks_first),
    ]
}

fn session_id(deliveries: &[Delivery]) -> String {
    deliveries
        .iter()
        .find(|d| d.kind == "hook")
        .map(|d| d.body["session_id"].as_str().unwrap().to_owned())
        .unwrap()
}

fn get(app: &App, path: &str) -> Json {
    let r = app.get(path);
    assert_eq!(r.status, 200, "{path}");
    r.json_body()
}

fn runs(app: &App, session: &str) -> (Json, Vec<Json>) {
    let runs = get(app, &format!("/api/runtime/agents?session_id={session}"));
    let runs = runs.as_array().unwrap();
    let main = runs
        .iter()
        .find(|r| r["parent_agent_id"].is_null())
        .expect("the session's run")
        .clone();
    let children = runs
        .iter()
        .filter(|r| !r["parent_agent_id"].is_null())
        .cloned()
        .collect();
    (main, children)
}

fn cost(run: &Json) -> f64 {
    run["cost_usd"].as_f64().unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Every `tool_use_id` the hooks and the telemetry name for finished tool calls.
fn tool_use_ids(deliveries: &[Delivery]) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for d in deliveries {
        if d.kind == "hook"
            && matches!(
                d.body["hook_event_name"].as_str(),
                Some("PostToolUse" | "PostToolUseFailure")
            )
        {
            ids.insert(d.body["tool_use_id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

/// The attributes of every `claude_code.api_request` record the telemetry reported, by
/// key (their OTLP/JSON `AnyValue`s).
fn model_calls(deliveries: &[Delivery]) -> Vec<serde_json::Map<String, Json>> {
    let mut calls = Vec::new();
    for d in deliveries.iter().filter(|d| d.kind == "otlp_logs") {
        for rl in d.body["resourceLogs"].as_array().unwrap() {
            for sl in rl["scopeLogs"].as_array().unwrap() {
                for r in sl["logRecords"].as_array().unwrap() {
                    let attrs: serde_json::Map<String, Json> = r["attributes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| (a["key"].as_str().unwrap().to_owned(), a["value"].clone()))
                        .collect();
                    if attrs["event.name"]["stringValue"] == "api_request" {
                        calls.push(attrs);
                    }
                }
            }
        }
    }
    calls
}

/// The `event.timestamp` of every model call the telemetry reported.
fn call_times(deliveries: &[Delivery]) -> BTreeSet<String> {
    model_calls(deliveries)
        .iter()
        .map(|c| {
            c["event.timestamp"]["stringValue"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// A list route's rows.
fn list(app: &App, path: &str) -> Vec<Json> {
    get(app, path).as_array().unwrap().clone()
}

fn tool_logs(app: &App, run: &Json) -> Vec<Json> {
    let id = run["id"].as_str().unwrap();
    list(
        app,
        &format!("/api/runtime/logs?agent_id={id}&log_type=tool_call&limit=1000"),
    )
}

fn prompts(app: &App, run: &Json) -> Vec<Json> {
    let id = run["id"].as_str().unwrap();
    list(
        app,
        &format!("/api/runtime/prompts?agent_id={id}&limit=1000"),
    )
}

#[test]
fn a_sessions_cost_is_what_claude_code_says_it_spent_in_every_arrival_order() {
    for (name, jsonl) in [("text", TEXT), ("tools", TOOLS), ("subagent", SUBAGENT)] {
        let deliveries = fixture(jsonl);
        let expected = result(name)["total_cost_usd"].as_f64().unwrap();
        assert!(expected > 0.0);
        for (order, list) in orders(&deliveries) {
            let app = replay_app();
            deliver(&app, &list);
            let (main, children) = runs(&app, &session_id(&deliveries));
            let total = cost(&main) + children.iter().map(cost).sum::<f64>();
            assert!(
                close(total, expected),
                "{name}, {order}: {total} != Claude Code's {expected}"
            );
            assert_eq!(main["status"], "completed", "{name}, {order}");
        }
    }
}

#[test]
fn each_tool_call_is_one_log_whichever_report_comes_first() {
    for jsonl in [TOOLS, SUBAGENT] {
        let deliveries = fixture(jsonl);
        let ids = tool_use_ids(&deliveries);
        assert!(!ids.is_empty());
        for (order, list) in orders(&deliveries) {
            let app = replay_app();
            deliver(&app, &list);
            let (main, children) = runs(&app, &session_id(&deliveries));
            let logs: Vec<Json> = std::iter::once(&main)
                .chain(&children)
                .flat_map(|r| tool_logs(&app, r))
                .collect();
            let logged: Vec<&str> = logs
                .iter()
                .map(|l| l["details"]["tool_use_id"].as_str().unwrap())
                .collect();
            assert_eq!(logged.len(), ids.len(), "{order}: {logged:?}");
            assert_eq!(
                logged
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<BTreeSet<_>>(),
                ids,
                "{order}"
            );
            // Both reports are in the one log: the hook's input and the telemetry's.
            for log in &logs {
                assert!(log["details"]["tool_input"].is_object(), "{order}: {log}");
                assert!(log["details"]["telemetry"].is_object(), "{order}: {log}");
            }
        }
    }
}

#[test]
fn a_subagents_model_calls_and_cost_land_on_its_own_run() {
    let deliveries = fixture(SUBAGENT);
    let calls_of = |agent: Option<&str>| -> f64 {
        model_calls(&deliveries)
            .iter()
            .filter(|c| c.get("agent_id").and_then(|a| a["stringValue"].as_str()) == agent)
            .map(|c| {
                let cost = &c["cost_usd"];
                cost["doubleValue"]
                    .as_f64()
                    .or_else(|| cost["stringValue"].as_str()?.parse().ok())
                    .unwrap()
            })
            .sum()
    };
    for (order, list) in orders(&deliveries) {
        let app = replay_app();
        deliver(&app, &list);
        let (main, children) = runs(&app, &session_id(&deliveries));
        assert_eq!(children.len(), 1, "{order}");
        let child = &children[0];
        assert_eq!(child["parent_agent_id"], main["id"], "{order}");
        assert_eq!(child["status"], "completed", "{order}");
        assert_eq!(child["title"], "general-purpose", "{order}");
        let agent_id = child["context"]["claude_code"]["agent_id"]
            .as_str()
            .unwrap();
        assert!(cost(child) > 0.0, "{order}");
        assert!(close(cost(child), calls_of(Some(agent_id))), "{order}");
        assert!(close(cost(&main), calls_of(None)), "{order}");
        assert!(prompts(&app, child)
            .iter()
            .all(|p| p["prompt_name"] == "claude_code.api_request"));
    }
}

#[test]
fn model_calls_belong_to_the_user_prompt_they_served_at_their_own_times() {
    for jsonl in [TOOLS, SUBAGENT] {
        let deliveries = fixture(jsonl);
        for (order, list) in orders(&deliveries) {
            let app = replay_app();
            deliver(&app, &list);
            let (main, children) = runs(&app, &session_id(&deliveries));
            let user: Vec<Json> = prompts(&app, &main)
                .into_iter()
                .filter(|p| p["prompt_name"] == "UserPromptSubmit")
                .collect();
            assert_eq!(user.len(), 1, "{order}");
            assert!(user[0]["parent_prompt_id"].is_null());
            let calls: Vec<Json> = std::iter::once(&main)
                .chain(&children)
                .flat_map(|r| prompts(&app, r))
                .filter(|p| p["prompt_name"] == "claude_code.api_request")
                .collect();
            assert!(calls.len() >= 2, "{order}");
            for call in &calls {
                assert_eq!(call["parent_prompt_id"], user[0]["id"], "{order}: {call}");
                // At the call's own time, not at this test's.
                let at = call["completed_at"].as_str().unwrap();
                assert!(call_times(&deliveries).contains(at), "{order}: {call}");
                assert!(call["created_at"].as_str() <= call["completed_at"].as_str());
            }
            let id = user[0]["id"].as_str().unwrap();
            let children = get(&app, &format!("/api/runtime/prompts?parent_prompt_id={id}"));
            assert_eq!(children.as_array().unwrap().len(), calls.len(), "{order}");
        }
    }
}

#[test]
fn a_failed_session_says_what_failed() {
    let deliveries = fixture(FAILURE);
    let app = replay_app();
    deliver(&app, &deliveries.iter().collect::<Vec<_>>());
    let (main, _) = runs(&app, &session_id(&deliveries));
    // SessionEnd comes after the failure: the run stays failed, with Claude Code's words.
    assert_eq!(main["status"], "failed");
    let message = main["error_message"].as_str().unwrap();
    assert!(message.starts_with("API Error: 400"), "{message}");
    assert!(message.contains("rejected on purpose"), "{message}");
    assert!(message.ends_with("(error: unknown)"), "{message}");
    let user = &prompts(&app, &main)[0];
    assert_eq!(user["status"], "failed");
    assert_eq!(user["error_message"], main["error_message"]);
}

#[test]
fn a_session_is_named_by_its_project_and_first_prompt() {
    let deliveries = fixture(TEXT);
    for (order, list) in orders(&deliveries) {
        let app = replay_app();
        deliver(&app, &list);
        let session = session_id(&deliveries);
        let (main, _) = runs(&app, &session);
        assert_eq!(
            main["project"], "/tmp/claude-code-fixture/project",
            "{order}"
        );
        assert_eq!(main["title"], "SCENARIO:text Say hello.", "{order}");
        let s = get(&app, &format!("/api/runtime/sessions/{session}"));
        assert_eq!(s["title"], main["title"]);
        assert_eq!(s["project"], main["project"]);
        let listed = get(&app, "/api/runtime/sessions");
        assert_eq!(listed[0]["title"], main["title"]);
        // The search box finds it by its title and its folder.
        for q in ["say%20hello", "claude-code-fixture"] {
            let found = get(&app, &format!("/api/runtime/agents?q={q}"));
            assert_eq!(found.as_array().unwrap().len(), 1, "{q}");
        }
    }
}

#[test]
fn the_feed_carries_each_cost_change_once_per_export() {
    let deliveries = fixture(SUBAGENT);
    let app = replay_app();
    deliver(&app, &deliveries.iter().collect::<Vec<_>>());
    let (main, children) = runs(&app, &session_id(&deliveries));
    let feed = get(&app, "/api/events?after=0&limit=1000");
    let events = feed["events"].as_array().unwrap();
    for run in std::iter::once(&main).chain(&children) {
        let last = events
            .iter()
            .rev()
            .find(|e| e["data"]["id"] == run["id"])
            .unwrap();
        assert!(close(cost(&last["data"]), cost(run)), "{last}");
    }
    // One export held all of the session's calls: one cost event per run it touched.
    let exports = deliveries.iter().filter(|d| d.kind == "otlp_logs").count();
    let cost_events = get(
        &app,
        &format!(
            "/api/runtime/logs?agent_id={}&log_type=cost_update",
            main["id"].as_str().unwrap()
        ),
    );
    let n = cost_events.as_array().unwrap().len();
    assert!(
        n >= 1 && n <= exports,
        "{n} cost events for {exports} exports"
    );
}

#[test]
fn a_late_cost_reaches_the_feed_after_the_run_ended() {
    let app = replay_app();
    let hook = |event: &str| {
        json!({"session_id": "late", "hook_event_name": event, "prompt_id": "p1",
               "prompt": "do it", "cwd": "/w"})
    };
    for event in ["UserPromptSubmit", "Stop", "SessionEnd"] {
        assert_eq!(app.post("/api/ingest/claude-code", hook(event)).status, 200);
    }
    let head = get(&app, "/api/events?after=0&limit=1000")["cursor"]
        .as_i64()
        .unwrap();
    let export = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "attributes": [
            {"key": "event.name", "value": {"stringValue": "api_request"}},
            {"key": "session.id", "value": {"stringValue": "late"}},
            {"key": "prompt.id", "value": {"stringValue": "p1"}},
            {"key": "cost_usd", "value": {"doubleValue": 0.42}},
            {"key": "input_tokens", "value": {"stringValue": "7"}}]}]}]}]});
    assert_eq!(app.post("/v1/logs", export).status, 200);
    let feed = get(&app, &format!("/api/events?after={head}"));
    let events = feed["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{feed}");
    assert_eq!(events[0]["type"], "agent_update");
    assert_eq!(events[0]["data"]["status"], "completed");
    assert!(close(cost(&events[0]["data"]), 0.42));
    assert_eq!(events[0]["data"]["tokens_input"], 7);
}

#[test]
fn a_cost_update_log_a_client_posts_is_a_log_not_an_event() {
    let app = replay_app();
    let run = app.run();
    let id = run["id"].as_str().unwrap();
    let head = get(&app, "/api/events?after=0")["cursor"].as_i64().unwrap();
    let r = app.post(
        "/api/runtime/logs",
        json!({"source": "agent", "agent_id": id, "log_type": "cost_update",
               "message": "spent", "details": {"run": {"id": "forged"}}}),
    );
    assert_eq!(r.status, 201);
    let feed = get(&app, &format!("/api/events?after={head}"));
    assert_eq!(feed["events"], json!([]));
}

#[test]
fn a_permission_request_session_lands_whole() {
    let deliveries = fixture(PERMISSION);
    let app = replay_app();
    deliver(&app, &deliveries.iter().collect::<Vec<_>>());
    let (main, _) = runs(&app, &session_id(&deliveries));
    let expected = result("permission")["total_cost_usd"].as_f64().unwrap();
    assert!(close(cost(&main), expected));
}

/// An app for replaying recordings: nobody is at the dashboard to decide an approval
/// (as when they were recorded), so a PermissionRequest is answered at once, undecided.
fn replay_app() -> App {
    App::with_config(crate::http::Config {
        approval_wait: std::time::Duration::ZERO,
        ..Default::default()
    })
}
