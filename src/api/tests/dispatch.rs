//! Dispatch (docs/dispatch.md): runs queued for runners, claims, leases, output, exits.
//! Over 600 lines on purpose: one queue's life (queue, claim, lease, output, exit) in one
//! place, sharing its setup.

use std::time::Duration;

use serde_json::{json, Value as Json};

use super::{assert_error, assert_invalid, App};
use crate::db::Database;
use crate::http::Config;
use crate::store::dispatches;

/// A definition whose command is `command` (written as the schema keeps it).
fn definition_with(app: &App, command: Json) -> Json {
    let def = app.definition(&format!("adw-{}", uuid::Uuid::new_v4()));
    app.connector
        .db()
        .execute(
            "UPDATE orchestrator_agents SET command = ?2, working_dir = '/tmp', timeout_secs = 60 \
             WHERE id = ?1",
            &[
                def["id"].as_str().unwrap().into(),
                command.to_string().into(),
            ],
        )
        .unwrap();
    def
}

fn dispatch(app: &App, def: &Json, input: &str) -> Json {
    let r = app.post(
        "/api/runtime/agents",
        json!({ "orchestrator_agent_id": def["id"], "dispatch": { "input": input } }),
    );
    assert_eq!(r.status, 201, "{}", r.json_body());
    r.json_body()
}

fn claim(app: &App, runner: &str) -> Json {
    let r = app.post("/api/runner/claim", json!({ "runner": runner }));
    assert_eq!(r.status, 200, "{}", r.json_body());
    r.json_body()["claim"].clone()
}

fn report(app: &App, run_id: &str, what: &str, body: Json) -> crate::http::Response {
    app.post(&format!("/api/runner/runs/{run_id}/{what}"), body)
}

fn get_run(app: &App, id: &str) -> Json {
    let r = app.get(&format!("/api/runtime/agents/{id}"));
    assert_eq!(r.status, 200);
    r.json_body()
}

