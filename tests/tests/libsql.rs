//! `type = "libsql"` databases end to end, against the libSQL stand-in of the
//! `libsql-client` crate ([`FakeLibsql`]: Hrana 3 over HTTP on loopback, refusing the
//! statements sqld refuses and, in one variant, `PRAGMA foreign_keys` too).
//!
//! What this covers: the core's best-effort rule through the real components and
//! through the CLI's native migrations, migrations racing from several "replicas", an
//! interrupted statement retried by the core, every stream closed at the end. The
//! client itself (streams, batons, rollback at drop, values, errors, bounded waits,
//! busy retries, the token) is tested in `libsql-client/tests/`. What neither covers:
//! sqld's own behaviour (its locking, durability, replication) — that was checked by
//! hand against a real sqld (docs/scale-out.md).

use std::time::{Duration, Instant};

use libsql_client::fake_server::{FakeLibsql, SQLD_REFUSES};
use orchestrator_cli::database::Target;
use orchestrator_e2e::TestApp;
use serde_json::{json, Value as Json};
use spin_host::runtime_config::LibsqlConfig;

/// The host's (and the CLI's) configuration for the stand-in server.
fn config(server: &FakeLibsql) -> LibsqlConfig {
    LibsqlConfig::new(server.url(), server.token()).unwrap()
}

/// The schema version of this build: one migration per file in `migrations/`.
fn latest_version() -> i64 {
    let dir = orchestrator_e2e::repo_root().join("migrations");
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count() as i64
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The host's configuration for the app with `default` on `server`.
fn on_libsql(server: &FakeLibsql) -> impl FnOnce(&mut spin_host::HostConfig) {
    let remote = config(server);
    move |config| {
        config.sqlite_path_overrides.clear();
        config
            .sqlite_libsql_overrides
            .insert("default".into(), remote);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_components_migrate_and_serve_on_a_server_refusing_the_tuning_pragmas() {
    let server = FakeLibsql::start(SQLD_REFUSES, None).await;
    let app = TestApp::start_with(on_libsql(&server)).await;
    let def = app
        .create(
            "/api/agents",
            json!({ "name": "planner", "agent_type": "planner" }),
        )
        .await;
    // The schema is there, at the latest version, and foreign keys are enforced.
    assert_eq!(server.query_i64("PRAGMA user_version"), latest_version());
    let r = app
        .post(
            "/api/agents",
            json!({ "name": "planner", "agent_type": "planner" }),
        )
        .await;
    assert_eq!(r.status(), 409, "a duplicate name");
    let r = app
        .post(
            "/api/runtime/agents",
            json!({ "orchestrator_agent_id": "00000000-0000-4000-8000-000000000009", "session_id": "s" }),
        )
        .await;
    assert_eq!(r.status(), 422, "a run of an unknown definition");
    let run = app
        .create(
            "/api/runtime/agents",
            json!({ "orchestrator_agent_id": def["id"], "session_id": "s" }),
        )
        .await;
    let r = app
        .patch(
            &format!("/api/runtime/agents/{}", run["id"].as_str().unwrap()),
            json!({ "status": "planning" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let list: Json = app.get("/api/agents").await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    // The guest asked for the tuning pragma and was told "unsupported": skipped.
    let log = server.log();
    assert!(log.iter().any(|(_, s)| s == "PRAGMA foreign_keys = ON"));
    assert!(log.iter().any(|(_, s)| s.starts_with("BEGIN IMMEDIATE")));
    // Every request's stream went back: nothing left open on the server.
    app.stop().await;
    eventually("every stream closed", || server.open_streams() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_foreign_keys_is_an_error_not_skipped() {
    let mut refused = SQLD_REFUSES.to_vec();
    refused.push("pragma foreign_keys");
    let server = FakeLibsql::start(&refused, None).await;
    let app = TestApp::start_with(on_libsql(&server)).await;
    let r = app
        .post(
            "/api/agents",
            json!({ "name": "p", "agent_type": "planner" }),
        )
        .await;
    assert!(r.status().is_server_error(), "{}", r.status());
    assert_eq!(
        server.query_i64("SELECT count(*) FROM sqlite_master WHERE name = 'orchestrator_agents'"),
        0,
        "nothing was migrated or written without foreign keys"
    );
    // The CLI's native path refuses the same way.
    let target = Target::Libsql(config(&server));
    let e = tokio::task::spawn_blocking(move || orchestrator_cli::migrate::migrate_target(&target))
        .await
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(e.contains("unsupported statement"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_the_server_once() {
    let server = FakeLibsql::start(SQLD_REFUSES, None).await;
    // Each on a thread of its own, as separate processes would be (the async test must
    // not block its workers, which serve the stand-in).
    let replicas: Vec<_> = (0..4)
        .map(|_| {
            let target = Target::Libsql(config(&server));
            tokio::task::spawn_blocking(move || orchestrator_cli::migrate::migrate_target(&target))
        })
        .collect();
    for replica in replicas {
        assert_eq!(replica.await.unwrap().unwrap(), latest_version());
    }
    assert_eq!(
        server.query_i64("SELECT count(*) FROM schema_migrations"),
        latest_version(),
        "each migration recorded once"
    );
    assert_eq!(
        server.query_i64("SELECT count(DISTINCT version) FROM schema_migrations"),
        latest_version()
    );
    let creates = server
        .log()
        .iter()
        .filter(|(_, s)| {
            s.to_ascii_uppercase()
                .starts_with("CREATE TABLE ORCHESTRATOR_AGENTS")
        })
        .count();
    assert_eq!(creates, 1, "the schema was applied by one replica only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_interrupted_inside_a_transaction_is_run_again_by_the_core() {
    let server = FakeLibsql::start(SQLD_REFUSES, None).await;
    let app = TestApp::start_with(on_libsql(&server)).await;
    let def = app
        .create(
            "/api/agents",
            json!({ "name": "planner", "agent_type": "planner" }),
        )
        .await;
    let run = app
        .create(
            "/api/runtime/agents",
            json!({ "orchestrator_agent_id": def["id"], "session_id": "s" }),
        )
        .await;
    let id = run["id"].as_str().unwrap();
    // The PATCH's state_change row is interrupted once: the host hands the error to
    // the guest (an interrupt is not a busy answer), the core rolls back and runs the
    // transaction again.
    let updates_before = server
        .log()
        .iter()
        .filter(|(_, s)| s.starts_with("UPDATE agents"))
        .count();
    server.interrupt(
        "INSERT INTO agent_logs (agent_id, log_level, log_type, message",
        1,
    );
    let r = app
        .patch(
            &format!("/api/runtime/agents/{id}"),
            json!({ "status": "planning" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Json = r.json().await.unwrap();
    assert_eq!(body["status"], "planning");
    let updates = server
        .log()
        .iter()
        .filter(|(_, s)| s.starts_with("UPDATE agents"))
        .count();
    assert_eq!(updates - updates_before, 2, "the PATCH ran twice");
    assert_eq!(
        server.query_i64(&format!(
            "SELECT count(*) FROM agent_logs WHERE agent_id = '{id}' AND log_type = 'state_change'"
        )),
        2,
        "created, then planning: each once"
    );
    app.stop().await;
    eventually("every stream closed", || server.open_streams() == 0).await;
}
