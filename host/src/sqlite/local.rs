//! The local-file backend: a guest connection pins one [`PooledConnection`] of the
//! file's [`Pool`], and a statement runs through rusqlite — inline on a thread that runs
//! the guest and may block (queueing on the pool's write gate first when it writes), else
//! on one of tokio's blocking threads, the connection travelling there and back.
//!
//! Also here: the mapping between rusqlite's values and errors and the binding's, and
//! the two connection pragmas the binding answers through SQLite's C API.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use rusqlite::types::{ToSqlOutput, ValueRef};

use super::pool::{may_block, Pool, PooledConnection};
use super::{Backend, Connection, DbError, DbQueryResult, DbValue, StopCheck};

/// SQLite virtual machine steps between two [`StopCheck`]s: about a millisecond of
/// work between checks for ordinary steps, for a check that costs a few nanoseconds. A
/// single heavy step (a sort, an index build) can take longer, and SQLite does not call
/// it at all while waiting for a lock (the busy timeout bounds that).
const STOP_CHECK_STEPS: i32 = 10_000;

/// A guest connection to a local file.
struct LocalConnection {
    /// `None` while a statement runs on a blocking thread (the connection is moved
    /// there and back), or after a blocking task failed.
    pooled: Option<PooledConnection>,
    /// Set when the instance's stop check interrupted a statement (shared by all the
    /// instance's connections).
    interrupted: Arc<AtomicBool>,
}

/// Check a connection out of `pool` for a guest; with `stop`, SQLite interrupts this
/// connection's statements once it says so, and `interrupted` records that it did.
pub(super) async fn open(
    pool: &Pool,
    stop: Option<StopCheck>,
    interrupted: &Arc<AtomicBool>,
) -> Result<Connection, DbError> {
    let mut pooled = pool
        .acquire()
        .await
        .map_err(|e| DbError::Io(e.to_string()))?;
    if let Some(stop) = stop {
        // Cleared when the connection goes back to the pool.
        let interrupted = interrupted.clone();
        pooled.set_stop_check(
            STOP_CHECK_STEPS,
            Arc::new(move || {
                let stop = stop();
                if stop {
                    interrupted.store(true, Ordering::Relaxed);
                }
                stop
            }),
        );
    }
    Ok(Connection::new(LocalConnection {
        pooled: Some(pooled),
        interrupted: interrupted.clone(),
    }))
}

impl Backend for LocalConnection {
    fn execute(
        &mut self,
        statement: String,
        params: Vec<DbValue>,
    ) -> BoxFuture<'_, wasmtime::Result<Result<DbQueryResult, DbError>>> {
        Box::pin(async move {
            if may_block() {
                return self.execute_here(&statement, &params).await;
            }
            let Some(pooled) = self.pooled.take() else {
                return Ok(Err(DbError::InvalidConnection));
            };
            // The connection travels to a blocking thread and back. If this future is
            // dropped meanwhile (deadline, shutdown), the connection is dropped on that
            // thread when the statement ends, which rolls back and returns it to the pool.
            let joined = tokio::task::spawn_blocking(move || {
                let result = execute_blocking(pooled.conn(), &statement, &params);
                (pooled, result)
            })
            .await;
            match joined {
                Ok((pooled, result)) => {
                    self.pooled = Some(pooled);
                    Ok(result)
                }
                Err(e) => Ok(Err(DbError::Io(format!("statement failed: {e}")))),
            }
        })
    }

    fn last_insert_rowid(&self) -> i64 {
        // A field read inside SQLite: no I/O, no lock.
        self.pooled
            .as_ref()
            .map_or(0, PooledConnection::last_insert_rowid)
    }

    fn changes(&self) -> u64 {
        self.pooled.as_ref().map_or(0, PooledConnection::changes)
    }
}

impl LocalConnection {
    /// Run the statement right here: this thread runs the guest and may block (see
    /// `server`). A writing statement queues on the write gate first.
    async fn execute_here(
        &mut self,
        statement: &str,
        params: &[DbValue],
    ) -> wasmtime::Result<Result<DbQueryResult, DbError>> {
        let Some(pooled) = self.pooled.as_mut() else {
            return Ok(Err(DbError::InvalidConnection));
        };
        pooled.note_statement(statement);
        // (The two connection pragmas the binding answers itself never write.)
        let pragma = params
            .is_empty()
            .then(|| connection_pragma(statement))
            .flatten();
        if pragma.is_none() && pooled.needs_write_gate(statement) {
            pooled.enter_write().await;
        }
        let result = execute_blocking(pooled.conn(), statement, params);
        if let (Some(ConnectionPragma::BusyTimeout(ms)), Ok(_)) = (pragma, &result) {
            pooled.remember_busy_timeout(std::time::Duration::from_millis(ms.into()));
        }
        pooled.leave_write_if_done();
        if result.is_err() && self.interrupted.swap(false, Ordering::Relaxed) {
            // Interrupted because the run has to end: end it as the epoch
            // deadline does, rather than let the guest carry on with an error.
            return Err(wasmtime::Trap::Interrupt.into());
        }
        Ok(result)
    }
}

