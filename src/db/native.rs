//! The [`Database`] trait over rusqlite, for native code only (tests, the CLI's `migrate`,
//! the benchmark's native server). Never compiled into the `.wasm` components.

use std::path::{Path, PathBuf};

use rusqlite::types::{Value as SqlValue, ValueRef};

use super::{Connector, Database, DbError, DbErrorKind, Rows, Value};

/// A rusqlite connection with WAL, foreign keys and a busy timeout.
pub struct NativeDatabase {
    conn: rusqlite::Connection,
}

impl NativeDatabase {
    /// Open (creating file and folder if needed) a database file in WAL mode.
    /// `synchronous = NORMAL` in WAL mode never loses a committed transaction when the
    /// process dies; only an OS crash or power loss may roll back the last commits.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                DbError::new(
                    DbErrorKind::Unavailable,
                    format!("cannot create {}: {e}", parent.display()),
                )
            })?;
        }
        let conn = rusqlite::Connection::open(path).map_err(|e| {
            DbError::new(
                DbErrorKind::Unavailable,
                format!("cannot open {}: {e}", path.display()),
            )
        })?;
        let db = NativeDatabase { conn };
        db.configure()?;
        db.enter_wal()?;
        db.execute("PRAGMA synchronous = NORMAL", &[])?;
        Ok(db)
    }

    /// `PRAGMA journal_mode = WAL`, retried for a while when busy: on a fresh file, several
    /// connections opening at once (replicas starting together) race to change the
    /// journal mode, and SQLite answers the losers `SQLITE_BUSY` at once, without its busy
    /// handler (waiting there could deadlock). The winner's change takes a moment.
    fn enter_wal(&self) -> Result<(), DbError> {
        let mut pause = std::time::Duration::from_millis(1);
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match self.execute("PRAGMA journal_mode = WAL", &[]) {
                Err(e) if e.kind == DbErrorKind::Busy && std::time::Instant::now() < give_up => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(50));
                }
                other => return other.map(drop),
            }
        }
    }

    /// A private in-memory database (each call is a new, empty database).
    pub fn open_in_memory() -> Result<Self, DbError> {
        let conn = rusqlite::Connection::open_in_memory().map_err(convert_error)?;
        let db = NativeDatabase { conn };
        db.configure()?;
        Ok(db)
    }

    fn configure(&self) -> Result<(), DbError> {
        super::pragmas::apply_connection_pragmas(self)
    }
}

fn convert_error(err: rusqlite::Error) -> DbError {
    use rusqlite::ErrorCode;
    let kind = match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => DbErrorKind::Busy,
        Some(ErrorCode::OperationInterrupted) => DbErrorKind::Interrupted,
        Some(ErrorCode::CannotOpen | ErrorCode::NotADatabase | ErrorCode::ReadOnly) => {
            DbErrorKind::Unavailable
        }
        Some(ErrorCode::ConstraintViolation) => {
            return DbError::from_sqlite_message(err.to_string());
        }
        _ => DbErrorKind::Other,
    };
    DbError::new(kind, err.to_string())
}

impl Database for NativeDatabase {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(convert_error)?;
        let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let bound = params.iter().map(|p| match p {
            Value::Null => SqlValue::Null,
            Value::Integer(n) => SqlValue::Integer(*n),
            Value::Real(n) => SqlValue::Real(*n),
            Value::Text(s) => SqlValue::Text(s.clone()),
            Value::Blob(b) => SqlValue::Blob(b.clone()),
        });
        let mut result = stmt
            .query(rusqlite::params_from_iter(bound))
            .map_err(convert_error)?;
        let mut rows = Vec::new();
        while let Some(row) = result.next().map_err(convert_error)? {
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                values.push(match row.get_ref(i).map_err(convert_error)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::Integer(n),
                    ValueRef::Real(n) => Value::Real(n),
                    // Valid UTF-8 is the rule (validated fast); invalid bytes become U+FFFD.
                    ValueRef::Text(t) => Value::Text(match std::str::from_utf8(t) {
                        Ok(s) => s.to_owned(),
                        Err(_) => String::from_utf8_lossy(t).into_owned(),
                    }),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                });
            }
            rows.push(values);
        }
        Ok(Rows { columns, rows })
    }
}

/// Opens [`NativeDatabase`]s on one file.
#[derive(Debug, Clone)]
pub struct FileConnector {
    pub path: PathBuf,
}

impl Connector for FileConnector {
    type Db = NativeDatabase;
    fn connect(&self) -> Result<NativeDatabase, DbError> {
        NativeDatabase::open(&self.path)
    }
}

/// A connector over one shared in-memory database, for unit tests: every `connect` hands
/// out the same connection, so data survives between requests of one test.
#[derive(Clone)]
pub struct MemoryConnector {
    db: std::rc::Rc<NativeDatabase>,
}

impl MemoryConnector {
    pub fn new() -> Result<Self, DbError> {
        Ok(MemoryConnector {
            db: std::rc::Rc::new(NativeDatabase::open_in_memory()?),
        })
    }

    /// The shared connection, for tests that inspect the database directly.
    pub fn db(&self) -> &NativeDatabase {
        &self.db
    }
}

/// A shared handle to the in-memory connection.
pub struct SharedDatabase(std::rc::Rc<NativeDatabase>);

impl Database for SharedDatabase {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        self.0.execute(sql, params)
    }
}

impl Connector for MemoryConnector {
    type Db = SharedDatabase;
    fn connect(&self) -> Result<SharedDatabase, DbError> {
        Ok(SharedDatabase(self.db.clone()))
    }
}
