//! The Spin SQLite host binding on rusqlite: `spin:sqlite/sqlite@3.0.0` and the older
//! `fermyon:spin/sqlite@2.0.0`, one implementation behind both.
//!
//! Semantics, as in Spin:
//! * a component may open only the labels in its `sqlite_databases`; a label that is
//!   configured but not listed is `access-denied`, a label not configured at all is
//!   `no-such-database` (`default` is always configured);
//! * a `connection` resource pins one pooled connection from `open` until the guest
//!   drops it or the store ends (normally, trap or deadline); any transaction left
//!   open is then rolled back before the connection is reused (see [`pool`]);
//! * SQLite errors reach the guest as `io(<SQLite's message>)`, a full disk as
//!   `database-full`, an exhausted pool as `io("... pool exhausted ...")`;
//! * all SQLite work runs on tokio's blocking threads.
//!
//! A label configured as `type = "libsql"` is served the same way over a libSQL server
//! ([`libsql`]): a connection pins one server-side stream, transactions span calls, an
//! instance's end rolls back, every wait is bounded.

pub(crate) mod capability;
mod checkpoint;
pub mod config;
mod library_config;
pub mod libsql;
mod open;
pub mod pool;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rusqlite::types::{ToSqlOutput, ValueRef};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

pub use libsql::{RemoteConnection, RemotePool};
pub use pool::{
    may_block, run_marked_blocking, Pool, PoolError, PoolOptions, PooledConnection, Synchronous,
};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spin-host:host/sqlite",
        imports: { default: async | trappable },
        with: {
            "spin:sqlite/sqlite.connection": super::Connection,
            "fermyon:spin/sqlite.connection": super::Connection,
        },
    });
}

use bindings::fermyon::spin::sqlite as v2;
use bindings::spin::sqlite::sqlite as v3;

/// The host side of a guest `connection` resource: the pinned pooled connection, or
/// the pinned libSQL stream (`remote`) for a `type = "libsql"` database.
///
/// `conn` is `None` for a libSQL database, while a statement is running on a blocking
/// thread (the connection is moved there and back), or after a blocking task failed.
pub struct Connection {
    conn: Option<PooledConnection>,
    remote: Option<RemoteConnection>,
}

/// The databases of one host: the opened pools, and every label that counts as
/// configured. Shared by all instances.
#[derive(Debug, Default)]
pub struct Databases {
    pools: HashMap<String, Pool>,
    remote: HashMap<String, RemotePool>,
    configured: HashSet<String>,
}

impl Databases {
    /// `pools` are the opened databases; `configured` every label the configuration
    /// knows (`default` is added automatically).
    pub fn new(pools: HashMap<String, Pool>, configured: impl IntoIterator<Item = String>) -> Self {
        let mut configured: HashSet<String> = configured.into_iter().collect();
        configured.insert("default".to_string());
        configured.extend(pools.keys().cloned());
        Databases {
            pools,
            remote: HashMap::new(),
            configured,
        }
    }

    /// Add the libSQL databases (`type = "libsql"`), each label also configured.
    pub fn with_remote(mut self, remote: HashMap<String, RemotePool>) -> Self {
        self.configured.extend(remote.keys().cloned());
        self.remote.extend(remote);
        self
    }

    /// The opened pools of local files.
    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.pools.values()
    }

    /// The libSQL databases.
    pub fn remote_pools(&self) -> impl Iterator<Item = &RemotePool> {
        self.remote.values()
    }
}

/// Per-instance SQLite state: which databases this component may open.
pub struct SqliteCtx {
    databases: Arc<Databases>,
    allowed: Arc<HashSet<String>>,
    stop: Option<StopCheck>,
    /// Set when the stop check interrupted a statement of this instance.
    interrupted: Arc<AtomicBool>,
}

/// Whether the instance's run has to end (its deadline passed, the host is shutting
/// down, the client left). A statement runs inline on the guest's thread, where nothing
/// async can end it; SQLite calls this between steps of the statement (a progress
/// handler) and interrupts it when it says so.
pub type StopCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// SQLite virtual machine steps between two [`StopCheck`]s: about a millisecond of
/// work between checks for ordinary steps, for a check that costs a few nanoseconds. A
/// single heavy step (a sort, an index build) can take longer, and SQLite does not call
/// it at all while waiting for a lock (the busy timeout bounds that).
const STOP_CHECK_STEPS: i32 = 10_000;

