//! Transient database failures (busy, interrupted) met by whole requests: the core runs
//! the transaction again, so the client gets its answer and the write lands once. Real
//! Spin on a libSQL server answers these to the components under load, and its client
//! never sends a statement again (docs/scale-out.md, section 7).

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::json;
use time::OffsetDateTime;

use super::App;
use crate::db::native::{MemoryConnector, SharedDatabase};
use crate::db::{Connector, Database, DbError, Rows, Value};
use crate::http::{Group, Request, Route};
use crate::store::retention::{self, Pacing};

/// Spin's libsql client's words for sqld's cursor interrupt and busy answer.
const INTERRUPTED: &str = "Hrana: `cursor error: `error at step 0: (error code: \
                           SQLITE_INTERRUPT) `SQLite error: interrupted```";
const BUSY: &str = "Hrana: `cursor error: `error at step 0: (error code: SQLITE_BUSY) \
                    `SQLite error: database is locked```";

/// Statements starting with a prefix: after `skip` of them ran, the next `times` fail
/// with a message, unrun.
#[derive(Clone, Default)]
struct Faults {
    rules: Rc<RefCell<Vec<Fault>>>,
    seen: Rc<RefCell<Vec<String>>>,
}

struct Fault {
    prefix: &'static str,
    skip: u32,
    times: u32,
    message: &'static str,
}

impl Faults {
    fn add(&self, prefix: &'static str, times: u32, message: &'static str) {
        self.add_after(prefix, 0, times, message);
    }

    fn add_after(&self, prefix: &'static str, skip: u32, times: u32, message: &'static str) {
        self.rules.borrow_mut().push(Fault {
            prefix,
            skip,
            times,
            message,
        });
    }

    fn sent(&self, prefix: &str) -> usize {
        self.seen
            .borrow()
            .iter()
            .filter(|s| s.starts_with(prefix))
            .count()
    }
}

/// The app's in-memory database with [`Faults`] in front of it.
#[derive(Clone)]
struct FlakyConnector {
    inner: MemoryConnector,
    faults: Faults,
}

struct FlakyDb {
    inner: SharedDatabase,
    faults: Faults,
}

impl Connector for FlakyConnector {
    type Db = FlakyDb;
    fn connect(&self) -> Result<FlakyDb, DbError> {
        Ok(FlakyDb {
            inner: self.inner.connect()?,
            faults: self.faults.clone(),
        })
    }
}

impl Database for FlakyDb {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        self.faults.seen.borrow_mut().push(sql.to_owned());
        let mut rules = self.faults.rules.borrow_mut();
        if let Some(rule) = rules
            .iter_mut()
            .find(|f| sql.starts_with(f.prefix) && (f.skip > 0 || f.times > 0))
        {
            if rule.skip > 0 {
                rule.skip -= 1;
            } else {
                rule.times -= 1;
                return Err(DbError::from_sqlite_message(rule.message));
            }
        }
        drop(rules);
        self.inner.execute(sql, params)
    }
}

impl App {
    fn flaky(&self) -> FlakyConnector {
        FlakyConnector {
            inner: self.connector.clone(),
            faults: Faults::default(),
        }
    }

    fn send_via(&self, connector: &FlakyConnector, req: Request) -> crate::http::Response {
        let group = Route::resolve(&req.path).map_or(Group::Meta, |r| r.group());
        crate::api::handle(group, connector, &self.config, &req)
    }
}

const STATE_CHANGE: &str =
    "INSERT INTO agent_logs (agent_id, log_level, log_type, message, details, created_at) \
     VALUES (?1, 'INFO', ?2";

#[test]
fn a_patch_whose_state_change_row_is_interrupted_is_answered_and_written_once() {
    let app = App::new();
    let run = app.run();
    let id = run["id"].as_str().unwrap();
    let flaky = app.flaky();
    flaky.faults.add(STATE_CHANGE, 1, INTERRUPTED);
    let r = app.send_via(
        &flaky,
        Request::new("PATCH", &format!("/api/runtime/agents/{id}"))
            .with_json(&json!({ "status": "planning" })),
    );
    assert_eq!(r.status, 200, "{}", r.json_body());
    assert_eq!(r.json_body()["status"], "planning");
    assert_eq!(flaky.faults.sent("UPDATE agents"), 2, "the PATCH ran again");
    assert_eq!(flaky.faults.sent("ROLLBACK"), 1);
    let changes = app.count(&format!(
        "SELECT count(*) FROM agent_logs WHERE agent_id = '{id}' AND log_type = 'state_change'"
    ));
    assert_eq!(changes, 2, "created, then planning: once each");
}