impl rusqlite::ToSql for DbValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            DbValue::Integer(i) => ValueRef::Integer(*i),
            DbValue::Real(f) => ValueRef::Real(*f),
            DbValue::Text(s) => ValueRef::Text(s.as_bytes()),
            DbValue::Blob(b) => ValueRef::Blob(b),
            DbValue::Null => ValueRef::Null,
        }))
    }
}

fn map_error(e: rusqlite::Error) -> DbError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.code == rusqlite::ErrorCode::DiskFull {
            return DbError::DatabaseFull;
        }
    }
    DbError::Io(e.to_string())
}

/// Run one statement on `conn` and collect its rows. Blocking.
///
/// Values map by SQLite storage class. Statements go through the connection's
/// statement cache. A parameterless string that does not prepare as one statement
/// (e.g. a schema script) is run as a batch, statement by statement, returning the
/// rows of the last statement that has columns.
///
/// Two connection-setting pragmas are answered through SQLite's C API instead of
/// being compiled and run (see [`connection_pragma`]), with the result the pragma
/// itself would give: every `PRAGMA` statement is single-use in SQLite (re-parsed
/// on each run), and a flag pragma such as `foreign_keys` also expires every
/// prepared statement of the connection each time it runs, changed or not. Spin apps
/// set both on each request (Spin's host leaves foreign keys off and the busy timeout
/// at 0), which would otherwise defeat the statement cache.
pub fn execute_blocking(
    conn: &rusqlite::Connection,
    statement: &str,
    params: &[DbValue],
) -> Result<DbQueryResult, DbError> {
    if params.is_empty() {
        if let Some(pragma) = connection_pragma(statement) {
            if let Some(result) = apply_connection_pragma(conn, pragma) {
                return Ok(result);
            }
        }
    }
    match conn.prepare_cached(statement) {
        Ok(mut stmt) => run_statement(&mut stmt, params),
        Err(e) if !params.is_empty() => Err(map_error(e)),
        // rusqlite refuses several statements (and prepares the rest to find out,
        // which fails when the rest depends on the first); run them in order.
        Err(_) => {
            use rusqlite::fallible_iterator::FallibleIterator;
            let mut batch = rusqlite::Batch::new(conn, statement);
            let mut last = DbQueryResult::default();
            while let Some(mut stmt) = batch.next().map_err(map_error)? {
                let result = run_statement(&mut stmt, &[])?;
                if !result.columns.is_empty() {
                    last = result;
                }
            }
            Ok(last)
        }
    }
}

/// A connection-setting pragma the binding answers without SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnectionPragma {
    /// `PRAGMA foreign_keys = <boolean>`
    ForeignKeys(bool),
    /// `PRAGMA busy_timeout = <milliseconds>`
    BusyTimeout(u32),
}

/// Recognise `PRAGMA foreign_keys = <boolean>` (a boolean spelled as SQLite takes it
/// unquoted) and `PRAGMA busy_timeout = <non-negative integer>`: any letter case,
/// optional spaces and trailing `;`. `None` for anything else (which runs as SQL).
fn connection_pragma(statement: &str) -> Option<ConnectionPragma> {
    let s = statement.trim().trim_end_matches(';').trim_end();
    let (head, value) = s.split_once('=')?;
    let mut words = head.split_ascii_whitespace();
    let (pragma, name) = (words.next()?, words.next()?);
    if words.next().is_some() || !pragma.eq_ignore_ascii_case("pragma") {
        return None;
    }
    let value = value.trim();
    if name.eq_ignore_ascii_case("foreign_keys") {
        match value.to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" | "1" => Some(ConnectionPragma::ForeignKeys(true)),
            "off" | "false" | "no" | "0" => Some(ConnectionPragma::ForeignKeys(false)),
            _ => None,
        }
    } else if name.eq_ignore_ascii_case("busy_timeout") {
        let digits = value.strip_prefix('+').unwrap_or(value);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Larger than SQLite's int: leave it to SQLite.
        digits
            .parse::<i32>()
            .ok()
            .map(|ms| ConnectionPragma::BusyTimeout(ms as u32))
    } else {
        None
    }
}

