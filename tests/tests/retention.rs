//! Retention end to end: rows back-dated directly in the file, `orchestrator prune
//! --dry-run` counts them, `orchestrator prune` removes exactly the old final runs (with
//! their prompts and logs) and old system logs, the feed and stats agree afterwards, and a
//! prune under write load costs the writers no 5xx.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestrator_e2e::{orchestrator_command, TestApp};
use serde_json::{json, Value as Json};

const OLD: &str = "2020-01-01T00:00:00.000Z";

fn sql(db: &Path, script: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.execute_batch(script).unwrap();
}

/// Every time of a run (its own, its prompts', its logs') set to `at`.
fn back_date(db: &Path, run: &str, at: &str) {
    sql(
        db,
        &format!(
            "BEGIN IMMEDIATE;
             UPDATE agents SET started_at = '{at}',
               completed_at = CASE WHEN completed_at IS NULL THEN NULL ELSE '{at}' END
               WHERE id = '{run}';
             UPDATE prompts SET created_at = '{at}', completed_at = NULL WHERE agent_id = '{run}';
             UPDATE agent_logs SET created_at = '{at}' WHERE agent_id = '{run}';
             COMMIT;"
        ),
    );
}

/// `orchestrator prune [args]` on `db`: its one line of output.
fn prune_command(db: &Path, args: &[&str]) -> String {
    let out = orchestrator_command()
        .arg("prune")
        .args(args)
        .env("DATABASE_PATH", db)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn json_of(app: &TestApp, path: &str) -> Json {
    let r = app.get(path).await;
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prune_removes_exactly_the_old_final_runs_their_prompts_and_logs_and_old_system_logs() {
    let app = TestApp::start().await;
    let old = app.new_run().await;
    let old_id = old["id"].as_str().unwrap().to_owned();
    app.create(
        "/api/runtime/prompts",
        json!({ "agent_id": old_id, "prompt_type": "command", "prompt_text": "x" }),
    )
    .await;
    app.create(
        "/api/runtime/logs",
        json!({ "source": "agent", "agent_id": old_id, "log_type": "milestone", "message": "m" }),
    )
    .await;
    app.patch(
        &format!("/api/runtime/agents/{old_id}"),
        json!({ "status": "completed" }),
    )
    .await;
    let active = app.new_run().await;
    let recent = app.new_run().await;
    app.patch(
        &format!("/api/runtime/agents/{}", recent["id"].as_str().unwrap()),
        json!({ "status": "failed" }),
    )
    .await;
    back_date(&app.db_path, &old_id, OLD);
    back_date(&app.db_path, active["id"].as_str().unwrap(), OLD);
    sql(
        &app.db_path,
        "INSERT INTO system_logs (component, message, created_at) VALUES
           ('cron', 'old', '2020-01-01 00:00:00'), ('cron', 'new', datetime('now'));",
    );

    // Dry run: the counts, nothing removed. The old run has 2 state changes and 1 milestone.
    let dry = prune_command(&app.db_path, &["--dry-run"]);
    assert!(
        dry.contains("would prune 1 runs, 1 prompts, 3 agent logs, 1 system logs"),
        "{dry}"
    );
    assert_eq!(
        app.get(&format!("/api/runtime/agents/{old_id}"))
            .await
            .status(),
        200
    );

    let done = prune_command(&app.db_path, &[]);
    assert!(
        done.contains("pruned 1 runs, 1 prompts, 3 agent logs, 1 system logs"),
        "{done}"
    );
    assert_eq!(
        app.get(&format!("/api/runtime/agents/{old_id}"))
            .await
            .status(),
        404
    );
    for kept in [&active, &recent] {
        let path = format!("/api/runtime/agents/{}", kept["id"].as_str().unwrap());
        assert_eq!(app.get(&path).await.status(), 200, "{path}");
    }
    let prompts = json_of(&app, &format!("/api/runtime/prompts?agent_id={old_id}")).await;
    assert_eq!(prompts, json!([]));
    let system = json_of(&app, "/api/runtime/logs?source=system").await;
    let messages: Vec<&str> = system
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["new"]);
    // Feed and stats agree with what is left.
    let feed = json_of(&app, "/api/events?after=0&limit=1000").await;
    let events = feed["events"].as_array().unwrap();
    assert!(events.iter().all(|e| e["data"]["id"] != old_id.as_str()));
    assert_eq!(events.len(), 3, "{feed}");
    let stats = json_of(&app, "/api/runtime/stats").await;
    assert_eq!(stats["agents_by_status"]["completed"], 0);
    assert_eq!(stats["agents_by_status"]["initializing"], 1);
    assert_eq!(stats["agents_by_status"]["failed"], 1);
    assert_eq!(
        stats["by_definition"].as_array().unwrap().len(),
        3,
        "definitions stay"
    );
    // Nothing left: a second prune removes nothing.
    assert!(prune_command(&app.db_path, &[]).contains("pruned 0 runs"));
    app.stop().await;
}

/// `runs` old completed runs with 3 logs each, written directly (like a year of history).
fn seed_history(db: &Path, definition: &str, runs: usize) {
    sql(
        db,
        &format!(
            "BEGIN IMMEDIATE;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {runs})
             INSERT INTO agents (id, orchestrator_agent_id, session_id, status, started_at, completed_at)
               SELECT printf('%08x-0000-4000-8000-%012x', i, abs(random()) % 1000000000000),
                      '{definition}', 'history', 'completed', '{OLD}', '{OLD}' FROM n;
             INSERT INTO agent_logs (agent_id, log_type, message, created_at)
               SELECT a.id, 'milestone', 'm', '{OLD}'
               FROM agents a, (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3)
               WHERE a.session_id = 'history';
             COMMIT;"
        ),
    );
}

/// Eight clients writing through the API until `stop`: (max latency, writes, 5xx count).
async fn write_load(app: &TestApp, stop: Arc<AtomicBool>) -> (Duration, usize, usize) {
    let run = app.new_run().await;
    let run_id = run["id"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let client = app.client.clone();
        let base = app.base.clone();
        let run_id = run_id.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let (mut max, mut n, mut errors) = (Duration::ZERO, 0usize, 0usize);
            while !stop.load(Ordering::Relaxed) {
                let body = if (n + w) % 2 == 0 {
                    ("/api/runtime/logs", json!({ "source": "agent", "agent_id": run_id, "log_type": "milestone", "message": "load" }))
                } else {
                    ("/api/runtime/prompts", json!({ "agent_id": run_id, "prompt_type": "command", "prompt_text": "load" }))
                };
                let started = Instant::now();
                let r = client
                    .post(format!("{base}{}", body.0))
                    .json(&body.1)
                    .send()
                    .await
                    .unwrap();
                max = max.max(started.elapsed());
                if r.status().is_server_error() {
                    errors += 1;
                }
                n += 1;
            }
            (max, n, errors)
        }));
    }
    let mut total = (Duration::ZERO, 0, 0);
    for t in tasks {
        let (max, n, errors) = t.await.unwrap();
        total = (total.0.max(max), total.1 + n, total.2 + errors);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prune_under_write_load_costs_the_writers_no_5xx() {
    let app = TestApp::start().await;
    let def = app.new_run().await["orchestrator_agent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    const RUNS: usize = 3000;

    // The native prune (what `orchestrator prune` and `up`'s hourly task do), beside the
    // host's writers.
    seed_history(&app.db_path, &def, RUNS);
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        let app = &app;
        async move { write_load(app, stop).await }
    };
    let db = app.db_path.clone();
    let prune = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let out = tokio::task::spawn_blocking(move || prune_command(&db, &[]))
            .await
            .unwrap();
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        (out, took)
    };
    let ((max, writes, errors), (out, took)) = tokio::join!(load, prune);
    eprintln!(
        "native prune of {RUNS} runs ({} rows) took {took:?} under 8 writers: {writes} writes, \
         max write latency {max:?}, {errors} 5xx",
        RUNS * 4
    );
    assert!(out.contains(&format!("pruned {RUNS} runs")), "{out}");
    assert_eq!(errors, 0);
    assert!(max < Duration::from_secs(2), "max write latency {max:?}");

    // The same through POST /api/admin/prune (the meta component, inside the host).
    seed_history(&app.db_path, &def, RUNS);
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        let app = &app;
        async move { write_load(app, stop).await }
    };
    let prune = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let r = app
            .client
            .post(app.url("/api/admin/prune"))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Json = r.json().await.unwrap();
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        (status, body, took)
    };
    let ((max, writes, errors), (status, body, took)) = tokio::join!(load, prune);
    eprintln!(
        "endpoint prune of {RUNS} runs took {took:?} under 8 writers: {writes} writes, \
         max write latency {max:?}, {errors} 5xx"
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runs"], RUNS, "{body}");
    assert_eq!(body["agent_logs"], RUNS * 3, "{body}");
    assert_eq!(errors, 0);
    assert!(max < Duration::from_secs(2), "max write latency {max:?}");
    app.stop().await;
}
