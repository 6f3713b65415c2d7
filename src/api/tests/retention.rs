//! Retention: exactly the final runs whose last activity is older than the cutoff go,
//! with their prompts and logs, and old system logs; active runs and definitions stay.

use std::time::Duration;

use serde_json::{json, Value as Json};
use time::OffsetDateTime;

use super::{assert_error, assert_invalid, App};
use crate::db::{Database, Value};
use crate::domain::time::format_rfc3339;
use crate::http::{Config, Request};
use crate::store::retention::{self, Pacing, Pruned};

fn days_ago(days: i64) -> String {
    format_rfc3339(OffsetDateTime::now_utc() - time::Duration::days(days))
}

fn quick(batch_rows: i64) -> Pacing {
    Pacing {
        batch_rows,
        pause: Duration::ZERO,
        deadline: None,
    }
}

impl App {
    fn sql(&self, sql: &str, params: &[Value]) {
        self.connector.db().execute(sql, params).unwrap();
    }

    /// A run with `prompts` prompts and `logs` extra logs, moved to `status`, with every
    /// time of it (its own, its prompts', its logs') set to `at`.
    fn aged_run(&self, status: &str, at: &str, prompts: usize, logs: usize) -> Json {
        let run = self.run();
        let id = run["id"].as_str().unwrap().to_owned();
        if status != "initializing" {
            self.patch(
                &format!("/api/runtime/agents/{id}"),
                json!({ "status": status }),
            );
        }
        for _ in 0..prompts {
            self.post(
                "/api/runtime/prompts",
                json!({ "agent_id": id, "prompt_type": "command", "prompt_text": "x" }),
            );
        }
        for _ in 0..logs {
            self.post(
                "/api/runtime/logs",
                json!({ "source": "agent", "agent_id": id, "log_type": "milestone", "message": "m" }),
            );
        }
        self.age(&id, at);
        run
    }

    fn age(&self, run_id: &str, at: &str) {
        let p = [at.into(), run_id.into()];
        self.sql(
            "UPDATE agents SET started_at = ?1, \
             completed_at = CASE WHEN completed_at IS NULL THEN NULL ELSE ?1 END WHERE id = ?2",
            &p,
        );
        self.sql(
            "UPDATE prompts SET created_at = ?1, completed_at = NULL WHERE agent_id = ?2",
            &p,
        );
        self.sql(
            "UPDATE agent_logs SET created_at = ?1 WHERE agent_id = ?2",
            &p,
        );
    }

    fn system_log_at(&self, at: &str) {
        self.sql(
            "INSERT INTO system_logs (component, message, created_at) VALUES ('cron', 'm', ?1)",
            &[at.into()],
        );
    }

    fn prune(&self, dry_run: bool, pacing: &Pacing) -> Pruned {
        retention::prune(
            self.connector.db(),
            30,
            OffsetDateTime::now_utc(),
            dry_run,
            pacing,
        )
        .unwrap()
    }

    fn exists(&self, table: &str, id: &str) -> bool {
        self.count(&format!("SELECT count(*) FROM {table} WHERE id = '{id}'")) == 1
    }
}

fn id(v: &Json) -> &str {
    v["id"].as_str().unwrap()
}

