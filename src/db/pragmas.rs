//! The per-connection settings the core asks of every backend, split by what they guard.
//!
//! Some SQLite backends refuse some pragmas outright: libSQL's client (Spin's
//! `type = "libsql"` databases, Turso) answers `PRAGMA busy_timeout = N` and
//! `PRAGMA journal_mode = WAL` with "unsupported statement" before they reach the server,
//! because the server, not the connection, decides how writers wait and how the log is
//! kept. Those pragmas only tune performance, so a backend that refuses them is still
//! correct without them: they are *best-effort*, skipped when — and only when — the
//! backend says it does not support the statement. Anything else that goes wrong with them
//! (a real I/O error, a locked file) is still an error.
//!
//! What guards data is *mandatory*: foreign keys on (cascades and references depend on it),
//! `BEGIN IMMEDIATE` for writes and the migrations' `user_version` check. A backend that
//! refuses any of those is an error, never skipped.

use super::{Database, DbError, DbErrorKind};

/// Pragmas that guard data: every connection must accept them.
pub const MANDATORY: &[&str] = &["PRAGMA foreign_keys = ON"];

/// Pragmas that tune waiting or durability, skipped on a backend that does not support
/// them. `busy_timeout`: without it, a concurrent write fails at once with `database is
/// locked` on a local file (0 is SQLite's default); libSQL's server queues writers itself.
pub const TUNING: &[&str] = &["PRAGMA busy_timeout = 5000"];

/// Apply [`MANDATORY`] then [`TUNING`] to a fresh connection.
pub fn apply_connection_pragmas<D: Database>(db: &D) -> Result<(), DbError> {
    for pragma in MANDATORY {
        db.execute(pragma, &[])?;
    }
    for pragma in TUNING {
        best_effort(db, pragma)?;
    }
    Ok(())
}

/// Run a tuning statement; `Ok(false)` when the backend reports it unsupported.
pub fn best_effort<D: Database>(db: &D, sql: &str) -> Result<bool, DbError> {
    match db.execute(sql, &[]) {
        Ok(_) => Ok(true),
        Err(err) if err.kind == DbErrorKind::Unsupported => Ok(false),
        Err(err) => Err(err),
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::db::native::NativeDatabase;
    use crate::db::{Rows, Value};

    /// A backend that answers "unsupported statement" (as libSQL's client does) for the
    /// statements that start with one of `refused`, and runs everything else on SQLite.
    struct Refusing {
        inner: NativeDatabase,
        refused: &'static [&'static str],
        seen: RefCell<Vec<String>>,
    }

    impl Refusing {
        fn new(refused: &'static [&'static str]) -> Self {
            Refusing {
                inner: NativeDatabase::open_in_memory().unwrap(),
                refused,
                seen: RefCell::default(),
            }
        }
    }

    impl Database for Refusing {
        fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
            self.seen.borrow_mut().push(sql.to_owned());
            if self.refused.iter().any(|prefix| sql.starts_with(prefix)) {
                // The message libSQL's client gives, through Spin's `io(message)` error.
                return Err(DbError::from_sqlite_message("unsupported statement"));
            }
            self.inner.execute(sql, params)
        }
    }

    #[test]
    fn a_backend_refusing_the_tuning_pragmas_still_migrates_and_serves() {
        let db = Refusing::new(&["PRAGMA busy_timeout", "PRAGMA journal_mode"]);
        apply_connection_pragmas(&db).unwrap();
        let version = crate::migrations::migrate(&db).unwrap();
        assert_eq!(version, crate::migrations::latest_version());
        // Foreign keys were still turned on: a run of an unknown definition is refused.
        let err = db
            .execute(
                "INSERT INTO agents (id, orchestrator_agent_id, session_id, status, started_at) \
                 VALUES ('00000000-0000-4000-8000-000000000001', \
                 '00000000-0000-4000-8000-000000000002', 's', 'initializing', 'now')",
                &[],
            )
            .unwrap_err();
        assert_eq!(err.kind, DbErrorKind::ForeignKey, "{err:?}");
        assert!(db
            .seen
            .borrow()
            .iter()
            .any(|sql| sql == "PRAGMA foreign_keys = ON"));
    }

    #[test]
    fn a_backend_refusing_foreign_keys_is_an_error() {
        let db = Refusing::new(&["PRAGMA foreign_keys"]);
        let err = apply_connection_pragmas(&db).unwrap_err();
        assert_eq!(err.kind, DbErrorKind::Unsupported);
    }

    #[test]
    fn a_tuning_pragma_failing_for_another_reason_is_still_an_error() {
        struct Locked;
        impl Database for Locked {
            fn execute(&self, _: &str, _: &[Value]) -> Result<Rows, DbError> {
                Err(DbError::from_sqlite_message("database is locked"))
            }
        }
        assert_eq!(
            best_effort(&Locked, "PRAGMA busy_timeout = 5000")
                .unwrap_err()
                .kind,
            DbErrorKind::Busy
        );
    }
}