impl SqliteCtx {
    /// State for an instance of a component allowed to open the labels in `allowed`.
    pub fn new(databases: Arc<Databases>, allowed: Arc<HashSet<String>>) -> Self {
        SqliteCtx {
            databases,
            allowed,
            stop: None,
            interrupted: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Interrupt this instance's statements once `stop` says so.
    pub fn with_stop(mut self, stop: StopCheck) -> Self {
        self.stop = Some(stop);
        self
    }
}

/// What the binding needs from the store: its SQLite state and the store's resource
/// table (where `connection` resources live).
pub struct SqliteView<'a> {
    /// The instance's SQLite state.
    pub ctx: &'a mut SqliteCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

struct SqliteBinding;

impl HasData for SqliteBinding {
    type Data<'a> = SqliteView<'a>;
}

/// Add both SQLite interfaces to `linker`; `get` projects the store data to a view.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> SqliteView<'_>,
) -> wasmtime::Result<()> {
    bindings::Sqlite::add_to_linker::<T, SqliteBinding>(linker, get)
}

// ---- the implementation, in interface-neutral types ---------------------------

/// Interface-neutral error (converted to each interface's `error`).
#[derive(Debug, Clone, PartialEq)]
pub enum DbError {
    /// The label is not configured.
    NoSuchDatabase,
    /// The label is configured but not in the component's `sqlite_databases`.
    AccessDenied,
    /// The connection is no longer usable.
    InvalidConnection,
    /// SQLITE_FULL.
    DatabaseFull,
    /// Anything else, with SQLite's (or the pool's) message.
    Io(String),
}

/// Interface-neutral value.
#[derive(Debug, Clone, PartialEq)]
pub enum DbValue {
    /// INTEGER
    Integer(i64),
    /// REAL
    Real(f64),
    /// TEXT
    Text(String),
    /// BLOB
    Blob(Vec<u8>),
    /// NULL
    Null,
}

/// Interface-neutral query result.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DbQueryResult {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows; each has one value per column.
    pub rows: Vec<Vec<DbValue>>,
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

impl SqliteView<'_> {
    async fn open_impl(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, DbError>> {
        if !self.ctx.databases.configured.contains(&database) {
            return Ok(Err(DbError::NoSuchDatabase));
        }
        if !self.ctx.allowed.contains(&database) {
            return Ok(Err(DbError::AccessDenied));
        }
        if let Some(remote) = self.ctx.databases.remote.get(&database) {
            // No stop check to install: a libSQL statement is an async exchange, which
            // the end of the run cancels like any other wait (see `libsql`).
            return match remote.acquire().await {
                Ok(conn) => Ok(Ok(self.table.push(Connection {
                    conn: None,
                    remote: Some(conn),
                })?)),
                Err(e) => Ok(Err(DbError::Io(e.to_string()))),
            };
        }
        let Some(pool) = self.ctx.databases.pools.get(&database) else {
            // Configured, allowed, but never opened: the host only opens what
            // components list, so this cannot happen; refuse rather than panic.
            return Ok(Err(DbError::AccessDenied));
        };
        match pool.acquire().await {
            Ok(mut conn) => {
                if let Some(stop) = self.ctx.stop.clone() {
                    // Cleared when the connection goes back to the pool.
                    let interrupted = self.ctx.interrupted.clone();
                    conn.set_stop_check(
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
                Ok(Ok(self.table.push(Connection {
                    conn: Some(conn),
                    remote: None,
                })?))
            }
            Err(e) => Ok(Err(DbError::Io(e.to_string()))),
        }
    }

    async fn execute_impl(
        &mut self,
        this: &Resource<Connection>,
        statement: String,
        params: Vec<DbValue>,
    ) -> wasmtime::Result<Result<DbQueryResult, DbError>> {
        if let Some(remote) = self.table.get_mut(this)?.remote.as_mut() {
            return Ok(remote.execute(&statement, &params).await);
        }
        if may_block() {
            // This thread runs the guest and may block (see `server`): run the
            // statement right here, queueing on the write gate first if it writes.
            let Some(pooled) = self.table.get_mut(this)?.conn.as_mut() else {
                return Ok(Err(DbError::InvalidConnection));
            };
            pooled.note_statement(&statement);
            // (The two connection pragmas the binding answers itself never write.)
            let pragma = params
                .is_empty()
                .then(|| connection_pragma(&statement))
                .flatten();
            if pragma.is_none() && pooled.needs_write_gate(&statement) {
                pooled.enter_write().await;
            }
            let result = execute_blocking(pooled.conn(), &statement, &params);
            if let (Some(ConnectionPragma::BusyTimeout(ms)), Ok(_)) = (pragma, &result) {
                pooled.remember_busy_timeout(std::time::Duration::from_millis(ms.into()));
            }
            pooled.leave_write_if_done();
            if result.is_err() && self.ctx.interrupted.swap(false, Ordering::Relaxed) {
                // Interrupted because the run has to end: end it as the epoch
                // deadline does, rather than let the guest carry on with an error.
                return Err(wasmtime::Trap::Interrupt.into());
            }
            return Ok(result);
        }
        let Some(pooled) = self.table.get_mut(this)?.conn.take() else {
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
                self.table.get_mut(this)?.conn = Some(pooled);
                Ok(result)
            }
            Err(e) => Ok(Err(DbError::Io(format!("statement failed: {e}")))),
        }
    }

    fn with_conn<R>(
        &mut self,
        this: &Resource<Connection>,
        default: R,
        f: impl FnOnce(&PooledConnection) -> R,
    ) -> wasmtime::Result<R> {
        // Reading these counters is a field read inside SQLite: no I/O, no lock.
        Ok(match &self.table.get(this)?.conn {
            Some(pooled) => f(pooled),
            None => default,
        })
    }

    fn drop_impl(&mut self, this: Resource<Connection>) -> wasmtime::Result<()> {
        // Dropping the PooledConnection rolls back and returns it to the pool.
        self.table.delete(this)?;
        Ok(())
    }
}

macro_rules! convert_types {
    ($m:ident) => {
        impl From<DbError> for $m::Error {
            fn from(e: DbError) -> Self {
                match e {
                    DbError::NoSuchDatabase => $m::Error::NoSuchDatabase,
                    DbError::AccessDenied => $m::Error::AccessDenied,
                    DbError::InvalidConnection => $m::Error::InvalidConnection,
                    DbError::DatabaseFull => $m::Error::DatabaseFull,
                    DbError::Io(s) => $m::Error::Io(s),
                }
            }
        }

        impl From<$m::Value> for DbValue {
            fn from(v: $m::Value) -> Self {
                match v {
                    $m::Value::Integer(i) => DbValue::Integer(i),
                    $m::Value::Real(f) => DbValue::Real(f),
                    $m::Value::Text(s) => DbValue::Text(s),
                    $m::Value::Blob(b) => DbValue::Blob(b),
                    $m::Value::Null => DbValue::Null,
                }
            }
        }

        impl From<DbValue> for $m::Value {
            fn from(v: DbValue) -> Self {
                match v {
                    DbValue::Integer(i) => $m::Value::Integer(i),
                    DbValue::Real(f) => $m::Value::Real(f),
                    DbValue::Text(s) => $m::Value::Text(s),
                    DbValue::Blob(b) => $m::Value::Blob(b),
                    DbValue::Null => $m::Value::Null,
                }
            }
        }

        impl From<DbQueryResult> for $m::QueryResult {
            fn from(r: DbQueryResult) -> Self {
                $m::QueryResult {
                    columns: r.columns,
                    rows: r
                        .rows
                        .into_iter()
                        .map(|values| $m::RowResult {
                            values: values.into_iter().map(Into::into).collect(),
                        })
                        .collect(),
                }
            }
        }

        impl $m::Host for SqliteView<'_> {}
    };
}

convert_types!(v3);
convert_types!(v2);

impl v3::HostConnection for SqliteView<'_> {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, v3::Error>> {
        Ok(self.open_impl(database).await?.map_err(Into::into))
    }

