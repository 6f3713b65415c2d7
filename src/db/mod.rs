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

use crate::error::ApiError;

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
    /// `SQLITE_BUSY`/`SQLITE_LOCKED` after the busy timeout: retry later (503).
    Busy,
    /// The database cannot be opened or reached at all (503).
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
    /// reports every SQLite failure as `io(message)`).
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
            || message.contains("pool exhausted")
        {
            DbErrorKind::Busy
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

/// Connect, apply the connection pragmas ([`pragmas`]: foreign keys always, the busy
/// timeout where the backend supports it) and bring the schema up to date.
pub fn open<C: Connector>(connector: &C) -> Result<C::Db, DbError> {
    let db = connector.connect()?;
    pragmas::apply_connection_pragmas(&db)?;
    crate::migrations::migrate(&db)?;
    Ok(db)
}

/// Run `work` inside a write transaction. `BEGIN IMMEDIATE` takes the write lock up front,
/// so `busy_timeout` applies to it; a deferred transaction that reads and later writes can
/// fail with `SQLITE_BUSY` no timeout can save. Commits on `Ok`, rolls back on `Err`.
pub fn write_transaction<D: Database, T>(
    db: &D,
    work: impl FnOnce(&D) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    run_in_transaction(db, "BEGIN IMMEDIATE", work)
}

/// Run `work` inside a read transaction: every statement sees one snapshot of the database.
pub fn read_transaction<D: Database, T>(
    db: &D,
    work: impl FnOnce(&D) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    run_in_transaction(db, "BEGIN", work)
}

fn run_in_transaction<D: Database, T>(
    db: &D,
    begin: &str,
    work: impl FnOnce(&D) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    db.execute(begin, &[])?;
    match work(db) {
        Ok(value) => match db.execute("COMMIT", &[]) {
            Ok(_) => Ok(value),
            Err(err) => {
                // A failed COMMIT (e.g. busy) leaves the transaction open; end it.
                let _ = db.execute("ROLLBACK", &[]);
                Err(err.into())
            }
        },
        Err(err) => {
            let _ = db.execute("ROLLBACK", &[]);
            Err(err)
        }
    }
}
