//! The SQLite seam: the one small trait the core talks to.
//!
//! Two implementations exist: over the Spin SQLite binding (in `components/spin-adapter`,
//! compiled to wasm) and over rusqlite ([`native`], native only: tests, the CLI and the
//! benchmark's native server). The trait is deliberately tiny — one statement with
//! positional parameters in, rows out — because that is all `spin:sqlite` offers, and it is
//! enough: inserts use `RETURNING` instead of `last-insert-rowid`, so the same SQL runs on
//! `fermyon:spin/sqlite@2.0.0`, `spin:sqlite@3.0.0`, rusqlite and libSQL alike.

#[cfg(not(target_arch = "wasm32"))]
pub mod native;
pub mod pragmas;
mod row;
mod sql_split;

pub use row::Row;
pub use sql_split::split_statements;

use std::time::{Duration, Instant};

/// A value bound to a parameter or read from a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Integer(n)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Real(n)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// The rows a statement produced (empty for statements that return none).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    /// Typed access to each row, in order (reading a string moves it out; see [`Row`]).
    pub fn iter(&mut self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter_mut().map(|values| Row::new(values))
    }

    /// The first row, if any.
    pub fn first(&mut self) -> Option<Row<'_>> {
        self.rows.first_mut().map(|values| Row::new(values))
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Why a statement failed, classified so the API can answer the right status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// `SQLITE_BUSY`/`SQLITE_LOCKED` (after the busy timeout, where the backend has one):
    /// the statement did not run. Retry later (503); [`write_transaction`] and
    /// [`autocommit_write`] try again themselves within [`RETRY_WITHIN`].
    Busy,
    /// `SQLITE_INTERRUPT`: something outside the request stopped the statement. A libSQL
    /// server does this when it cancels a cursor request and the cancellation lands on
    /// the connection's next statement (sqld 0.24, `/v3/cursor`, which Spin's client
    /// uses). This host's own interrupt (the request's deadline passed, the host shuts
    /// down, the client left) never reaches the guest as an error: the run ends.
    /// Retry later (503); a transaction is run again (see [`write_transaction`]).
    Interrupted,
    /// The database cannot be opened or reached at all, or did not answer in time, or
    /// rolled the transaction back itself (sqld's "Transaction timed out"): 503. Never
    /// retried here: a statement the server did not answer may still have run.
    Unavailable,
    /// The schema is newer than this build (503, never silently used).
    SchemaTooNew,
    /// A UNIQUE constraint failed.
    Unique,
    /// A FOREIGN KEY constraint failed.
    ForeignKey,
    /// A CHECK or NOT NULL constraint failed.
    Check,
    /// The backend does not support the statement at all (libSQL's client refuses some
    /// pragmas this way); see [`pragmas`] for which statements may be skipped.
    Unsupported,
    /// Anything else: a bug in our SQL, a type mismatch, an I/O error.
    Other,
}

impl DbErrorKind {
    /// The database did not serve the statement for a reason of its own (busy,
    /// interrupted, unreachable): the request is answered 503, not 500.
    pub fn is_unavailable(self) -> bool {
        matches!(
            self,
            DbErrorKind::Busy | DbErrorKind::Interrupted | DbErrorKind::Unavailable
        )
    }
}

/// A failed database call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    pub kind: DbErrorKind,
    pub message: String,
}

impl DbError {
    pub fn new(kind: DbErrorKind, message: impl Into<String>) -> Self {
        DbError {
            kind,
            message: message.into(),
        }
    }

