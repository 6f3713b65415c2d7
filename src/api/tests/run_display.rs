//! Version 2: every run carries its definition's name and type, its token sums and its
//! latest activity, on every endpoint that returns runs; `q` and `since` filter the list;
//! migration 0002 backfills what version 1 wrote.

use serde_json::{json, Value as Json};

use super::{assert_error, App};
use crate::db::native::NativeDatabase;
use crate::db::{split_statements, Database};
use crate::store::prompts::{self, NewPrompt, PromptChanges};
use crate::store::runs;

fn run_path(run: &Json) -> String {
    format!("/api/runtime/agents/{}", run["id"].as_str().unwrap())
}

fn prompt(app: &App, run: &Json) -> String {
    let r = app.post(
        "/api/runtime/prompts",
        json!({ "agent_id": run["id"], "prompt_type": "command", "prompt_text": "x" }),
    );
    assert_eq!(r.status, 201, "{}", r.json_body());
    format!(
        "/api/runtime/prompts/{}",
        r.json_body()["id"].as_str().unwrap()
    )
}

/// Every display field of `run` as expected.
#[track_caller]
fn assert_display(run: &Json, name: &str, agent_type: &str, tokens: (i64, i64)) {
    assert_eq!(run["agent_name"], name, "{run}");
    assert_eq!(run["agent_type"], agent_type, "{run}");
    assert_eq!(run["tokens_input"], tokens.0, "{run}");
    assert_eq!(run["tokens_output"], tokens.1, "{run}");
    let activity = run["last_activity_at"].as_str().expect("last_activity_at");
    assert_eq!(activity.len(), 24, "{run}");
    assert!(activity >= run["started_at"].as_str().unwrap(), "{run}");
}

#[test]
fn every_endpoint_that_returns_runs_carries_the_display_fields() {
    let app = App::new();
    let def = app
        .post(
            "/api/agents",
            json!({ "name": "Planner-One", "agent_type": "planner" }),
        )
        .json_body();
    let created = app.post(
        "/api/runtime/agents",
        json!({ "orchestrator_agent_id": def["id"], "session_id": "s1" }),
    );
    let run = created.json_body();
    assert_display(&run, "Planner-One", "planner", (0, 0));
    assert_eq!(run["last_activity_at"], run["started_at"]);

    let p = prompt(&app, &run);
    let r = app.patch(
        &p,
        json!({ "tokens_input": 120, "tokens_output": 30, "cost_usd": 0.5 }),
    );
    assert_eq!(r.status, 200);
    let got = app.get(&run_path(&run)).json_body();
    assert_display(&got, "Planner-One", "planner", (120, 30));
    assert_eq!(got["cost_usd"], json!(0.5));

    let patched = app
        .patch(&run_path(&run), json!({ "status": "executing" }))
        .json_body();
    assert_display(&patched, "Planner-One", "planner", (120, 30));
    let listed = app.get("/api/runtime/agents").json_body();
    assert_eq!(listed[0], patched);
    let snapshot = app.get("/api/events/snapshot").json_body();
    assert_eq!(snapshot["data"][0], patched);
    // The feed carries the run as it was right after each change: its creation, its
    // prompt's cost arriving, its move.
    let events = app.get("/api/events").json_body()["events"].clone();
    assert_display(&events[0]["data"], "Planner-One", "planner", (0, 0));
    assert_eq!(events[0]["data"], run);
    assert_display(&events[1]["data"], "Planner-One", "planner", (120, 30));
    assert_eq!(events[1]["data"]["cost_usd"], json!(0.5));
    assert_eq!(events[2]["data"], patched);

    // Name and type are the definition's as they are at read time.
    app.put(
        &format!("/api/agents/{}", def["id"].as_str().unwrap()),
        json!({ "name": "renamed", "agent_type": "reviewer" }),
    );
    let got = app.get(&run_path(&run)).json_body();
    assert_display(&got, "renamed", "reviewer", (120, 30));
}