#[test]
fn old_final_runs_go_with_their_prompts_and_logs_and_nothing_else_does() {
    let app = App::new();
    let old = days_ago(40);
    // Three final runs, 40 days quiet: they go (one in datetime('now') form).
    let completed = app.aged_run("completed", &old, 2, 3);
    let failed = app.aged_run("failed", &old, 1, 0);
    let cancelled = app.aged_run("cancelled", &old, 0, 0);
    app.sql(
        "UPDATE agents SET started_at = datetime('now', '-40 days'), \
         completed_at = datetime('now', '-40 days') WHERE id = ?1",
        &[id(&cancelled).into()],
    );
    // Final but with one recent log, active and old, final and recent: they stay.
    let recent_log = app.aged_run("completed", &old, 1, 1);
    app.sql(
        "UPDATE agent_logs SET created_at = ?1 WHERE id = \
         (SELECT MAX(id) FROM agent_logs WHERE agent_id = ?2)",
        &[days_ago(1).into(), id(&recent_log).into()],
    );
    let active = app.aged_run("executing", &old, 1, 1);
    let young = app.aged_run("completed", &days_ago(29), 1, 1);
    // A final run with an unreadable time is never deleted on a guess.
    let undated = app.aged_run("completed", "sometime", 0, 0);
    app.system_log_at(&days_ago(31));
    app.system_log_at("2020-01-01 00:00:00");
    app.system_log_at(&days_ago(2));
    let definitions = app.count("SELECT count(*) FROM orchestrator_agents");
    let before = app.dump();

    // Dry run: the counts, nothing deleted.
    let dry = app.prune(true, &quick(500));
    let expected = Pruned {
        dry_run: true,
        retention_days: 30,
        cutoff: dry.cutoff.clone(),
        runs: 3,
        prompts: 3,
        // completed: creation + completed state changes + 3 milestones; failed: 2;
        // cancelled: 2.
        agent_logs: 5 + 2 + 2,
        system_logs: 2,
        complete: true,
    };
    assert_eq!(dry, expected);
    assert_eq!(app.dump(), before, "a dry run changes nothing");

    // In batches of 2 rows, so runs span several transactions.
    let done = app.prune(false, &quick(2));
    assert_eq!(
        done,
        Pruned {
            dry_run: false,
            cutoff: done.cutoff.clone(),
            ..expected
        }
    );
    for gone in [&completed, &failed, &cancelled] {
        assert!(!app.exists("agents", id(gone)));
        let n = app.count(&format!(
            "SELECT (SELECT count(*) FROM prompts WHERE agent_id = '{0}') + \
             (SELECT count(*) FROM agent_logs WHERE agent_id = '{0}')",
            id(gone)
        ));
        assert_eq!(n, 0);
    }
    for kept in [&recent_log, &active, &young, &undated] {
        assert!(app.exists("agents", id(kept)), "{kept}");
    }
    assert_eq!(app.count("SELECT count(*) FROM system_logs"), 1);
    assert_eq!(
        app.count("SELECT count(*) FROM orchestrator_agents"),
        definitions
    );
    // Nothing left to do.
    assert_eq!(app.prune(false, &quick(500)).runs, 0);
}

#[test]
fn zero_days_keeps_everything() {
    let app = App::new();
    app.aged_run("completed", &days_ago(400), 1, 1);
    app.system_log_at(&days_ago(400));
    let before = app.dump();
    let pruned = retention::prune(
        app.connector.db(),
        0,
        OffsetDateTime::now_utc(),
        false,
        &quick(500),
    )
    .unwrap();
    assert_eq!(pruned.cutoff, None);
    assert_eq!((pruned.runs, pruned.system_logs), (0, 0));
    assert_eq!(app.dump(), before);
}

#[test]
fn cursors_keep_increasing_and_a_pruned_cursor_resumes_with_what_remains() {
    let app = App::new();
    let gone = app.aged_run("completed", &days_ago(60), 0, 0);
    let pruned_cursor = app.get("/api/events").json_body()["cursor"]
        .as_i64()
        .unwrap();
    let kept = app.run();
    let head = app.get("/api/events/snapshot").json_body()["cursor"]
        .as_i64()
        .unwrap();
    // The newest event goes too: the kept run's creation is older than this one.
    app.sql(
        "UPDATE agents SET status = 'completed', completed_at = ?1 WHERE id = ?2",
        &[days_ago(60).into(), id(&kept).into()],
    );
    app.age(id(&kept), &days_ago(60));
    app.post(
        "/api/runtime/logs",
        json!({ "source": "system", "component": "x", "message": "after" }),
    );
    assert_eq!(app.prune(false, &quick(500)).runs, 2);
    let _ = gone;
    let snapshot = app.get("/api/events/snapshot").json_body();
    assert!(snapshot["cursor"].as_i64().unwrap() >= head, "{snapshot}");
    let resumed = app
        .get(&format!("/api/events?after={pruned_cursor}"))
        .json_body();
    assert_eq!(resumed["events"], json!([]));
    let fresh = app.run();
    let next = app
        .get(&format!("/api/events?after={pruned_cursor}"))
        .json_body();
    assert_eq!(next["events"][0]["data"]["id"], fresh["id"]);
    assert!(next["cursor"].as_i64().unwrap() > head);
}

