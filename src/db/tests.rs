//! The seam's retry and transaction rules, against an in-memory database and a backend
//! that fails on cue.

use std::cell::{Cell, RefCell};

use super::*;
use crate::db::native::NativeDatabase;
// The retry is checked through the handlers' error too: what a client finally sees.
use crate::error::{ApiError, ErrorCode};

/// What a scripted statement does instead of (or after) running.
#[derive(Clone, Copy)]
enum Answer {
    /// Fail with this message, without running (busy, interrupted…).
    Fail(&'static str),
    /// Run, then fail with this message: the server did the work but the answer was
    /// lost (a COMMIT that timed out on the way back).
    RunThenFail(&'static str),
}

/// SQLite in memory, except that the next `times` statements starting with `prefix`
/// get `answer`. Every statement sent is recorded.
struct Flaky {
    inner: NativeDatabase,
    rules: Vec<(&'static str, Cell<u32>, Answer)>,
    seen: RefCell<Vec<String>>,
}

/// The texts Spin's libsql client gives for sqld's answers (docs/scale-out.md §7).
const BUSY: &str = "Hrana: `cursor error: `error at step 0: (error code: SQLITE_BUSY) \
                    `SQLite error: database is locked```";
const INTERRUPTED: &str = "Hrana: `cursor error: `error at step 0: (error code: \
                           SQLITE_INTERRUPT) `SQLite error: interrupted```";
/// This host's answer for a libSQL server that did not answer in time.
const NO_ANSWER: &str = "database `default` (libSQL at http://127.0.0.1:8080): \
                         no answer from 127.0.0.1:8080 within 10s";

impl Flaky {
    fn new(rules: &[(&'static str, u32, Answer)]) -> Self {
        let inner = NativeDatabase::open_in_memory().unwrap();
        inner
            .execute("CREATE TABLE t (x INTEGER PRIMARY KEY)", &[])
            .unwrap();
        Flaky {
            inner,
            rules: rules
                .iter()
                .map(|&(prefix, times, answer)| (prefix, Cell::new(times), answer))
                .collect(),
            seen: RefCell::default(),
        }
    }

    fn sent(&self, sql: &str) -> usize {
        self.seen.borrow().iter().filter(|s| *s == sql).count()
    }

    fn rows(&self) -> i64 {
        let mut rows = self.inner.execute("SELECT count(*) FROM t", &[]).unwrap();
        rows.first().unwrap().int(0).unwrap()
    }
}

impl Database for Flaky {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        self.seen.borrow_mut().push(sql.to_owned());
        let rule = self
            .rules
            .iter()
            .find(|(prefix, times, _)| sql.starts_with(prefix) && times.get() > 0);
        match rule {
            None => self.inner.execute(sql, params),
            Some((_, times, answer)) => {
                times.set(times.get() - 1);
                match *answer {
                    Answer::Fail(message) => Err(DbError::from_sqlite_message(message)),
                    Answer::RunThenFail(message) => {
                        self.inner.execute(sql, params)?;
                        Err(DbError::from_sqlite_message(message))
                    }
                }
            }
        }
    }
}

/// The work of one write: insert a row, counting how often it ran.
fn insert_one(runs: &Cell<u32>) -> impl FnMut(&Flaky) -> Result<i64, ApiError> + '_ {
    move |db| {
        runs.set(runs.get() + 1);
        db.execute("INSERT INTO t (x) VALUES (1)", &[])?;
        Ok(1)
    }
}

#[test]
fn a_begin_answered_busy_or_interrupted_is_sent_again_and_the_work_runs_once() {
    for answer in [BUSY, INTERRUPTED] {
        let db = Flaky::new(&[("BEGIN IMMEDIATE", 3, Answer::Fail(answer))]);
        let runs = Cell::new(0);
        assert_eq!(write_transaction(&db, insert_one(&runs)), Ok(1), "{answer}");
        assert_eq!(db.sent("BEGIN IMMEDIATE"), 4);
        assert_eq!(
            runs.get(),
            1,
            "the work ran once, after the BEGIN went through"
        );
        assert_eq!(db.sent("COMMIT"), 1);
        assert_eq!(db.rows(), 1);
    }
}

#[test]
fn a_migration_that_loses_the_race_for_the_write_lock_waits_and_migrates() {
    // A libSQL server answers a second replica's BEGIN IMMEDIATE busy while the
    // first one migrates; the loser must start, not fail its first requests.
    let db = Flaky::new(&[("BEGIN IMMEDIATE", 2, Answer::Fail(BUSY))]);
    let version = crate::migrations::migrate(&db).unwrap();
    assert_eq!(version, crate::migrations::latest_version());
    assert_eq!(db.sent("BEGIN IMMEDIATE"), 3);
    assert_eq!(crate::migrations::current_version(&db), Ok(version));
}

#[test]
fn a_read_transaction_whose_begin_is_busy_is_tried_again_too() {
    let db = Flaky::new(&[("BEGIN", 2, Answer::Fail(BUSY))]);
    let got = read_transaction(&db, |db| -> Result<i64, ApiError> {
        let mut rows = db.execute("SELECT count(*) FROM t", &[])?;
        Ok(rows.first().unwrap().int(0)?)
    });
    assert_eq!(got, Ok(0));
    assert_eq!(db.sent("BEGIN"), 3);
}

#[test]
fn a_statement_inside_answered_busy_or_interrupted_reruns_the_whole_transaction() {
    for answer in [BUSY, INTERRUPTED] {
        let db = Flaky::new(&[("INSERT INTO t", 2, Answer::Fail(answer))]);
        let runs = Cell::new(0);
        assert_eq!(write_transaction(&db, insert_one(&runs)), Ok(1), "{answer}");
        assert_eq!(runs.get(), 3, "the work ran again after each failure");
        assert_eq!(db.sent("BEGIN IMMEDIATE"), 3);
        assert_eq!(db.sent("ROLLBACK"), 2, "each failed attempt rolled back");
        assert_eq!(db.sent("COMMIT"), 1, "committed once");
        assert_eq!(db.rows(), 1);
    }
}

#[test]
fn a_statement_that_ran_before_the_failing_one_is_not_applied_twice() {
    // The first INSERT of the work runs, the second is interrupted: the rollback
    // takes the first one away, and the rerun applies both once.
    let db = Flaky::new(&[("INSERT INTO t (x) VALUES (2)", 1, Answer::Fail(INTERRUPTED))]);
    let got = write_transaction(&db, |db| -> Result<(), ApiError> {
        db.execute("INSERT INTO t (x) VALUES (1)", &[])?;
        db.execute("INSERT INTO t (x) VALUES (2)", &[])?;
        Ok(())
    });
    assert_eq!(got, Ok(()));
    assert_eq!(db.rows(), 2);
    assert_eq!(db.sent("INSERT INTO t (x) VALUES (1)"), 2);
}

#[test]
fn a_commit_answered_busy_rolls_back_and_runs_the_transaction_again() {
    let db = Flaky::new(&[("COMMIT", 1, Answer::Fail(BUSY))]);
    let runs = Cell::new(0);
    assert_eq!(write_transaction(&db, insert_one(&runs)), Ok(1));
    assert_eq!(runs.get(), 2);
    assert_eq!(db.sent("COMMIT"), 2);
    assert_eq!(
        db.rows(),
        1,
        "the first attempt was rolled back, not committed"
    );
}

#[test]
fn a_commit_whose_outcome_is_unknown_is_not_run_again() {
    // The server committed, but its answer was lost (this host's timeout), or an
    // interrupt was reported with the commit done: a rerun would apply it twice.
    for answer in [NO_ANSWER, INTERRUPTED] {
        let db = Flaky::new(&[("COMMIT", 1, Answer::RunThenFail(answer))]);
        let runs = Cell::new(0);
        let err = write_transaction(&db, insert_one(&runs)).unwrap_err();
        assert_eq!(err.status(), 503, "{answer}: {err}");
        assert_eq!(err.message, format!("database unavailable: {answer}"));
        assert_eq!(runs.get(), 1, "{answer}");
        assert_eq!(db.sent("BEGIN IMMEDIATE"), 1, "{answer}");
        assert_eq!(db.rows(), 1, "{answer}: applied once");
    }
}

#[test]
fn a_statement_inside_the_server_did_not_answer_is_not_run_again() {
    let db = Flaky::new(&[("INSERT INTO t", 1, Answer::Fail(NO_ANSWER))]);
    let runs = Cell::new(0);
    let err = write_transaction(&db, insert_one(&runs)).unwrap_err();
    assert_eq!(err.status(), 503, "{err}");
    assert_eq!(runs.get(), 1);
    assert_eq!(db.sent("ROLLBACK"), 1);
}

#[test]
fn a_constraint_the_client_caused_is_never_run_again() {
    let db = Flaky::new(&[]);
    db.inner
        .execute("INSERT INTO t (x) VALUES (1)", &[])
        .unwrap();
    let runs = Cell::new(0);
    let err = write_transaction(&db, insert_one(&runs)).unwrap_err();
    assert_eq!(err.db_cause, Some(DbErrorKind::Unique), "{err}");
    assert_ne!(err.status(), 503);
    assert_eq!(runs.get(), 1);
    assert_eq!(db.sent("BEGIN IMMEDIATE"), 1);
    assert_eq!(db.sent("ROLLBACK"), 1);
    // Nor is an error of the work's own (a validation, a conflict).
    let db = Flaky::new(&[]);
    let runs = Cell::new(0);
    let err = write_transaction(&db, |_| -> Result<(), ApiError> {
        runs.set(runs.get() + 1);
        Err(ApiError::conflict("run is completed"))
    })
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    assert_eq!(runs.get(), 1);
}

#[test]
fn past_the_deadline_the_busy_answer_is_the_503_it_always_was() {
    // A deadline already spent (as on a backend that waited its busy timeout before
    // answering busy): no second wait, one BEGIN, the busy error as it came.
    let db = Flaky::new(&[("BEGIN IMMEDIATE", u32::MAX, Answer::Fail(BUSY))]);
    let runs = Cell::new(0);
    let err =
        run_in_transaction(&db, "BEGIN IMMEDIATE", Duration::ZERO, insert_one(&runs)).unwrap_err();
    assert_eq!(err.status(), 503);
    assert_eq!(err.to_json()["error"]["code"], "unavailable");
    assert_eq!(err.message, format!("database unavailable: {BUSY}"));
    assert_eq!(db.sent("BEGIN IMMEDIATE"), 1);
    assert_eq!(runs.get(), 0);
    // The same inside the work: the interrupted statement's 503, after one attempt.
    let db = Flaky::new(&[("INSERT INTO t", u32::MAX, Answer::Fail(INTERRUPTED))]);
    let err =
        run_in_transaction(&db, "BEGIN IMMEDIATE", Duration::ZERO, insert_one(&runs)).unwrap_err();
    assert_eq!(err.status(), 503);
    assert_eq!(err.message, format!("database unavailable: {INTERRUPTED}"));
    assert_eq!(db.sent("BEGIN IMMEDIATE"), 1);
    assert_eq!(db.rows(), 0);
}

#[test]
fn a_rerun_that_cannot_begin_answers_the_failure_that_caused_it() {
    // The rollback after the busy statement did not take (the transaction is still
    // open), so the rerun's BEGIN fails: the client still gets the busy 503.
    let db = Flaky::new(&[
        ("INSERT INTO t", 1, Answer::Fail(BUSY)),
        (
            "ROLLBACK",
            1,
            Answer::Fail("cannot rollback - SQL statements in progress"),
        ),
    ]);
    let runs = Cell::new(0);
    let err = write_transaction(&db, insert_one(&runs)).unwrap_err();
    assert_eq!(err.status(), 503, "{err}");
    assert_eq!(err.message, format!("database unavailable: {BUSY}"));
    assert_eq!(db.sent("BEGIN IMMEDIATE"), 2);
}

#[test]
fn an_autocommit_write_is_sent_again_while_busy_but_not_when_interrupted() {
    let db = Flaky::new(&[("INSERT INTO t", 3, Answer::Fail(BUSY))]);
    let write = || -> Result<_, ApiError> { Ok(db.execute("INSERT INTO t (x) VALUES (1)", &[])?) };
    assert!(autocommit_write(write).is_ok());
    assert_eq!(db.sent("INSERT INTO t (x) VALUES (1)"), 4);
    assert_eq!(db.rows(), 1);
    // Interrupted: it may have been applied, so it is not sent again (503).
    let db = Flaky::new(&[("INSERT INTO t", 1, Answer::RunThenFail(INTERRUPTED))]);
    let err = autocommit_write(|| -> Result<_, ApiError> {
        Ok(db.execute("INSERT INTO t (x) VALUES (1)", &[])?)
    })
    .unwrap_err();
    assert_eq!(err.status(), 503);
    assert_eq!(db.sent("INSERT INTO t (x) VALUES (1)"), 1);
    assert_eq!(db.rows(), 1);
    // Busy past the deadline: the busy 503, sent once.
    let db = Flaky::new(&[("INSERT INTO t", u32::MAX, Answer::Fail(BUSY))]);
    let err = autocommit_write_within(Duration::ZERO, || -> Result<_, ApiError> {
        Ok(db.execute("INSERT INTO t (x) VALUES (1)", &[])?)
    })
    .unwrap_err();
    assert_eq!(err.message, format!("database unavailable: {BUSY}"));
    assert_eq!(db.sent("INSERT INTO t (x) VALUES (1)"), 1);
}