    async fn execute(
        &mut self,
        this: Resource<Connection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> wasmtime::Result<Result<v3::QueryResult, v3::Error>> {
        let params = parameters.into_iter().map(Into::into).collect();
        Ok(self
            .execute_impl(&this, statement, params)
            .await?
            .map(Into::into)
            .map_err(Into::into))
    }

    async fn last_insert_rowid(&mut self, this: Resource<Connection>) -> wasmtime::Result<i64> {
        if let Some(remote) = &self.table.get(&this)?.remote {
            return Ok(remote.last_insert_rowid());
        }
        self.with_conn(&this, 0, PooledConnection::last_insert_rowid)
    }

    async fn changes(&mut self, this: Resource<Connection>) -> wasmtime::Result<u64> {
        if let Some(remote) = &self.table.get(&this)?.remote {
            return Ok(remote.changes());
        }
        self.with_conn(&this, 0, PooledConnection::changes)
    }

    async fn drop(&mut self, this: Resource<Connection>) -> wasmtime::Result<()> {
        self.drop_impl(this)
    }
}

impl v2::HostConnection for SqliteView<'_> {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, v2::Error>> {
        Ok(self.open_impl(database).await?.map_err(Into::into))
    }

    async fn execute(
        &mut self,
        this: Resource<Connection>,
        statement: String,
        parameters: Vec<v2::Value>,
    ) -> wasmtime::Result<Result<v2::QueryResult, v2::Error>> {
        let params = parameters.into_iter().map(Into::into).collect();
        Ok(self
            .execute_impl(&this, statement, params)
            .await?
            .map(Into::into)
            .map_err(Into::into))
    }

    async fn drop(&mut self, this: Resource<Connection>) -> wasmtime::Result<()> {
        self.drop_impl(this)
    }
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

    #[test]
    fn default_is_always_configured() {
        let d = Databases::new(HashMap::new(), ["other".to_string()]);
        assert!(d.configured.contains("default"));
        assert!(d.configured.contains("other"));
        assert!(!d.configured.contains("nope"));
    }
}
