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
mod tests;