#[test]
fn last_activity_is_the_newest_of_the_runs_prompts_and_logs_times() {
    let app = App::new();
    let run = app.run();
    let sleep = || std::thread::sleep(std::time::Duration::from_millis(3));
    let activity = || app.get(&run_path(&run)).json_body()["last_activity_at"].clone();

    sleep();
    let p = prompt(&app, &run);
    let created = app.get(&p).json_body()["created_at"].clone();
    assert_eq!(activity(), created);

    sleep();
    let done = app.patch(&p, json!({ "status": "completed" })).json_body();
    assert_eq!(activity(), done["completed_at"]);

    sleep();
    let log = app
        .post(
            "/api/runtime/logs",
            json!({ "source": "agent", "agent_id": run["id"], "log_type": "milestone", "message": "m" }),
        )
        .json_body();
    assert_eq!(activity(), log["created_at"]);

    sleep();
    let patched = app
        .patch(&run_path(&run), json!({ "context": { "k": 1 } }))
        .json_body();
    assert!(patched["last_activity_at"].as_str() > log["created_at"].as_str());
    assert_eq!(activity(), patched["last_activity_at"]);

    // An older time written by another program never moves it back.
    app.connector
        .db()
        .execute(
            "INSERT INTO agent_logs (agent_id, log_type, message, created_at) \
             VALUES (?1, 'milestone', 'old', '2001-01-01 00:00:00')",
            &[run["id"].as_str().unwrap().into()],
        )
        .unwrap();
    assert_eq!(activity(), patched["last_activity_at"]);
}

#[test]
fn rows_other_programs_write_keep_the_sums_and_activity_right() {
    let app = App::new();
    let run = app.run();
    let id = run["id"].as_str().unwrap();
    let db = app.connector.db();
    for (n, tokens) in [(1, 10), (2, 20)] {
        db.execute(
            "INSERT INTO prompts (id, agent_id, prompt_type, prompt_text, tokens_input, \
             tokens_output, cost_usd, created_at) \
             VALUES (?1, ?2, 'adw', 'x', ?3, ?3, 0.25, '2099-01-01 00:00:0' || ?4)",
            &[
                uuid::Uuid::new_v4().to_string().into(),
                id.into(),
                (tokens as i64).into(),
                (n as i64).into(),
            ],
        )
        .unwrap();
    }
    let got = app.get(&run_path(&run)).json_body();
    assert_eq!(
        (got["tokens_input"].clone(), got["tokens_output"].clone()),
        (json!(30), json!(30))
    );
    assert_eq!(got["cost_usd"], json!(0.5));
    // SQLite's datetime form is stored normalised, so it compares as a time.
    assert_eq!(got["last_activity_at"], "2099-01-01T00:00:02.000Z");

    db.execute(
        "UPDATE prompts SET tokens_input = 1 WHERE agent_id = ?1",
        &[id.into()],
    )
    .unwrap();
    assert_eq!(app.get(&run_path(&run)).json_body()["tokens_input"], 2);
    db.execute("DELETE FROM prompts WHERE tokens_output = 20", &[])
        .unwrap();
    let got = app.get(&run_path(&run)).json_body();
    assert_eq!(got["tokens_output"], 10);
    assert_eq!(got["cost_usd"], json!(0.25));

    // A run inserted without last_activity_at starts from its start.
    let other = "00000000-0000-4000-8000-000000000001";
    db.execute(
        "INSERT INTO agents (id, orchestrator_agent_id, session_id, started_at) \
         VALUES (?1, ?2, 'py', '2026-01-02T03:04:05.006Z')",
        &[
            other.into(),
            run["orchestrator_agent_id"].as_str().unwrap().into(),
        ],
    )
    .unwrap();
    let got = app.get(&format!("/api/runtime/agents/{other}")).json_body();
    assert_eq!(got["last_activity_at"], "2026-01-02T03:04:05.006Z");
    assert_eq!(got["tokens_input"], 0);
}