    /// Classify an error that arrives only as SQLite's message text (the Spin binding
    /// reports every SQLite failure as `io(message)`). Spin's libsql client wraps
    /// SQLite's text and code, e.g. ``Hrana: `cursor error: `error at step 0: (error
    /// code: SQLITE_BUSY) `SQLite error: database is locked``` ``; constraints are
    /// checked first, so a constraint message is never taken for anything else.
    pub fn from_sqlite_message(message: impl Into<String>) -> Self {
        let message = message.into();
        let kind = if message.contains("UNIQUE constraint failed") {
            DbErrorKind::Unique
        } else if message.contains("FOREIGN KEY constraint failed") {
            DbErrorKind::ForeignKey
        } else if message.contains("CHECK constraint failed")
            || message.contains("NOT NULL constraint failed")
        {
            DbErrorKind::Check
        } else if message.contains("database is locked")
            || message.contains("database table is locked")
            || message.contains("database is busy")
            || message.contains("SQLITE_BUSY")
            || message.contains("SQLITE_LOCKED")
            || message.contains("pool exhausted")
        {
            DbErrorKind::Busy
        } else if message.contains("SQLITE_INTERRUPT") || message.contains("interrupted") {
            DbErrorKind::Interrupted
        } else if message.contains("TRANSACTION_TIMEOUT")
            || message.contains("Transaction timed out")
            // This host's (and the CLI's) libSQL client: the server did not answer one
            // exchange in time, or could not be reached.
            || message.contains("no answer from")
            || message.contains("cannot connect to")
        {
            DbErrorKind::Unavailable
        } else if message
            .to_ascii_lowercase()
            .contains("unsupported statement")
        {
            DbErrorKind::Unsupported
        } else {
            DbErrorKind::Other
        };
        DbError { kind, message }
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DbError {}

/// One open connection: execute one statement with positional (`?N`) parameters.
pub trait Database {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError>;
}

/// Opens connections. Request handlers take a connector rather than a connection so that a
/// long-poll can drop its connection while it sleeps and open a fresh one to check again.
pub trait Connector {
    type Db: Database;
    fn connect(&self) -> Result<Self::Db, DbError>;
}

/// Connect and apply the connection pragmas ([`pragmas`]: foreign keys always, the busy
/// timeout where the backend supports it). The schema is brought up to date above this
/// seam, by [`crate::migrations::open`].
pub fn connect<C: Connector>(connector: &C) -> Result<C::Db, DbError> {
    let db = connector.connect()?;
    pragmas::apply_connection_pragmas(&db)?;
    Ok(db)
}

/// How long [`write_transaction`], [`read_transaction`] and [`autocommit_write`] keep
/// trying after a transient failure (busy, interrupted), counted from the first attempt:
/// the busy timeout a local file's writer gets. A backend that already waited that long
/// before answering busy (a file's `busy_timeout`, this host's resend on a libSQL
/// server) is not waited for a second time. A rerun's `BEGIN` may itself wait up to the
/// backend's busy timeout, so the worst case is about twice this.
pub const RETRY_WITHIN: Duration = Duration::from_secs(5);

/// The first pause before another attempt; each further pause doubles, up to
/// [`RETRY_PAUSE_MAX`].
const RETRY_PAUSE_FIRST: Duration = Duration::from_millis(1);
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(50);

/// The pauses between attempts and the deadline they stop at.
struct Backoff {
    deadline: Instant,
    pause: Duration,
}

impl Backoff {
    fn new(within: Duration) -> Self {
        Backoff {
            deadline: Instant::now() + within,
            pause: RETRY_PAUSE_FIRST,
        }
    }

    /// Sleep before another attempt; `false`, without sleeping, when the pause would end
    /// past the deadline.
    fn pause(&mut self) -> bool {
        if Instant::now() + self.pause > self.deadline {
            return false;
        }
        std::thread::sleep(self.pause);
        self.pause = (self.pause * 2).min(RETRY_PAUSE_MAX);
        true
    }
}

/// Run `work` inside a write transaction. `BEGIN IMMEDIATE` takes the write lock up front,
/// so `busy_timeout` applies to it; a deferred transaction that reads and later writes can
/// fail with `SQLITE_BUSY` no timeout can save. Commits on `Ok`, rolls back on `Err`.
///
/// A transient failure is tried again within [`RETRY_WITHIN`], pausing 1 ms doubling to
/// 50 ms: a `BEGIN` answered busy or interrupted; a statement inside `work` answered busy
/// or interrupted (the error reached `work` through `?`); a `COMMIT` answered busy. Each
/// failed attempt is rolled back first, so `work` runs again on a clean transaction and
/// must touch nothing but the database (it is `FnMut`, and may run more than once).
/// Never tried again: what the client caused (constraints, validation), a `COMMIT`
/// whose outcome is not known (interrupted, no answer: it may have committed), an
/// unreachable server. When the deadline passes, the last failure is the answer (a 503
/// at the API).
///
/// `work` fails with any [`TransactionError`]: the handlers' error, or [`DbError`] itself
/// for work below them (the migrations runner).
pub fn write_transaction<D: Database, T, E: TransactionError>(
    db: &D,
    work: impl FnMut(&D) -> Result<T, E>,
) -> Result<T, E> {
    run_in_transaction(db, "BEGIN IMMEDIATE", RETRY_WITHIN, work)
}

/// Run `work` inside a read transaction: every statement sees one snapshot of the database.
/// Tried again as [`write_transaction`] is.
pub fn read_transaction<D: Database, T, E: TransactionError>(
    db: &D,
    work: impl FnMut(&D) -> Result<T, E>,
) -> Result<T, E> {
    run_in_transaction(db, "BEGIN", RETRY_WITHIN, work)
}

/// What a transaction's work fails with: the API's error for the handlers (implemented
/// where that error is defined), a [`DbError`] below them. Either tells which database
/// failure caused it, if one did, which is what decides whether to try again.
pub trait TransactionError: From<DbError> {
    fn db_cause(&self) -> Option<DbErrorKind>;
}

impl TransactionError for DbError {
    fn db_cause(&self) -> Option<DbErrorKind> {
        Some(self.kind)
    }
}

/// A `BEGIN` that failed this way opened nothing that a `ROLLBACK` does not end.
fn begin_may_retry(kind: DbErrorKind) -> bool {
    matches!(kind, DbErrorKind::Busy | DbErrorKind::Interrupted)
}

/// A statement inside the transaction that failed this way applied nothing that will
/// stay: nothing is committed before `COMMIT`, and the attempt is rolled back.
fn inside_may_retry<E: TransactionError>(err: &E) -> bool {
    matches!(
        err.db_cause(),
        Some(DbErrorKind::Busy | DbErrorKind::Interrupted)
    )
}

/// A `COMMIT` that failed this way did not commit: SQLite answers busy before it
/// commits, and leaves the transaction open. An interrupted `COMMIT` is not known not to
/// have committed (SQLite checks for an interrupt once more after the commit itself), and
/// a `COMMIT` the server did not answer may have committed: neither is run again.
fn commit_may_retry(kind: DbErrorKind) -> bool {
    kind == DbErrorKind::Busy
}

fn run_in_transaction<D: Database, T, E: TransactionError>(
    db: &D,
    begin: &str,
    within: Duration,
    mut work: impl FnMut(&D) -> Result<T, E>,
) -> Result<T, E> {
    let mut backoff = Backoff::new(within);
    // The transient failure that led to this attempt, if it is a rerun.
    let mut previous: Option<E> = None;
    loop {
        let (err, retry) = match db.execute(begin, &[]) {
            Err(err) if begin_may_retry(err.kind) => (E::from(err), true),
            // Not started, so nothing to roll back (and a ROLLBACK here could end a
            // transaction of the caller's). On a rerun, the failure that caused the
            // rerun is the better answer: the client did nothing wrong.
            Err(err) => return Err(previous.unwrap_or_else(|| err.into())),
            Ok(_) => match work(db) {
                Ok(value) => match db.execute("COMMIT", &[]) {
                    Ok(_) => return Ok(value),
                    Err(err) => {
                        let retry = commit_may_retry(err.kind);
                        (E::from(err), retry)
                    }
                },
                Err(err) => {
                    let retry = inside_may_retry(&err);
                    (err, retry)
                }
            },
        };
        // End whatever the attempt left: an interrupted BEGIN may have opened the
        // transaction, a busy COMMIT leaves it open, a failed statement may or may not
        // have ended it (SQLite rolls back some failures itself). An error here ("no
        // transaction is active") changes nothing.
        let _ = db.execute("ROLLBACK", &[]);
        if !(retry && backoff.pause()) {
            return Err(err);
        }
        previous = Some(err);
    }
}

/// Run `write`: one store call that sends a single write statement outside any
/// transaction (never inside one: a busy statement there may have ended the
/// transaction, and sending it again would apply it on its own). While the database
/// answers it busy, send it again within [`RETRY_WITHIN`], pausing as
/// [`write_transaction`] does: a busy statement outside a transaction did not run. An
/// interrupted one is not sent again: SQLite may report the interrupt after the
/// statement's own commit, so it may have been applied (503, as any other failure the
/// client did not cause).
pub fn autocommit_write<T, E: TransactionError>(
    write: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    autocommit_write_within(RETRY_WITHIN, write)
}

fn autocommit_write_within<T, E: TransactionError>(
    within: Duration,
    mut write: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut backoff = Backoff::new(within);
    loop {
        match write() {
            Err(err) if err.db_cause() == Some(DbErrorKind::Busy) => {
                if !backoff.pause() {
                    return Err(err);
                }
            }
            other => return other,
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
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
        let err = run_in_transaction(&db, "BEGIN IMMEDIATE", Duration::ZERO, insert_one(&runs))
            .unwrap_err();
        assert_eq!(err.status(), 503);
        assert_eq!(err.to_json()["error"]["code"], "unavailable");
        assert_eq!(err.message, format!("database unavailable: {BUSY}"));
        assert_eq!(db.sent("BEGIN IMMEDIATE"), 1);
        assert_eq!(runs.get(), 0);
        // The same inside the work: the interrupted statement's 503, after one attempt.
        let db = Flaky::new(&[("INSERT INTO t", u32::MAX, Answer::Fail(INTERRUPTED))]);
        let err = run_in_transaction(&db, "BEGIN IMMEDIATE", Duration::ZERO, insert_one(&runs))
            .unwrap_err();
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
        let write =
            || -> Result<_, ApiError> { Ok(db.execute("INSERT INTO t (x) VALUES (1)", &[])?) };
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
}