#[test]
fn a_dispatched_run_is_queued_with_its_argv_resolved() {
    let app = App::new();
    let def = definition_with(
        &app,
        json!([
            "uv",
            "run",
            "adw.py",
            "{input}",
            "--run={run_id}",
            "{session_id}",
            "{x"
        ]),
    );
    let run = dispatch(&app, &def, "42 {run_id}");
    assert_eq!(run["status"], "initializing");
    let id = run["id"].as_str().unwrap();
    let session = run["session_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(session).is_ok(), "a fresh session");
    let d = &run["dispatch"];
    assert_eq!(d["state"], "queued");
    assert_eq!(d["input"], "42 {run_id}");
    assert_eq!(d["runner"], json!(null));
    assert_eq!(d["exit_code"], json!(null));
    assert_eq!(d["queued_at"], run["started_at"]);
    // One pass: the input's own "{run_id}" stays as it is; "{x" is text.
    assert_eq!(
        d["argv"],
        json!([
            "uv",
            "run",
            "adw.py",
            "42 {run_id}",
            format!("--run={id}"),
            session,
            "{x"
        ])
    );
    // The first event carries the dispatch.
    let details: Json = serde_json::from_str(
        &app.connector
            .db()
            .execute(
                "SELECT details FROM agent_logs WHERE agent_id = ?1 AND log_type = 'state_change'",
                &[id.into()],
            )
            .unwrap()
            .first()
            .unwrap()
            .text(0)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(details["run"], run);
    // A run that was not dispatched has null.
    assert_eq!(app.run()["dispatch"], json!(null));
    assert_eq!(get_run(&app, id)["dispatch"], run["dispatch"]);
}

#[test]
fn placeholders_are_substituted_in_one_pass_and_unknown_ones_are_named() {
    let argv: Vec<String> = [
        "a{input}b",
        "{run_id}{session_id}",
        "{}",
        "{not closed",
        "x}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = crate::domain::command::resolve(&argv, "{session_id}", "R", "S").unwrap();
    assert_eq!(out, ["a{session_id}b", "RS", "{}", "{not closed", "x}"]);
    let err = crate::domain::command::resolve(&["{inputs}".into()], "", "R", "S").unwrap_err();
    assert!(err.contains("{inputs}"), "{err}");
}

#[test]
fn dispatching_refuses_what_cannot_run_and_writes_nothing() {
    let app = App::new();
    let plain = app.definition("no-command");
    let before = app.dump();
    let r = app.post(
        "/api/runtime/agents",
        json!({ "orchestrator_agent_id": plain["id"], "dispatch": { "input": "x" } }),
    );
    assert_invalid(&r, "dispatch");
    assert_eq!(app.dump(), before);
    assert!(r.json_body()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no command"));
    // A stored command with a placeholder that does not exist (a direct writer's).
    let odd = definition_with(&app, json!(["run", "{branch}"]));
    let before_odd = app.dump();
    let r = app.post(
        "/api/runtime/agents",
        json!({ "orchestrator_agent_id": odd["id"], "dispatch": {} }),
    );
    assert_invalid(&r, "dispatch");
    assert!(r.json_body()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("{branch}"));
    assert_eq!(app.dump(), before_odd);
    let good = definition_with(&app, json!(["true"]));
    for (body, field) in [
        (json!({ "dispatch": "x" }), "dispatch"),
        (json!({ "dispatch": { "input": 3 } }), "dispatch.input"),
        (json!({ "dispatch": { "inputs": "x" } }), "dispatch.inputs"),
        (
            json!({ "dispatch": { "input": "x".repeat(dispatches::MAX_INPUT + 1) } }),
            "dispatch.input",
        ),
    ] {
        let mut body = body;
        body["orchestrator_agent_id"] = good["id"].clone();
        assert_invalid(&app.post("/api/runtime/agents", body), field);
    }
    // Without dispatch, session_id is still required.
    assert_invalid(
        &app.post(
            "/api/runtime/agents",
            json!({ "orchestrator_agent_id": good["id"] }),
        ),
        "session_id",
    );
}

#[test]
fn two_runners_one_run_one_wins() {
    let app = App::new();
    let def = definition_with(&app, json!(["echo", "{input}"]));
    let run = dispatch(&app, &def, "hi");
    let first = claim(&app, "a");
    let second = claim(&app, "b");
    assert_eq!(first["run"]["id"], run["id"]);
    assert_eq!(second, json!(null));
    assert_eq!(first["run"]["status"], "executing");
    assert_eq!(first["run"]["dispatch"]["state"], "running");
    assert_eq!(first["run"]["dispatch"]["runner"], "a");
    assert_eq!(first["argv"], json!(["echo", "hi"]));
    assert_eq!(first["working_dir"], "/tmp");
    assert_eq!(first["timeout_secs"], 60);
    assert_eq!(first["lease_secs"], 30);
    assert_eq!(first["env"]["ORCHESTRATOR_RUN_ID"], run["id"]);
    assert_eq!(first["env"]["ORCHESTRATOR_SESSION_ID"], run["session_id"]);
    // The move to executing is an event whose run carries the running dispatch.
    let last: Json = serde_json::from_str(
        &app.connector
            .db()
            .execute(
                "SELECT details FROM agent_logs WHERE log_type = 'state_change' ORDER BY id DESC",
                &[],
            )
            .unwrap()
            .first()
            .unwrap()
            .text(0)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["to"], "executing");
    assert_eq!(last["run"]["dispatch"]["state"], "running");
}

#[test]
fn concurrent_claims_on_one_file_never_share_a_run() {
    use crate::db::native::FileConnector;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claims.db");
    let connector = FileConnector { path: path.clone() };
    let db = crate::migrations::open(&connector).unwrap();
    db.execute(
        "INSERT INTO orchestrator_agents (id, name, agent_type, capabilities, created_at, \
         updated_at, command) VALUES ('00000000-0000-4000-8000-000000000001', 'adw', 'builder', \
         '[]', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', '[\"true\"]')",
        &[],
    )
    .unwrap();
    let def: crate::domain::DefinitionId =
        crate::domain::Id::parse("00000000-0000-4000-8000-000000000001")
            .unwrap()
            .into();
    for n in 0..40 {
        let new = crate::store::runs::NewRun {
            orchestrator_agent_id: def.clone(),
            session_id: format!("s{n}"),
            parent_agent_id: None,
            context: "{}".into(),
            config: "{}".into(),
            title: None,
            project: None,
        };
        crate::db::write_transaction(&db, |db| {
            let command = dispatches::command_of(db, &def)?;
            crate::store::runs::insert_with(db, new.clone(), |db, run| {
                dispatches::queue(db, run, &command, "")?;
                Ok(true)
            })
        })
        .unwrap();
    }
    let claimed: Vec<crate::domain::RunId> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let connector = FileConnector { path: path.clone() };
                scope.spawn(move || {
                    let db = crate::migrations::open(&connector).unwrap();
                    let mut mine = Vec::new();
                    while let Some(c) =
                        dispatches::claim(&db, &format!("r{t}"), Duration::from_secs(30)).unwrap()
                    {
                        mine.push(c.run.id);
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut unique = claimed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(claimed.len(), 40, "every run claimed");
    assert_eq!(unique.len(), 40, "no run claimed twice");
}

#[test]
fn a_claim_waits_for_work_and_answers_null_at_the_deadline() {
    let app = App::new();
    let started = std::time::Instant::now();
    let r = app.post("/api/runner/claim", json!({ "runner": "a", "wait": 1 }));
    assert_eq!(r.status, 200);
    assert_eq!(r.json_body(), json!({ "claim": null }));
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_invalid(
        &app.post("/api/runner/claim", json!({ "runner": "a", "wait": 31 })),
        "wait",
    );
    assert_invalid(&app.post("/api/runner/claim", json!({})), "runner");
    assert_invalid(
        &app.post("/api/runner/claim", json!({ "runner": "a", "x": 1 })),
        "x",
    );
}

#[test]
fn output_is_kept_as_logs_bounded_and_the_exit_completes_or_fails_the_run() {
    let app = App::new();
    let def = definition_with(&app, json!(["sh", "-c", "{input}"]));
    let run = dispatch(&app, &def, "x");
    let c = claim(&app, "a");
    let id = run["id"].as_str().unwrap();
    let lease = c["lease"].as_str().unwrap();
    let long = "é".repeat(dispatches::MAX_LINE_BYTES); // 2 bytes each
    let r = report(
        &app,
        id,
        "output",
        json!({ "lease": lease, "lines": [
            { "stream": "stdout", "text": "one" },
            { "stream": "stderr", "text": "two" },
            { "stream": "stdout", "text": long },
        ]}),
    );
    assert_eq!(r.status, 200, "{}", r.json_body());
    assert_eq!(
        r.json_body(),
        json!({ "kept": 3, "cut": 1, "dropped": 0, "duplicates": 0, "cancelled": false })
    );
    let logs = app
        .get(&format!(
            "/api/runtime/logs?agent_id={id}&log_type=performance"
        ))
        .json_body();
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 3);
    // Newest first.
    assert!(logs[0]["message"]
        .as_str()
        .unwrap()
        .ends_with("[cut: 8192 bytes]"));
    assert!(logs[0]["message"].as_str().unwrap().len() < dispatches::MAX_LINE_BYTES + 40);
    assert_eq!(logs[1]["message"], "two");
    assert_eq!(logs[1]["log_level"], "WARNING");
    assert_eq!(logs[1]["details"], json!({ "output": "stderr", "seq": 2 }));
    assert_eq!(logs[2]["details"], json!({ "output": "stdout", "seq": 1 }));
    // A batch sent again (its answer was lost) is not kept twice; a gap is said.
    let again = |from: i64, lines: Json| {
        report(
            &app,
            id,
            "output",
            json!({ "lease": lease, "from": from, "lines": lines }),
        )
        .json_body()
    };
    let a = json!({ "stream": "stdout", "text": "a" });
    let b = json!({ "stream": "stdout", "text": "b" });
    assert_eq!(again(3, json!([a, b]))["kept"], 2);
    let twice = again(3, json!([a, b]));
    assert_eq!(
        (twice["kept"].as_i64(), twice["duplicates"].as_i64()),
        (Some(0), Some(2))
    );
    let partly = again(4, json!([b, a]));
    assert_eq!(
        (partly["kept"].as_i64(), partly["duplicates"].as_i64()),
        (Some(1), Some(1))
    );
    let gap = again(10, json!([b]));
    assert_eq!(gap["kept"], 2, "the lost-lines line and b");
    let logs = app
        .get(&format!(
            "/api/runtime/logs?agent_id={id}&log_type=performance&limit=2"
        ))
        .json_body();
    assert_eq!(logs[0]["message"], "b");
    assert_eq!(
        logs[1]["message"],
        "… 4 lines lost while the runner could not reach the API"
    );
    // Batch bounds and shapes.
    let too_many: Vec<Json> = (0..=dispatches::MAX_LINES_PER_BATCH)
        .map(|_| json!({ "stream": "stdout", "text": "x" }))
        .collect();
    assert_invalid(
        &report(
            &app,
            id,
            "output",
            json!({ "lease": lease, "lines": too_many }),
        ),
        "lines",
    );
    assert_invalid(
        &report(
            &app,
            id,
            "output",
            json!({ "lease": lease, "lines": [{ "stream": "tty", "text": "x" }] }),
        ),
        "lines[0].stream",
    );
    // Exit 3: failed with the code and the last lines.
    let r = report(&app, id, "exit", json!({ "lease": lease, "exit_code": 3 }));
    assert_eq!(r.status, 200, "{}", r.json_body());
    let done = r.json_body()["run"].clone();
    assert_eq!(done["status"], "failed");
    let message = done["error_message"].as_str().unwrap();
    assert!(message.starts_with("exited with code 3"), "{message}");
    assert!(message.contains("one\ntwo"), "{message}");
    assert!(message.ends_with("b"), "{message}");
    assert_eq!(done["dispatch"]["state"], "exited");
    assert_eq!(done["dispatch"]["exit_code"], 3);
    assert!(done["dispatch"]["ended_at"].is_string());
    // The same report again changes nothing; a stale lease cannot write.
    let again = report(&app, id, "exit", json!({ "lease": lease, "exit_code": 3 }));
    assert_eq!(again.status, 200);
    assert_eq!(again.json_body()["run"], done);
    assert_error(
        &report(&app, id, "heartbeat", json!({ "lease": lease })),
        409,
        "conflict",
    );
    assert_error(
        &report(&app, id, "output", json!({ "lease": "other", "lines": [] })),
        409,
        "conflict",
    );
    // Exit 0: completed.
    let run2 = dispatch(&app, &def, "y");
    let c2 = claim(&app, "a");
    let r = report(
        &app,
        run2["id"].as_str().unwrap(),
        "exit",
        json!({ "lease": c2["lease"], "exit_code": 0 }),
    );
    assert_eq!(r.json_body()["run"]["status"], "completed");
    assert_eq!(r.json_body()["run"]["error_message"], json!(null));
    // Unknown runs are 404.
    assert_error(
        &report(
            &app,
            "00000000-0000-4000-8000-000000000009",
            "heartbeat",
            json!({ "lease": "x" }),
        ),
        404,
        "not_found",
    );
}

#[test]
fn a_run_keeps_at_most_its_cap_of_output_lines_and_says_so_once() {
    let app = App::new();
    let def = definition_with(&app, json!(["yes"]));
    let run = dispatch(&app, &def, "");
    let c = claim(&app, "a");
    let id = run["id"].as_str().unwrap();
    let batch: Vec<Json> = (0..dispatches::MAX_LINES_PER_BATCH)
        .map(|n| json!({ "stream": "stdout", "text": format!("line {n}") }))
        .collect();
    let batches = dispatches::MAX_LINES_PER_RUN as usize / dispatches::MAX_LINES_PER_BATCH;
    for _ in 0..batches {
        let r = report(
            &app,
            id,
            "output",
            json!({ "lease": c["lease"], "lines": batch }),
        );
        assert_eq!(r.json_body()["dropped"], 0);
    }
    let r = report(
        &app,
        id,
        "output",
        json!({ "lease": c["lease"], "lines": batch }),
    );
    assert_eq!(r.json_body()["kept"], 0);
    assert_eq!(r.json_body()["dropped"], dispatches::MAX_LINES_PER_BATCH);
    report(
        &app,
        id,
        "output",
        json!({ "lease": c["lease"], "lines": batch }),
    );
    let kept = app.count(&format!(
        "SELECT count(*) FROM agent_logs WHERE agent_id = '{id}' AND log_type = 'performance'"
    ));
    assert_eq!(
        kept,
        dispatches::MAX_LINES_PER_RUN + 1,
        "the cap and one marker"
    );
}

#[test]
fn cancel_is_told_on_the_heartbeat_and_the_run_stays_cancelled() {
    let app = App::new();
    let def = definition_with(&app, json!(["sleep", "100"]));
    let run = dispatch(&app, &def, "");
    let c = claim(&app, "a");
    let id = run["id"].as_str().unwrap();
    let beat = report(&app, id, "heartbeat", json!({ "lease": c["lease"] }));
    assert_eq!(beat.json_body()["cancelled"], false);
    assert_eq!(beat.json_body()["status"], "executing");
    app.patch(
        &format!("/api/runtime/agents/{id}"),
        json!({ "status": "cancelled" }),
    );
    let beat = report(&app, id, "heartbeat", json!({ "lease": c["lease"] }));
    assert_eq!(beat.json_body()["cancelled"], true);
    let r = report(
        &app,
        id,
        "exit",
        json!({ "lease": c["lease"], "exit_code": null, "error": "killed by signal 15" }),
    );
    let done = r.json_body()["run"].clone();
    assert_eq!(done["status"], "cancelled");
    assert_eq!(done["dispatch"]["state"], "exited");
    // A run cancelled while queued is never handed out.
    let queued = dispatch(&app, &def, "");
    app.patch(
        &format!("/api/runtime/agents/{}", queued["id"].as_str().unwrap()),
        json!({ "status": "cancelled" }),
    );
    assert_eq!(claim(&app, "a"), json!(null));
    let after = get_run(&app, queued["id"].as_str().unwrap());
    assert_eq!(after["dispatch"]["state"], "exited");
    assert_eq!(after["dispatch"]["started_at"], json!(null));
}

#[test]
fn a_run_whose_runner_stops_heartbeating_fails_as_lost() {
    let app = App::with_config(Config {
        runner_lease: Duration::from_millis(200),
        ..Config::default()
    });
    let def = definition_with(&app, json!(["sleep", "100"]));
    let run = dispatch(&app, &def, "");
    let c = claim(&app, "box-1");
    let id = run["id"].as_str().unwrap();
    // A heartbeat renews it.
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(
        report(&app, id, "heartbeat", json!({ "lease": c["lease"] })).status,
        200
    );
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(get_run(&app, id)["status"], "executing");
    // Then silence: the next reader notices.
    std::thread::sleep(Duration::from_millis(300));
    let lost = get_run(&app, id);
    assert_eq!(lost["status"], "failed");
    assert!(lost["error_message"]
        .as_str()
        .unwrap()
        .starts_with("runner lost: box-1"));
    assert_eq!(lost["dispatch"]["state"], "lost");
    // The runner coming back is told the run is no longer its.
    assert_error(
        &report(&app, id, "heartbeat", json!({ "lease": c["lease"] })),
        409,
        "conflict",
    );
}

#[test]
fn a_lease_that_passed_unnoticed_is_renewed_by_its_holder() {
    let app = App::with_config(Config {
        runner_lease: Duration::from_millis(100),
        ..Config::default()
    });
    let def = definition_with(&app, json!(["sleep", "100"]));
    let run = dispatch(&app, &def, "");
    let c = claim(&app, "a");
    std::thread::sleep(Duration::from_millis(250));
    let r = report(
        &app,
        run["id"].as_str().unwrap(),
        "heartbeat",
        json!({ "lease": c["lease"] }),
    );
    assert_eq!(r.status, 200, "{}", r.json_body());
}

#[test]
fn the_tree_rolls_up_cost_and_tokens_of_every_descendant() {
    let app = App::new();
    let root = app.run();
    let def = root["orchestrator_agent_id"].clone();
    let child = app.post(
        "/api/runtime/agents",
        json!({ "orchestrator_agent_id": def, "session_id": "c", "parent_agent_id": root["id"] }),
    );
    let child = child.json_body();
    let grandchild = app
        .post(
            "/api/runtime/agents",
            json!({ "orchestrator_agent_id": def, "session_id": "c", "parent_agent_id": child["id"] }),
        )
        .json_body();
    for (run, cost, tin, tout) in [
        (&root, 0.5, 10, 1),
        (&child, 0.25, 20, 2),
        (&grandchild, 0.125, 40, 4),
    ] {
        let p = app
            .post(
                "/api/runtime/prompts",
                json!({ "agent_id": run["id"], "prompt_type": "command", "prompt_text": "x" }),
            )
            .json_body();
        let r = app.patch(
            &format!("/api/runtime/prompts/{}", p["id"].as_str().unwrap()),
            json!({ "cost_usd": cost, "tokens_input": tin, "tokens_output": tout }),
        );
        assert_eq!(r.status, 200, "{}", r.json_body());
    }
    let tree = &get_run(&app, root["id"].as_str().unwrap())["tree"];
    assert_eq!(
        *tree,
        json!({ "runs": 3, "cost_usd": 0.875, "tokens_input": 70, "tokens_output": 7 })
    );
    let tree = &get_run(&app, child["id"].as_str().unwrap())["tree"];
    assert_eq!(tree["runs"], 2);
    // Lists and the feed do not carry it.
    let list = app.get("/api/runtime/agents").json_body();
    assert!(list[0].get("tree").is_none());
}

#[test]
fn openapi_describes_the_runner_protocol_and_the_dispatch_of_runs() {
    let doc = App::new().get("/openapi.json").json_body();
    for path in [
        "/api/runner/claim",
        "/api/runner/runs/{id}/heartbeat",
        "/api/runner/runs/{id}/output",
        "/api/runner/runs/{id}/exit",
    ] {
        assert!(doc["paths"][path]["post"].is_object(), "{path} missing");
    }
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["Run"]["properties"]["dispatch"]["$ref"],
        "#/components/schemas/Dispatch"
    );
    assert_eq!(
        schemas["Dispatch"]["properties"]["state"]["enum"],
        json!(["queued", "running", "exited", "lost"])
    );
    assert!(schemas["RunInput"]["properties"]["dispatch"].is_object());
    assert!(schemas["Tree"]["properties"]["runs"].is_object());
}

#[test]
fn a_dispatched_run_is_named_by_its_input_and_works_in_its_commands_folder() {
    let app = App::new();
    let def = definition_with(&app, json!(["sh", "adw.sh", "{input}"]));
    let run = dispatch(&app, &def, "  fix   issue 42  ");
    assert_eq!(run["title"], "fix issue 42");
    assert_eq!(run["project"], "/tmp");
    // What the client names wins.
    let r = app.post(
        "/api/runtime/agents",
        json!({ "orchestrator_agent_id": def["id"], "title": "mine", "project": "/srv",
                "dispatch": { "input": "x" } }),
    );
    assert_eq!(r.status, 201, "{}", r.json_body());
    assert_eq!(r.json_body()["title"], "mine");
    assert_eq!(r.json_body()["project"], "/srv");
}