#[test]
fn a_create_whose_begin_is_busy_is_answered_and_creates_one_run() {
    let app = App::new();
    let def = app.definition("planner");
    let flaky = app.flaky();
    flaky.faults.add("BEGIN IMMEDIATE", 2, BUSY);
    flaky.faults.add("INSERT INTO agents", 1, INTERRUPTED);
    let r = app.send_via(
        &flaky,
        Request::new("POST", "/api/runtime/agents")
            .with_json(&json!({ "orchestrator_agent_id": def["id"], "session_id": "s" })),
    );
    assert_eq!(r.status, 201, "{}", r.json_body());
    assert_eq!(app.count("SELECT count(*) FROM agents"), 1);
}

#[test]
fn an_autocommit_write_answered_busy_is_sent_again() {
    let app = App::new();
    let flaky = app.flaky();
    flaky.faults.add("INSERT INTO orchestrator_agents", 2, BUSY);
    let r = app.send_via(
        &flaky,
        Request::new("POST", "/api/agents")
            .with_json(&json!({ "name": "planner", "agent_type": "planner" })),
    );
    assert_eq!(r.status, 201, "{}", r.json_body());
    assert_eq!(app.count("SELECT count(*) FROM orchestrator_agents"), 1);
    // Interrupted, it is not sent again (it may have been applied): 503, not 500.
    flaky
        .faults
        .add("DELETE FROM orchestrator_agents", 1, INTERRUPTED);
    let r = app.send_via(
        &flaky,
        Request::new(
            "DELETE",
            &format!("/api/agents/{}", r.json_body()["id"].as_str().unwrap()),
        ),
    );
    super::assert_error(&r, 503, "unavailable");
    assert_eq!(flaky.faults.sent("DELETE FROM orchestrator_agents"), 1);
}

#[test]
fn a_prune_batch_run_again_still_deletes_every_run_it_had_taken() {
    let app = App::new();
    let old =
        crate::domain::time::format_rfc3339(OffsetDateTime::now_utc() - time::Duration::days(40));
    let mut ids = Vec::new();
    for _ in 0..3 {
        let run = app.run();
        let id = run["id"].as_str().unwrap().to_owned();
        app.patch(
            &format!("/api/runtime/agents/{id}"),
            json!({ "status": "completed" }),
        );
        app.connector
            .db()
            .execute(
                "UPDATE agents SET started_at = ?1, completed_at = ?1 WHERE id = ?2",
                &[old.as_str().into(), id.as_str().into()],
            )
            .unwrap();
        app.connector
            .db()
            .execute(
                "UPDATE agent_logs SET created_at = ?1 WHERE agent_id = ?2",
                &[old.as_str().into(), id.as_str().into()],
            )
            .unwrap();
        ids.push(id);
    }
    // One batch takes all three; the second run's DELETE is interrupted once. The
    // rerun must start from the same runs, not after the first one, whose DELETE the
    // rollback undid.
    let flaky = app.flaky();
    let db = flaky.connect().unwrap();
    let pacing = Pacing {
        batch_rows: 1000,
        pause: std::time::Duration::ZERO,
        deadline: None,
    };
    flaky
        .faults
        .add_after("DELETE FROM agents WHERE id", 1, 1, INTERRUPTED);
    let pruned = retention::prune(&db, 30, OffsetDateTime::now_utc(), false, &pacing).unwrap();
    assert_eq!(pruned.runs, 3, "{pruned:?}");
    assert_eq!(app.count("SELECT count(*) FROM agents"), 0);
    assert_eq!(flaky.faults.sent("ROLLBACK"), 1);
}
