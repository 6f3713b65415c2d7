//! Steering through hook answers: stop, budgets, tool rules, approvals, follow-ups. The
//! held flows run the hook on one thread and decide on another, on a database file (as
//! two requests of a host would).

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use super::{assert_error, assert_invalid, App};
use crate::db::native::FileConnector;
use crate::http::{Config, Group, Request, Response, Route};

const HOOKS: &str = "/api/ingest/claude-code";

fn hook(event: &str, session: &str, extra: Json) -> Json {
    let mut body = json!({
        "session_id": session,
        "hook_event_name": event,
        "cwd": "/work/app",
        "transcript_path": "/tmp/t.jsonl",
        "prompt_id": "p-1",
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

fn bash(command: &str) -> Json {
    json!({"tool_name": "Bash", "tool_input": {"command": command}, "tool_use_id": "t1"})
}

/// The one run of a Claude Code session.
fn session_run(app: &App, session: &str) -> Json {
    let runs = app
        .get(&format!("/api/runtime/agents?session_id={session}"))
        .json_body();
    runs.as_array().unwrap()[0].clone()
}

/// A definition named `claude-code` (what hooks land on) with this policy.
fn claude_code_with(app: &App, policy: Json) {
    let r = app.post(
        "/api/agents",
        json!({"name": "claude-code", "agent_type": "builder", "policy": policy}),
    );
    assert_eq!(r.status, 201, "{}", r.json_body());
}

#[test]
fn a_policy_is_validated_and_a_bad_rule_is_named() {
    let app = App::new();
    let before = app.dump();
    let r = app.post(
        "/api/agents",
        json!({"name": "a", "agent_type": "builder",
               "policy": {"deny_tools": ["WebFetch", "Bash(rm -rf"]}}),
    );
    assert_invalid(&r, "policy.deny_tools[1]");
    assert!(r.json_body()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Bash(rm -rf"));
    let r = app.post(
        "/api/agents",
        json!({"name": "a", "agent_type": "builder", "policy": {"budget": 5}}),
    );
    assert_invalid(&r, "policy.budget");
    assert_eq!(app.dump(), before, "a rejected policy writes nothing");

    let r = app.post(
        "/api/agents",
        json!({"name": "a", "agent_type": "builder",
               "policy": {"max_cost_usd": 2, "ask_tools": [" Write "]}}),
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        r.json_body()["policy"],
        json!({"max_cost_usd": 2.0, "ask_tools": ["Write"]})
    );
    // A run's own policy is validated the same way.
    let id = r.json_body()["id"].clone();
    let r = app.post(
        "/api/runtime/agents",
        json!({"orchestrator_agent_id": id, "session_id": "s",
               "config": {"policy": {"ask_tools": ["Bash("]}}}),
    );
    assert_invalid(&r, "config.policy.ask_tools[0]");
}

#[test]
fn a_deny_rule_refuses_the_call_says_why_and_logs_it() {
    let app = App::new();
    claude_code_with(&app, json!({"deny_tools": ["Bash(rm -rf:*)"]}));
    let r = app.post(
        HOOKS,
        hook("PreToolUse", "s1", bash("cd /tmp && rm -rf build")),
    );
    assert_eq!(r.status, 200);
    let out = &r.json_body()["hookSpecificOutput"];
    assert_eq!(out["permissionDecision"], "deny");
    assert!(out["permissionDecisionReason"]
        .as_str()
        .unwrap()
        .contains("Bash(rm -rf:*)"));
    let run = session_run(&app, "s1");
    let logs = app
        .get(&format!(
            "/api/runtime/logs?agent_id={}&log_type=tool_call",
            run["id"].as_str().unwrap()
        ))
        .json_body();
    assert_eq!(logs.as_array().unwrap().len(), 1, "{logs}");
    assert_eq!(logs[0]["details"]["denied"], true);
    // A call no rule names gets no instruction.
    let r = app.post(HOOKS, hook("PreToolUse", "s1", bash("ls")));
    assert_eq!(r.json_body(), json!({}));
}

#[test]
fn a_cancelled_run_stops_its_session_at_each_kind_of_hook() {
    let app = App::new();
    app.post(
        HOOKS,
        hook("UserPromptSubmit", "s2", json!({"prompt": "go"})),
    );
    let run = session_run(&app, "s2");
    let r = app.patch(
        &format!("/api/runtime/agents/{}", run["id"].as_str().unwrap()),
        json!({"status": "cancelled", "error_message": "Stopped from the dashboard"}),
    );
    assert_eq!(r.status, 200);
    let post = app
        .post(HOOKS, hook("PostToolUse", "s2", bash("ls")))
        .json_body();
    assert_eq!(post["continue"], false, "{post}");
    assert!(post["stopReason"]
        .as_str()
        .unwrap()
        .contains("Stopped from the dashboard"));
    let pre = app
        .post(HOOKS, hook("PreToolUse", "s2", bash("ls")))
        .json_body();
    assert_eq!(pre["hookSpecificOutput"]["permissionDecision"], "deny");
    let ask = app
        .post(HOOKS, hook("PermissionRequest", "s2", bash("ls")))
        .json_body();
    assert_eq!(ask["hookSpecificOutput"]["decision"]["behavior"], "deny");
    assert_eq!(ask["hookSpecificOutput"]["decision"]["interrupt"], true);
    // A subagent of the stopped session is stopped too.
    let sub = app
        .post(
            HOOKS,
            hook(
                "PreToolUse",
                "s2",
                json!({"agent_id": "a1", "tool_name": "Read"}),
            ),
        )
        .json_body();
    assert_eq!(sub["continue"], false);
}

#[test]
fn a_budget_reached_cancels_the_run_and_stops_the_next_hook() {
    let app = App::new();
    claude_code_with(&app, json!({"max_cost_usd": 0.5}));
    app.post(
        HOOKS,
        hook("UserPromptSubmit", "s3", json!({"prompt": "go"})),
    );
    let run = session_run(&app, "s3");
    // Spend recorded through the API (telemetry does the same through the ingest).
    let prompt = app
        .post(
            "/api/runtime/prompts",
            json!({"agent_id": run["id"], "prompt_type": "command", "prompt_text": "x"}),
        )
        .json_body();
    let r = app.patch(
        &format!("/api/runtime/prompts/{}", prompt["id"].as_str().unwrap()),
        json!({"status": "completed", "cost_usd": 0.75}),
    );
    assert_eq!(r.status, 200, "{}", r.json_body());
    let answer = app
        .post(HOOKS, hook("PreToolUse", "s3", bash("ls")))
        .json_body();
    assert_eq!(answer["continue"], false, "{answer}");
    assert!(answer["stopReason"]
        .as_str()
        .unwrap()
        .contains("max_cost_usd"));
    let run = session_run(&app, "s3");
    assert_eq!(run["status"], "cancelled");
    assert!(run["error_message"].as_str().unwrap().contains("budget"));
}

#[test]
fn an_approval_nobody_decides_expires_and_the_hook_gets_no_decision() {
    let app = App::with_config(Config {
        approval_wait: Duration::ZERO,
        ..Default::default()
    });
    let r = app.post(HOOKS, hook("PermissionRequest", "s4", bash("git push")));
    assert_eq!(r.status, 200);
    assert_eq!(r.json_body(), json!({}));
    let list = app.get("/api/approvals?session_id=s4").json_body();
    assert_eq!(list[0]["status"], "expired", "{list}");
    assert_eq!(list[0]["tool_name"], "Bash");
    assert_eq!(list[0]["rule"], Json::Null);
    let id = list[0]["id"].as_str().unwrap();
    let r = app.post(
        &format!("/api/approvals/{id}/decision"),
        json!({"behavior": "allow"}),
    );
    assert_error(&r, 409, "conflict");
}

/// Two "requests" on one database file: `send` from any thread.
#[derive(Clone)]
struct Shared {
    connector: FileConnector,
    config: Config,
    _dir: std::sync::Arc<tempfile::TempDir>,
}

impl Shared {
    fn new(approval_wait: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let connector = FileConnector {
            path: dir.path().join("steer.db"),
        };
        Shared {
            connector,
            config: Config {
                approval_wait,
                ..Default::default()
            },
            _dir: std::sync::Arc::new(dir),
        }
    }

    fn send(&self, req: Request) -> Response {
        let group = Route::resolve(&req.path).map_or(Group::Meta, |r| r.group());
        crate::api::handle(group, &self.connector, &self.config, &req)
    }

    fn post(&self, path: &str, body: Json) -> Response {
        self.send(Request::new("POST", path).with_json(&body))
    }

    fn get(&self, path: &str) -> Json {
        self.send(Request::new("GET", path)).json_body()
    }

    /// Send a hook on its own thread; it may be held.
    fn hook_in_background(&self, body: Json) -> thread::JoinHandle<Json> {
        let me = self.clone();
        thread::spawn(move || me.post(HOOKS, body).json_body())
    }

    /// The first pending approval of `session`, once there is one.
    fn pending(&self, session: &str) -> Json {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let list = self.get(&format!(
                "/api/approvals?status=pending&session_id={session}"
            ));
            if let Some(first) = list.as_array().and_then(|l| l.first()) {
                return first.clone();
            }
            assert!(Instant::now() < deadline, "no approval appeared");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn a_held_permission_request_returns_the_persons_decision_and_the_feed_shows_it() {
    let app = Shared::new(Duration::from_secs(60));
    let held = app.hook_in_background(hook("PermissionRequest", "s5", bash("git push")));
    let approval = app.pending("s5");
    assert_eq!(approval["hook_event"], "PermissionRequest");
    assert_eq!(approval["tool_input"]["command"], "git push");
    let id = approval["id"].as_str().unwrap();
    let r = app.post(
        &format!("/api/approvals/{id}/decision"),
        json!({"behavior": "allow", "scope": "session"}),
    );
    assert_eq!(r.status, 200, "{}", r.json_body());
    assert_eq!(r.json_body()["status"], "allowed");
    let answer = held.join().unwrap();
    assert_eq!(
        answer["hookSpecificOutput"],
        json!({"hookEventName": "PermissionRequest", "decision": {"behavior": "allow"}})
    );
    // One decision wins; the second is a 409 and changes nothing.
    let again = app.post(
        &format!("/api/approvals/{id}/decision"),
        json!({"behavior": "deny"}),
    );
    assert_error(&again, 409, "conflict");
    // The feed carried the request and the decision, in the runs' cursor sequence.
    let feed = app.get("/api/events?after=0&limit=1000");
    let approvals: Vec<&Json> = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "approval_update")
        .collect();
    let statuses: Vec<&str> = approvals
        .iter()
        .map(|e| e["data"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["pending", "allowed"]);
    // Allowed for the session: the same tool is let through without asking again.
    let r = app.post(HOOKS, hook("PermissionRequest", "s5", bash("git push -f")));
    assert_eq!(
        r.json_body()["hookSpecificOutput"]["decision"]["behavior"],
        "allow"
    );
    let all = app.get("/api/approvals?session_id=s5");
    assert_eq!(
        all.as_array().unwrap().len(),
        1,
        "no second approval: {all}"
    );
}

#[test]
fn an_ask_rule_holds_pre_tool_use_and_a_denial_reaches_the_model_with_its_message() {
    let app = Shared::new(Duration::from_secs(60));
    let r = app.post(
        "/api/agents",
        json!({"name": "claude-code", "agent_type": "builder",
               "policy": {"ask_tools": ["Bash(git push:*)"]}}),
    );
    assert_eq!(r.status, 201);
    // A call no ask rule names is not held.
    let r = app.post(HOOKS, hook("PreToolUse", "s6", bash("git status")));
    assert_eq!(r.json_body(), json!({}));
    let held = app.hook_in_background(hook("PreToolUse", "s6", bash("git push origin main")));
    let approval = app.pending("s6");
    assert_eq!(approval["rule"], "Bash(git push:*)");
    let r = app.post(
        &format!(
            "/api/approvals/{}/decision",
            approval["id"].as_str().unwrap()
        ),
        json!({"behavior": "deny", "message": "not on a Friday"}),
    );
    assert_eq!(r.status, 200);
    let answer = held.join().unwrap();
    assert_eq!(answer["hookSpecificOutput"]["permissionDecision"], "deny");
    assert_eq!(
        answer["hookSpecificOutput"]["permissionDecisionReason"],
        "not on a Friday"
    );
}

#[test]
fn stopping_a_run_releases_its_held_hook_with_a_stop() {
    let app = Shared::new(Duration::from_secs(60));
    let held = app.hook_in_background(hook("PermissionRequest", "s7", bash("make deploy")));
    let approval = app.pending("s7");
    let run_id = approval["run_id"].as_str().unwrap();
    let r = app.send(
        Request::new("PATCH", &format!("/api/runtime/agents/{run_id}"))
            .with_json(&json!({"status": "cancelled"})),
    );
    assert_eq!(r.status, 200);
    let answer = held.join().unwrap();
    assert_eq!(answer["continue"], false, "{answer}");
    assert_eq!(answer["hookSpecificOutput"]["decision"]["interrupt"], true);
    let after = app.get(&format!(
        "/api/approvals/{}",
        approval["id"].as_str().unwrap()
    ));
    assert_eq!(after["status"], "cancelled");
}

#[test]
fn decisions_and_follow_ups_refuse_bad_input_and_change_nothing() {
    let app = App::new();
    for (body, field) in [
        (json!({"behavior": "maybe"}), "behavior"),
        (json!({"behavior": "allow", "scope": "forever"}), "scope"),
        (json!({}), "behavior"),
        (json!({"behavior": "allow", "extra": 1}), "extra"),
    ] {
        let r = app.post(
            "/api/approvals/00000000-0000-4000-8000-000000000000/decision",
            body,
        );
        assert_invalid(&r, field);
    }
    let r = app.post(
        "/api/approvals/00000000-0000-4000-8000-000000000000/decision",
        json!({"behavior": "allow"}),
    );
    assert_error(&r, 404, "not_found");

    let run = app.run();
    let id = run["id"].as_str().unwrap();
    let before = app.dump();
    assert_invalid(
        &app.post(
            &format!("/api/runtime/agents/{id}/messages"),
            json!({"text": " "}),
        ),
        "text",
    );
    app.patch(
        &format!("/api/runtime/agents/{id}"),
        json!({"status": "completed"}),
    );
    let before_final = app.dump();
    assert_ne!(before, before_final);
    let r = app.post(
        &format!("/api/runtime/agents/{id}/messages"),
        json!({"text": "one more thing"}),
    );
    assert_error(&r, 409, "conflict");
    assert_eq!(
        app.dump(),
        before_final,
        "a refused follow-up writes nothing"
    );
}

#[test]
fn a_follow_up_is_delivered_at_the_next_stop_and_completed_at_the_one_after() {
    let app = App::new();
    app.post(
        HOOKS,
        hook("UserPromptSubmit", "s8", json!({"prompt": "build it"})),
    );
    let run = session_run(&app, "s8");
    let id = run["id"].as_str().unwrap();
    let r = app.post(
        &format!("/api/runtime/agents/{id}/messages"),
        json!({"text": "also add tests"}),
    );
    assert_eq!(r.status, 201, "{}", r.json_body());
    let prompt = r.json_body();
    assert_eq!(prompt["prompt_type"], "followup");
    assert_eq!(prompt["status"], "pending");
    let answer = app.post(HOOKS, hook("Stop", "s8", json!({}))).json_body();
    assert_eq!(
        answer,
        json!({"decision": "block", "reason": "also add tests"})
    );
    let p = app.get(&format!(
        "/api/runtime/prompts/{}",
        prompt["id"].as_str().unwrap()
    ));
    assert_eq!(p.json_body()["status"], "streaming");
    let answer = app
        .post(HOOKS, hook("Stop", "s8", json!({"stop_hook_active": true})))
        .json_body();
    assert_eq!(answer, json!({}));
    let p = app.get(&format!(
        "/api/runtime/prompts/{}",
        prompt["id"].as_str().unwrap()
    ));
    assert_eq!(p.json_body()["status"], "completed");
}

#[test]
fn a_held_stop_continues_with_a_follow_up_posted_while_it_waits() {
    let app = Shared::new(Duration::from_secs(60));
    let r = app.post(
        "/api/agents",
        json!({"name": "claude-code", "agent_type": "builder",
               "policy": {"hold_on_stop_secs": 30}}),
    );
    assert_eq!(r.status, 201);
    app.post(
        HOOKS,
        hook("UserPromptSubmit", "s9", json!({"prompt": "go"})),
    );
    let runs = app.get("/api/runtime/agents?session_id=s9");
    let id = runs[0]["id"].as_str().unwrap().to_owned();
    let held = app.hook_in_background(hook("Stop", "s9", json!({})));
    thread::sleep(Duration::from_millis(300));
    assert!(!held.is_finished(), "the Stop waits for a person");
    let r = app.post(
        &format!("/api/runtime/agents/{id}/messages"),
        json!({"text": "now deploy"}),
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        held.join().unwrap(),
        json!({"decision": "block", "reason": "now deploy"})
    );
}

#[test]
fn a_session_started_for_a_dispatched_run_becomes_its_child() {
    let app = App::new();
    let parent = app.run();
    let parent_id = parent["id"].as_str().unwrap();
    let r = app.send(
        Request::new("POST", HOOKS)
            .with_json(&hook("UserPromptSubmit", "s10", json!({"prompt": "plan"})))
            .with_header("x-orchestrator-run-id", parent_id),
    );
    assert_eq!(r.status, 200);
    assert_eq!(session_run(&app, "s10")["parent_agent_id"], parent_id);
    // Outside a runner Claude Code sends the header empty: a run of its own.
    let r = app.send(
        Request::new("POST", HOOKS)
            .with_json(&hook("UserPromptSubmit", "s11", json!({"prompt": "plan"})))
            .with_header("x-orchestrator-run-id", ""),
    );
    assert_eq!(r.status, 200);
    assert_eq!(session_run(&app, "s11")["parent_agent_id"], Json::Null);
}

#[test]
fn the_feed_reads_only_its_own_rows_through_its_partial_index() {
    use crate::db::Database;
    let app = App::new();
    let mut plan = app
        .connector
        .db()
        .execute(
            &format!("EXPLAIN QUERY PLAN {}", crate::store::events::FEED_SQL),
            &[0.into(), 100.into()],
        )
        .unwrap();
    let steps: Vec<String> = plan.iter().map(|mut row| row.text(3).unwrap()).collect();
    assert!(
        steps.iter().any(|s| s.contains("agent_logs_events")),
        "the feed scans the partial index, not the table: {steps:?}"
    );
    // A run's other milestones (a runner's output, notifications) are not events.
    let run = app.run();
    let id = run["id"].as_str().unwrap();
    let cursor = app.get("/api/events?after=0&limit=1000").json_body()["cursor"].clone();
    for i in 0..3 {
        let r = app.post(
            "/api/runtime/logs",
            json!({"source": "agent", "agent_id": id, "log_type": "milestone",
                   "message": format!("line {i}"), "details": {"output": "x"}}),
        );
        assert_eq!(r.status, 201, "{}", r.json_body());
    }
    let feed = app
        .get(&format!("/api/events?after={cursor}&limit=1000"))
        .json_body();
    assert_eq!(feed["events"], json!([]));
}