/// Apply `pragma` through the C API; the result is what running the pragma returns.
/// `None` when the C API cannot do it (then the statement runs as SQL).
fn apply_connection_pragma(
    conn: &rusqlite::Connection,
    pragma: ConnectionPragma,
) -> Option<DbQueryResult> {
    use rusqlite::config::DbConfig;
    match pragma {
        ConnectionPragma::ForeignKeys(on) => {
            // Setting it is what expires the statements; when it already has the
            // value there is nothing to do. (Inside a transaction SQLite ignores the
            // pragma; so does this, by not changing anything.)
            let current = conn.db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_FKEY).ok()?;
            (current == on).then(DbQueryResult::default)
        }
        ConnectionPragma::BusyTimeout(ms) => {
            conn.busy_timeout(std::time::Duration::from_millis(ms.into()))
                .ok()?;
            Some(DbQueryResult {
                columns: vec!["timeout".to_string()],
                rows: vec![vec![DbValue::Integer(ms.into())]],
            })
        }
    }
}

/// A TEXT value as a string. SQLite does not check that TEXT is UTF-8; invalid bytes
/// become U+FFFD. (The standard library's validation has a fast path for ASCII,
/// which `from_utf8_lossy`'s chunk iterator does not.)
fn utf8_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn run_statement(
    stmt: &mut rusqlite::Statement<'_>,
    params: &[DbValue],
) -> Result<DbQueryResult, DbError> {
    let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let n = columns.len();
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.iter()))
        .map_err(map_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_error)? {
        let mut values = Vec::with_capacity(n);
        for i in 0..n {
            values.push(match row.get_ref(i).map_err(map_error)? {
                ValueRef::Null => DbValue::Null,
                ValueRef::Integer(v) => DbValue::Integer(v),
                ValueRef::Real(v) => DbValue::Real(v),
                ValueRef::Text(t) => DbValue::Text(utf8_text(t)),
                ValueRef::Blob(b) => DbValue::Blob(b.to_vec()),
            });
        }
        out.push(values);
    }
    Ok(DbQueryResult { columns, rows: out })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_maps_storage_classes_and_errors() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        execute_blocking(
            &conn,
            "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT UNIQUE, score REAL, data BLOB); CREATE INDEX i ON t(score);",
            &[],
        )
        .unwrap();
        let r = execute_blocking(
            &conn,
            "INSERT INTO t(name, score, data) VALUES (?, ?, ?)",
            &[
                DbValue::Text("a".into()),
                DbValue::Real(1.5),
                DbValue::Blob(vec![1, 2]),
            ],
        )
        .unwrap();
        assert!(r.rows.is_empty());
        assert_eq!(conn.changes(), 1);
        execute_blocking(
            &conn,
            "INSERT INTO t(name, score, data) VALUES (?, ?, ?)",
            &[
                DbValue::Text("b".into()),
                DbValue::Integer(2),
                DbValue::Null,
            ],
        )
        .unwrap();
        let r = execute_blocking(
            &conn,
            "SELECT id, name, score, data FROM t ORDER BY id",
            &[],
        )
        .unwrap();
        assert_eq!(r.columns, vec!["id", "name", "score", "data"]);
        assert_eq!(
            r.rows,
            vec![
                vec![
                    DbValue::Integer(1),
                    DbValue::Text("a".into()),
                    DbValue::Real(1.5),
                    DbValue::Blob(vec![1, 2])
                ],
                vec![
                    DbValue::Integer(2),
                    DbValue::Text("b".into()),
                    // REAL affinity stores 2 as 2.0
                    DbValue::Real(2.0),
                    DbValue::Null
                ],
            ]
        );
        let e = execute_blocking(
            &conn,
            "INSERT INTO t(name) VALUES (?)",
            &[DbValue::Text("a".into())],
        )
        .unwrap_err();
        assert_eq!(e, DbError::Io("UNIQUE constraint failed: t.name".into()));
        let e = execute_blocking(&conn, "SELEC 1", &[]).unwrap_err();
        assert!(
            matches!(e, DbError::Io(ref m) if m.contains("syntax error")),
            "{e:?}"
        );
        let r = execute_blocking(
            &conn,
            "CREATE TABLE u(x); INSERT INTO u VALUES (7); SELECT x FROM u;",
            &[],
        )
        .unwrap();
        assert_eq!(r.rows, vec![vec![DbValue::Integer(7)]]);
        let e = execute_blocking(&conn, "SELECT 1; SELEC 2", &[]).unwrap_err();
        assert!(
            matches!(e, DbError::Io(ref m) if m.contains("syntax error")),
            "{e:?}"
        );
    }

    #[test]
    fn connection_pragmas_are_recognised() {
        use ConnectionPragma::*;
        let p = connection_pragma;
        assert_eq!(p("PRAGMA foreign_keys = ON"), Some(ForeignKeys(true)));
        assert_eq!(p(" pragma FOREIGN_KEYS=off; "), Some(ForeignKeys(false)));
        assert_eq!(p("PRAGMA busy_timeout = 5000"), Some(BusyTimeout(5000)));
        assert_eq!(p("PRAGMA busy_timeout=0;"), Some(BusyTimeout(0)));
        for other in [
            "PRAGMA foreign_keys",
            "PRAGMA foreign_keys = 'on'",
            "PRAGMA main.foreign_keys = ON",
            "PRAGMA busy_timeout",
            "PRAGMA busy_timeout = -1",
            "PRAGMA busy_timeout = 99999999999",
            "PRAGMA busy_timeout = 1e3",
            "PRAGMA user_version = 1",
            "SELECT 1",
        ] {
            assert_eq!(p(other), None, "{other}");
        }
    }

    #[test]
    fn text_that_is_not_utf8_reads_with_replacement_characters() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let result =
            execute_blocking(&conn, "SELECT 'héllo', CAST(X'61FF62' AS TEXT)", &[]).unwrap();
        assert_eq!(
            result.rows,
            vec![vec![
                DbValue::Text("héllo".into()),
                DbValue::Text("a\u{FFFD}b".into())
            ]]
        );
    }

    #[test]
    fn connection_pragmas_answer_as_sqlite_does_and_keep_the_statement_cache() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        // What SQLite itself returns for each, run as SQL.
        let by_sqlite = |conn: &rusqlite::Connection, sql: &str| {
            let mut stmt = conn.prepare(sql).unwrap();
            run_statement(&mut stmt, &[]).unwrap()
        };
        for sql in ["PRAGMA busy_timeout = 5000", "PRAGMA busy_timeout = 0"] {
            let expected = by_sqlite(&conn, sql);
            assert_eq!(
                execute_blocking(&conn, sql, &[]).unwrap(),
                expected,
                "{sql}"
            );
        }
        execute_blocking(&conn, "PRAGMA busy_timeout = 1234", &[]).unwrap();
        assert_eq!(
            by_sqlite(&conn, "PRAGMA busy_timeout").rows,
            vec![vec![DbValue::Integer(1234)]]
        );
        let fk = |conn: &rusqlite::Connection| by_sqlite(conn, "PRAGMA foreign_keys").rows;
        assert_eq!(
            by_sqlite(&conn, "PRAGMA foreign_keys = ON"),
            DbQueryResult::default()
        );
        assert_eq!(
            execute_blocking(&conn, "PRAGMA foreign_keys = ON", &[]).unwrap(),
            DbQueryResult::default()
        );
        assert_eq!(fk(&conn), vec![vec![DbValue::Integer(1)]]);

        execute_blocking(&conn, "CREATE TABLE t(x)", &[]).unwrap();
        let select = "SELECT count(*) FROM t";
        execute_blocking(&conn, select, &[]).unwrap();
        let reprepared = |conn: &rusqlite::Connection| {
            conn.prepare_cached(select)
                .unwrap()
                .get_status(rusqlite::StatementStatus::RePrepare)
        };
        let before = reprepared(&conn);
        for sql in ["PRAGMA foreign_keys = on;", "PRAGMA busy_timeout = 5000"] {
            execute_blocking(&conn, sql, &[]).unwrap();
        }
        execute_blocking(&conn, select, &[]).unwrap();
        assert_eq!(
            reprepared(&conn),
            before,
            "the cached statement was not re-prepared"
        );
        // A change of the flag runs as SQL (and expires it: the reason for all this).
        execute_blocking(&conn, "PRAGMA foreign_keys = OFF", &[]).unwrap();
        assert_eq!(fk(&conn), vec![vec![DbValue::Integer(0)]]);
        execute_blocking(&conn, select, &[]).unwrap();
        assert_eq!(reprepared(&conn), before + 1);
    }
}