#[test]
fn a_deadline_stops_between_batches_and_the_next_call_finishes() {
    let app = App::new();
    for _ in 0..3 {
        app.aged_run("completed", &days_ago(60), 0, 0);
    }
    let stopped = app.prune(
        false,
        &Pacing {
            batch_rows: 2,
            pause: Duration::from_millis(30),
            deadline: Some(std::time::Instant::now() + Duration::from_millis(10)),
        },
    );
    assert!(!stopped.complete);
    assert!(stopped.runs < 3, "{stopped:?}");
    let rest = app.prune(false, &quick(500));
    assert!(rest.complete);
    assert_eq!(stopped.runs + rest.runs, 3);
}

#[test]
fn the_prune_endpoint_answers_counts_and_takes_an_optional_body() {
    let app = App::new();
    app.aged_run("completed", &days_ago(60), 1, 0);
    let dry = app.post("/api/admin/prune", json!({ "dry_run": true }));
    assert_eq!(dry.status, 200, "{}", dry.json_body());
    let dry = dry.json_body();
    assert_eq!(
        (
            &dry["dry_run"],
            &dry["runs"],
            &dry["prompts"],
            &dry["agent_logs"]
        ),
        (&json!(true), &json!(1), &json!(1), &json!(2))
    );
    assert_eq!(dry["retention_days"], 30);
    let bad = app.dump();
    assert_invalid(
        &app.post("/api/admin/prune", json!({ "dry_run": "yes" })),
        "dry_run",
    );
    assert_invalid(
        &app.post("/api/admin/prune", json!({ "dryrun": true })),
        "dryrun",
    );
    let mut not_an_object =
        Request::new("POST", "/api/admin/prune").with_header("content-type", "application/json");
    not_an_object.body = b"[1]".to_vec();
    assert_error(&app.send(not_an_object), 400, "bad_request");
    assert_error(&app.get("/api/admin/prune"), 405, "method_not_allowed");
    assert_eq!(app.dump(), bad, "refused requests change nothing");
    // No body at all: prune for real.
    let done = app.send(Request::new("POST", "/api/admin/prune"));
    assert_eq!(done.status, 200);
    assert_eq!(done.json_body()["runs"], 1);
    assert_eq!(done.json_body()["dry_run"], false);
    assert_eq!(app.count("SELECT count(*) FROM agents"), 0);
}

#[test]
fn the_prune_endpoint_needs_the_token_and_honours_zero_days() {
    let app = App::with_config(Config {
        api_token: Some("s3cret".into()),
        retention_days: 0,
        ..Config::default()
    });
    assert_error(
        &app.send(Request::new("POST", "/api/admin/prune")),
        401,
        "unauthorized",
    );
    let r = app.send(
        Request::new("POST", "/api/admin/prune").with_header("authorization", "Bearer s3cret"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json_body()["cutoff"], Json::Null);
}

#[test]
fn openapi_describes_the_prune_route_and_its_answer() {
    let doc = App::new().get("/openapi.json").json_body();
    let op = &doc["paths"]["/api/admin/prune"]["post"];
    assert!(op["responses"]["200"].is_object(), "{op}");
    assert_eq!(op["requestBody"]["required"], false);
    let answer = &doc["components"]["schemas"]["Pruned"]["properties"];
    for field in [
        "runs",
        "prompts",
        "agent_logs",
        "system_logs",
        "dry_run",
        "complete",
    ] {
        assert!(answer[field].is_object(), "{field}");
    }
}