#[test]
fn token_sums_hold_under_concurrent_prompt_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    let db = NativeDatabase::open(&path).unwrap();
    crate::migrations::migrate(&db).unwrap();
    let def = crate::store::definitions::insert(
        &db,
        crate::store::definitions::NewDefinition {
            name: crate::domain::AgentName::parse("d".into()).unwrap(),
            description: None,
            agent_type: crate::domain::AgentType::Builder,
            capabilities: "[]".into(),
            default_model: None,
            policy: None,
            command: None,
            working_dir: None,
            timeout_secs: None,
        },
    )
    .unwrap();
    let run = runs::create(
        &db,
        runs::NewRun {
            orchestrator_agent_id: def.id.clone(),
            session_id: "s".into(),
            parent_agent_id: None,
            context: "{}".into(),
            config: "{}".into(),
            title: None,
            project: None,
        },
    )
    .unwrap();
    let run_id = crate::domain::Id::parse(run.id.as_str()).unwrap();
    const THREADS: i64 = 4;
    const PROMPTS: i64 = 15;
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let path = path.clone();
            let run_id = run_id.clone();
            std::thread::spawn(move || {
                let db = NativeDatabase::open(&path).unwrap();
                for n in 0..PROMPTS {
                    let prompt = prompts::create(
                        &db,
                        NewPrompt {
                            agent_id: run_id.clone(),
                            prompt_type: crate::domain::PromptType::Command,
                            prompt_text: format!("{t}/{n}"),
                            prompt_name: None,
                            model_used: None,
                        },
                    )
                    .unwrap();
                    let id = prompt.id.clone();
                    // Twice: the second report replaces the first, so sums must not
                    // accumulate deltas.
                    for scale in [1, 2] {
                        prompts::update(
                            &db,
                            &id,
                            PromptChanges {
                                tokens_input: Some(scale * (t * 100 + n)),
                                tokens_output: Some(scale),
                                cost_usd: Some(0.125 * scale as f64),
                                ..PromptChanges::default()
                            },
                        )
                        .unwrap();
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let run = runs::get(&db, &run.id).unwrap().unwrap();
    let mut sums = db
        .execute(
            "SELECT SUM(tokens_input), SUM(tokens_output), SUM(cost_usd), count(*) FROM prompts",
            &[],
        )
        .unwrap();
    let sums = sums.first().unwrap();
    assert_eq!(sums.int(3).unwrap(), THREADS * PROMPTS);
    let expected_input: i64 = (0..THREADS)
        .flat_map(|t| (0..PROMPTS).map(move |n| 2 * (t * 100 + n)))
        .sum();
    assert_eq!(sums.int(0).unwrap(), expected_input);
    assert_eq!(run.tokens_input, expected_input);
    assert_eq!(run.tokens_output, sums.int(1).unwrap());
    assert_eq!(run.tokens_output, 2 * THREADS * PROMPTS);
    assert_eq!(run.cost_usd, sums.real(2).unwrap());
}

#[test]
fn q_matches_name_or_session_case_insensitively_with_wildcards_literal() {
    let app = App::new();
    let mk = |name: &str, session: &str| {
        let def = app.definition(name);
        app.post(
            "/api/runtime/agents",
            json!({ "orchestrator_agent_id": def["id"], "session_id": session }),
        )
        .json_body()
    };
    let under = mk("Alpha_Builder", "s-1");
    let plain = mk("alphaXbuilder", "s-2");
    let percent = mk("other", "100%-done");
    let ids = |q: &str| -> Vec<Json> {
        let r = app.get(&format!("/api/runtime/agents?q={q}"));
        assert_eq!(r.status, 200, "{}", r.json_body());
        let mut ids: Vec<Json> = r
            .json_body()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].clone())
            .collect();
        ids.sort_by_key(|v| v.to_string());
        ids
    };
    let sorted = |mut v: Vec<Json>| {
        v.sort_by_key(|v| v.to_string());
        v
    };
    assert_eq!(
        ids("ALPHA"),
        sorted(vec![under["id"].clone(), plain["id"].clone()])
    );
    assert_eq!(ids("a_b"), vec![under["id"].clone()]);
    assert_eq!(ids("100%25"), vec![percent["id"].clone()]);
    assert_eq!(ids("%25"), vec![percent["id"].clone()]);
    assert_eq!(ids("S-2"), vec![plain["id"].clone()]);
    assert_eq!(ids("%5C"), Vec::<Json>::new());
    assert_eq!(ids("").len(), 3, "an empty q filters nothing");
    // q combines with the other filters.
    assert_eq!(
        app.get("/api/runtime/agents?q=alpha&session_id=s-1")
            .json_body()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn since_keeps_runs_active_at_or_after_it_and_a_bad_value_is_400() {
    let app = App::new();
    let old = app.run();
    std::thread::sleep(std::time::Duration::from_millis(3));
    let new = app.run();
    let at = new["last_activity_at"].as_str().unwrap();
    let list = |since: &str| {
        let r = app.get(&format!(
            "/api/runtime/agents?since={}",
            since.replace('+', "%2B")
        ));
        assert_eq!(r.status, 200, "{}", r.json_body());
        r.json_body()
    };
    assert_eq!(list(at), json!([new]));
    assert_eq!(
        list("2000-01-01T00:00:00+01:00").as_array().unwrap().len(),
        2
    );
    assert_eq!(list("2999-01-01T00:00:00Z"), json!([]));
    // Activity on the old run brings it back.
    prompt(&app, &old);
    assert_eq!(list(at).as_array().unwrap().len(), 2);
    for bad in ["yesterday", "2026-13-01T00:00:00Z", "2026-11-25", "1"] {
        let r = app.get(&format!("/api/runtime/agents?since={bad}"));
        assert_error(&r, 400, "bad_request");
        assert_eq!(r.json_body()["error"]["details"]["parameter"], "since");
    }
}

#[test]
fn a_duplicate_definition_name_is_409_naming_the_field() {
    let app = App::new();
    app.definition("taken");
    let before = app.dump();
    for r in [
        app.post(
            "/api/agents",
            json!({ "name": "taken", "agent_type": "tester" }),
        ),
        app.put(
            &format!(
                "/api/agents/{}",
                app.definition("free")["id"].as_str().unwrap()
            ),
            json!({ "name": "taken" }),
        ),
    ] {
        assert_error(&r, 409, "conflict");
        assert_eq!(
            r.json_body()["error"]["details"],
            json!({ "field": "name" })
        );
    }
    assert_eq!(app.dump()[2..], before[2..]);
}

#[test]
fn migrating_a_version_1_database_backfills_sums_activity_and_old_events() {
    // The app's first request migrates the database, as a component does on first use.
    let app = App {
        connector: crate::db::native::MemoryConnector::new().unwrap(),
        config: crate::http::Config::default(),
    };
    let db = app.connector.db();
    let v1 = &crate::migrations::MIGRATIONS[0];
    assert_eq!(v1.version, 1);
    for statement in split_statements(v1.sql) {
        db.execute(&statement, &[]).unwrap();
    }
    db.execute("PRAGMA user_version = 1", &[]).unwrap();
    let def = "00000000-0000-4000-8000-00000000000d";
    let run = "00000000-0000-4000-8000-00000000000a";
    let idle = "00000000-0000-4000-8000-00000000000b";
    for (sql, params) in [
        (
            "INSERT INTO orchestrator_agents (id, name, agent_type, created_at, updated_at) \
             VALUES (?1, 'legacy', 'tester', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
            vec![def.into()],
        ),
        (
            // cost_usd left wrong by a direct writer: the backfill heals it.
            "INSERT INTO agents (id, orchestrator_agent_id, session_id, started_at, cost_usd) \
             VALUES (?1, ?2, 's', '2026-01-01T00:00:01.000Z', 9)",
            vec![run.into(), def.into()],
        ),
        (
            "INSERT INTO agents (id, orchestrator_agent_id, session_id, started_at, completed_at, status) \
             VALUES (?1, ?2, 's', '2026-01-01 00:00:05', '2026-01-01T00:00:07.000Z', 'completed')",
            vec![idle.into(), def.into()],
        ),
        (
            "INSERT INTO prompts (id, agent_id, prompt_type, prompt_text, tokens_input, tokens_output, \
             cost_usd, created_at, completed_at) VALUES \
             ('00000000-0000-4000-8000-000000000101', ?1, 'adw', 'a', 100, 10, 0.5, \
              '2026-01-01T00:00:02.000Z', '2026-01-01 00:00:04'), \
             ('00000000-0000-4000-8000-000000000102', ?1, 'adw', 'b', 50, 5, 0.25, \
              '2026-01-01T00:00:03.000Z', NULL)",
            vec![run.into()],
        ),
        (
            "INSERT INTO agent_logs (agent_id, log_type, message, details, created_at) VALUES \
             (?1, 'state_change', 'created', json_object('from', NULL, 'to', 'initializing', \
              'run', json_object('id', ?1, 'status', 'initializing')), '2026-01-01T00:00:01.000Z'), \
             (?1, 'milestone', 'm', NULL, '2026-01-01T00:00:03.500Z')",
            vec![run.into()],
        ),
    ] {
        db.execute(sql, &params).unwrap();
    }

    let events = app.get("/api/events").json_body()["events"].clone();
    assert_eq!(
        crate::migrations::current_version(db).unwrap(),
        crate::migrations::latest_version()
    );
    let got = app.get(&format!("/api/runtime/agents/{run}")).json_body();
    assert_eq!(
        (got["tokens_input"].clone(), got["tokens_output"].clone()),
        (json!(150), json!(15))
    );
    assert_eq!(got["cost_usd"], json!(0.75));
    assert_eq!(got["last_activity_at"], "2026-01-01T00:00:04.000Z");
    assert_eq!(got["agent_name"], "legacy");
    let got = app.get(&format!("/api/runtime/agents/{idle}")).json_body();
    assert_eq!(
        (got["tokens_input"].clone(), got["cost_usd"].clone()),
        (json!(0), json!(0.0))
    );
    assert_eq!(got["last_activity_at"], "2026-01-01T00:00:07.000Z");

    assert_eq!(events.as_array().unwrap().len(), 1);
    let data = &events[0]["data"];
    assert_eq!(data["agent_name"], "legacy");
    assert_eq!(data["agent_type"], "tester");
    assert_eq!(data["tokens_input"], 0, "no prompt existed at creation");
    assert_eq!(data["last_activity_at"], "2026-01-01T00:00:01.000Z");
    assert_eq!(data["status"], "initializing");
}
