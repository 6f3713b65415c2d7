//! A bounded pool of rusqlite connections to one database file.
//!
//! Why a pool of our own: each guest `connection` resource pins one connection from
//! `open` to drop (so a transaction spans `execute` calls), the pool must never hang a
//! request (bounded wait, then an error the component can turn into a 503), and a
//! connection must come back clean (any open transaction rolled back) whatever way
//! the guest ended. Every blocking SQLite call runs on tokio's blocking threads.
//!
//! Writers queue on an in-process write gate (one per pool) before they take SQLite's
//! write lock: a FIFO async wait instead of SQLite's sleep-and-retry busy handler, which
//! under contention sleeps up to 100 ms between retries and makes write latency jumpy.
//! The WAL is checkpointed in the background ([`super::checkpoint`]), not by the COMMIT
//! that happens to cross SQLite's threshold.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::checkpoint::{self, Checkpointer};

/// SQLite's `synchronous` level for every pooled connection (always in WAL mode).
///
/// * `Normal` (the default): a transaction acknowledged by `COMMIT` survives the
///   process being killed (the WAL is written before COMMIT returns); only a power
///   loss or OS crash may roll back the last transactions. Never corrupts.
/// * `Full`: the WAL is also fsynced at every commit, so acknowledged transactions
///   survive power loss too, at the cost of one fsync per write transaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// `PRAGMA synchronous = NORMAL`.
    #[default]
    Normal,
    /// `PRAGMA synchronous = FULL`.
    Full,
}

impl Synchronous {
    fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// How a [`Pool`] opens and hands out connections.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Maximum connections open at once (at least 1).
    pub size: usize,
    /// How long `acquire` waits for a free connection before failing.
    pub wait: Duration,
    /// SQLite `busy_timeout` of each connection.
    pub busy_timeout: Duration,
    /// `PRAGMA synchronous` of each connection.
    pub synchronous: Synchronous,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            size: 16,
            wait: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Normal,
        }
    }
}

/// Why [`Pool::acquire`] failed. The Display text is what the guest sees in
/// `error::io(..)`.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every connection stayed busy for the whole wait.
    #[error(
        "database `{label}`: connection pool exhausted ({size} connections busy for {wait:?})"
    )]
    Exhausted {
        /// Database label.
        label: String,
        /// Pool size.
        size: usize,
        /// How long we waited.
        wait: Duration,
    },
    /// The pool was closed (the host is shutting down).
    #[error("database `{0}` is closed")]
    Closed(String),
    /// Opening a new connection failed.
    #[error("{0}")]
    Open(String),
}

struct PoolInner {
    label: String,
    path: PathBuf,
    options: PoolOptions,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    /// One permit: held by the connection that has (or is about to take) SQLite's
    /// write lock, from its first writing statement until it is back in autocommit.
    write_gate: Arc<Semaphore>,
    /// The connection write transactions run on, lent to the gate holder (see
    /// [`PooledConnection`]); `None` while lent, and until the first write.
    writer: Mutex<Option<Connection>>,
    /// Taken by `close`, which stops its thread.
    checkpointer: Mutex<Option<Checkpointer>>,
    closed: AtomicBool,
}

impl PoolInner {
    /// A write transaction ended: let the checkpointer know.
    fn wrote(&self) {
        if let Ok(Some(checkpointer)) = self.checkpointer.lock().as_deref() {
            checkpointer.wrote();
        }
    }
}

thread_local! {
    static MAY_BLOCK: Cell<bool> = const { Cell::new(false) };
}

/// Run `f` with this thread marked as one where SQLite work may block: a thread of
/// tokio's blocking pool that runs a whole guest (see `server`). Host calls made
/// from `f` run their statements right here instead of hopping to another blocking
/// thread and back for each one.
pub fn run_marked_blocking<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            MAY_BLOCK.with(|m| m.set(self.0));
        }
    }
    let _reset = Reset(MAY_BLOCK.with(|m| m.replace(true)));
    f()
}

/// Whether this thread runs inside [`run_marked_blocking`].
pub fn may_block() -> bool {
    MAY_BLOCK.with(Cell::get)
}

/// A bounded pool of connections to one SQLite file. Cloning shares the pool.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("label", &self.inner.label)
            .field("path", &self.inner.path)
            .finish()
    }
}

/// Open one connection configured the way every pooled connection is: WAL,
/// `busy_timeout`, `foreign_keys = ON`, `synchronous` per options, a statement cache.
///
/// Fails if the file is not an SQLite database or cannot be written.
pub fn open_connection(path: &Path, options: &PoolOptions) -> rusqlite::Result<Connection> {
    super::library_config::configure_once();
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    // busy_timeout first: switching to WAL needs a lock another process may hold.
    conn.busy_timeout(options.busy_timeout)?;
    // Reading the header here is also what detects a file that isn't a database.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!(
                "could not switch to WAL mode (journal_mode is {mode})"
            )),
        ));
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", options.synchronous.pragma_value())?;
    conn.pragma_update(None, "wal_autocheckpoint", checkpoint::SAFETY_FRAMES)?;
    if conn.is_readonly(rusqlite::MAIN_DB)? {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
            Some("database is read-only".to_string()),
        ));
    }
    // The query planner stability guarantee: a plan never depends on the values bound
    // to parameters. Without it SQLite (3.50) lets a bound `LIMIT ?` (or a `LIKE ?`)
    // shape the plan and marks the statement to be re-prepared whenever that
    // parameter is bound again, i.e. on every use of a cached `... LIMIT ?` statement.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl Pool {
    /// Open the pool for database `label` at `path`: create the parent folder if
    /// needed and open one connection right away (on a blocking thread), so that an
    /// unusable file fails here, at start-up, with an error naming the path.
    pub async fn open(label: &str, path: &Path, options: PoolOptions) -> anyhow::Result<Pool> {
        let label = label.to_string();
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || Pool::open_blocking(&label, &path, options))
            .await
            .map_err(|e| anyhow::anyhow!("opening database: {e}"))?
    }

    /// [`Pool::open`] for callers already on a blocking thread.
    pub fn open_blocking(label: &str, path: &Path, options: PoolOptions) -> anyhow::Result<Pool> {
        let options = PoolOptions {
            size: options.size.max(1),
            ..options
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!(
                    "cannot create folder {} for database `{label}`: {e}",
                    dir.display()
                )
            })?;
        }
        let first = open_connection(path, &options).map_err(|e| {
            anyhow::anyhow!("cannot open database `{label}` at {}: {e}", path.display())
        })?;
        let checkpointer = Checkpointer::start(label, path, &options)?;
        Ok(Pool {
            inner: Arc::new(PoolInner {
                label: label.to_string(),
                path: path.to_path_buf(),
                permits: Arc::new(Semaphore::new(options.size)),
                write_gate: Arc::new(Semaphore::new(1)),
                writer: Mutex::new(None),
                checkpointer: Mutex::new(Some(checkpointer)),
                options,
                idle: Mutex::new(vec![first]),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// The database label.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Connections currently checked out.
    pub fn in_use(&self) -> usize {
        self.inner.options.size - self.inner.permits.available_permits()
    }

    /// Connections open and waiting in the pool.
    pub fn idle(&self) -> usize {
        self.inner.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Check out a connection, waiting at most `options.wait` for one to free up.
    ///
    /// Never hangs: after the wait it fails with [`PoolError::Exhausted`]. The
    /// connection returns to the pool (with any open transaction rolled back) when the
    /// [`PooledConnection`] is dropped.
    pub async fn acquire(&self) -> Result<PooledConnection, PoolError> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(PoolError::Closed(inner.label.clone()));
        }
        let permit =
            match tokio::time::timeout(inner.options.wait, inner.permits.clone().acquire_owned())
                .await
            {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => return Err(PoolError::Closed(inner.label.clone())),
                Err(_) => {
                    return Err(PoolError::Exhausted {
                        label: inner.label.clone(),
                        size: inner.options.size,
                        wait: inner.options.wait,
                    })
                }
            };
        let idle = inner.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match idle {
            Some(conn) => conn,
            None if may_block() => open_connection(&inner.path, &inner.options)
                .map_err(|e| PoolError::Open(format!("database `{}`: {e}", inner.label)))?,
            None => {
                let path = inner.path.clone();
                let options = inner.options.clone();
                let label = inner.label.clone();
                tokio::task::spawn_blocking(move || open_connection(&path, &options))
                    .await
                    .map_err(|e| PoolError::Open(format!("database `{label}`: {e}")))?
                    .map_err(|e| PoolError::Open(format!("database `{label}`: {e}")))?
            }
        };
        Ok(PooledConnection::new(self.inner.clone(), conn, permit))
    }

    /// Close the pool: new `acquire`s fail, then wait up to `wait` for checked-out
    /// connections to come back, then close every idle connection (on a blocking
    /// thread; closing the last connection checkpoints the WAL).
    pub async fn close(&self, wait: Duration) {
        let inner = self.inner.clone();
        inner.closed.store(true, Ordering::Release);
        let size = u32::try_from(inner.options.size).unwrap_or(u32::MAX);
        let all = tokio::time::timeout(wait, inner.permits.clone().acquire_many_owned(size)).await;
        if all.is_err() {
            tracing::warn!(
                database = %inner.label,
                in_use = self.in_use(),
                "closing database with connections still in use"
            );
        }
        inner.permits.close();
        let idle: Vec<Connection> = inner
            .idle
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        let writer = inner.writer.lock().ok().and_then(|mut w| w.take());
        let checkpointer = inner.checkpointer.lock().ok().and_then(|mut c| c.take());
        // The checkpointer first (it waits for a checkpoint in progress), then the
        // connections, the last of which checkpoints what is left.
        let _ = tokio::task::spawn_blocking(move || {
            drop(checkpointer);
            drop(writer);
            drop(idle)
        })
        .await;
    }
}

/// A check for "stop now" that SQLite calls every few thousand VM steps (see
/// [`PooledConnection::set_stop_check`]).
pub type StopCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// One connection checked out of a [`Pool`].
///
/// On drop, any open transaction is rolled back and the connection goes back to the
/// pool (on a blocking thread when a tokio runtime is available); only then is its
/// slot freed for the next `acquire`.
///
/// Write transactions run on the pool's **writer** connection rather than on this one:
/// [`enter_write`](Self::enter_write) lends it to the gate holder and
/// [`leave_write_if_done`](Self::leave_write_if_done) takes it back. Only the gate holder
/// uses it, so nothing else writes between its transactions and SQLite keeps its page
/// cache; a connection that another connection wrote behind discards its whole cache at
/// its next transaction and reads every page again (measured: 394 against 150 µs for the
/// same ingest transaction with 32 connections taking turns, natively). The lease keeps
/// its own connection when borrowing could be seen: a transaction already open on it
/// (a deferred `BEGIN` that read first), or connection state that the writer would not
/// have (see [`changes_connection_state`]).
pub struct PooledConnection {
    conn: Option<Connection>,
    /// The pool's writer connection, while this lease writes on it.
    writer: Option<Connection>,
    permit: Option<OwnedSemaphorePermit>,
    /// The pool's write gate, while this connection writes.
    gate: Option<OwnedSemaphorePermit>,
    pool: Arc<PoolInner>,
    /// Set once this lease ran a statement that changes its connection's state: it then
    /// writes on its own connection (or keeps the writer it changed; see `leave_write_if_done`).
    pinned: bool,
    /// The writer saw such a statement during this lease's write.
    writer_changed: bool,
    /// The guest's `busy_timeout`, applied to the writer while it is lent.
    busy_timeout: Option<Duration>,
    stop: Option<(i32, StopCheck)>,
    /// `last_insert_rowid` and `changes` as the writer left them after this lease's last
    /// write through it (reads do not change them).
    written: Option<(i64, u64)>,
}

impl PooledConnection {
    fn new(pool: Arc<PoolInner>, conn: Connection, permit: OwnedSemaphorePermit) -> Self {
        PooledConnection {
            conn: Some(conn),
            writer: None,
            permit: Some(permit),
            gate: None,
            pool,
            pinned: false,
            writer_changed: false,
            busy_timeout: None,
            stop: None,
            written: None,
        }
    }

    /// The connection statements run on now: the writer while one is lent, else this
    /// lease's own. Blocking: call it from a blocking thread.
    pub fn conn(&self) -> &Connection {
        self.writer
            .as_ref()
            .or(self.conn.as_ref())
            .expect("connection present until drop")
    }

    fn own(&self) -> &Connection {
        self.conn.as_ref().expect("connection present until drop")
    }

    /// The label of the database this connection belongs to.
    pub fn label(&self) -> &str {
        &self.pool.label
    }

    /// SQLite calls `check` every `steps` VM steps on whichever connection this lease
    /// runs on, and interrupts the statement when it answers true. Cleared when the
    /// lease ends.
    pub fn set_stop_check(&mut self, steps: i32, check: StopCheck) {
        install_stop_check(self.own(), steps, &check);
        if let Some(writer) = &self.writer {
            install_stop_check(writer, steps, &check);
        }
        self.stop = Some((steps, check));
    }

    /// The guest set `busy_timeout` (on [`conn`](Self::conn)); keep it for the other
    /// connection too.
    pub fn remember_busy_timeout(&mut self, timeout: Duration) {
        if self.writer.is_some() {
            let _ = self.own().busy_timeout(timeout);
        }
        self.busy_timeout = Some(timeout);
    }

    /// Call before running `statement`: notes statements whose effect stays with the
    /// connection, so that what follows sees it.
    pub fn note_statement(&mut self, statement: &str) {
        if changes_connection_state(statement) {
            self.pinned = true;
            self.writer_changed |= self.writer.is_some();
        }
    }

    /// `last_insert_rowid` as the guest should see it.
    pub fn last_insert_rowid(&self) -> i64 {
        match (&self.writer, self.written) {
            (Some(writer), _) => writer.last_insert_rowid(),
            (None, Some((rowid, _))) => rowid,
            (None, None) => self.own().last_insert_rowid(),
        }
    }

    /// `changes` as the guest should see it.
    pub fn changes(&self) -> u64 {
        match (&self.writer, self.written) {
            (Some(writer), _) => writer.changes(),
            (None, Some((_, changes))) => changes,
            (None, None) => self.own().changes(),
        }
    }

    /// Whether running `statement` next needs the write gate: it writes (a write
    /// statement, or `BEGIN IMMEDIATE`/`EXCLUSIVE`, as `sqlite3_stmt_readonly` says)
    /// and this connection does not hold the gate yet. Prepares the statement (through
    /// the statement cache): call it where SQLite work may block.
    pub fn needs_write_gate(&self, statement: &str) -> bool {
        if self.gate.is_some() {
            return false;
        }
        let script = statement.trim().trim_end_matches(';').contains(';');
        if starts_with_keyword(statement, "SELECT") && !script {
            return false;
        }
        match self.conn().prepare_cached(statement) {
            Ok(stmt) => !stmt.readonly(),
            // Several statements (a script, which may write): gate them. Anything else
            // fails again when it runs; no gate needed for that.
            Err(_) => script,
        }
    }

    /// Wait for the pool's write gate (FIFO, async), at most the pool's `wait`; after
    /// that, go on without it and let SQLite's `busy_timeout` arbitrate. With the gate,
    /// borrow the pool's writer connection when this lease may (see the type's docs).
    /// May open a connection: call it where SQLite work may block.
    pub async fn enter_write(&mut self) {
        if self.gate.is_some() {
            return;
        }
        let gate = self.pool.write_gate.clone();
        if let Ok(Ok(permit)) =
            tokio::time::timeout(self.pool.options.wait, gate.acquire_owned()).await
        {
            self.gate = Some(permit);
            self.borrow_writer();
        }
    }

    fn borrow_writer(&mut self) {
        if self.pinned || !self.own().is_autocommit() || self.pool.closed.load(Ordering::Acquire) {
            return;
        }
        let lent = self.pool.writer.lock().ok().and_then(|mut w| w.take());
        let writer = match lent {
            Some(writer) => writer,
            None => match open_connection(&self.pool.path, &self.pool.options) {
                Ok(writer) => writer,
                // Writing on the own connection is always correct, only slower.
                Err(e) => {
                    tracing::debug!(database = %self.pool.label, error = %e, "no writer connection");
                    return;
                }
            },
        };
        if let Err(e) = self.configure_writer(&writer) {
            tracing::debug!(database = %self.pool.label, error = %e, "writer not configured");
            return self.return_writer(writer, true);
        }
        self.writer = Some(writer);
    }

    /// The writer takes this lease's connection settings: foreign keys, busy timeout,
    /// stop check.
    fn configure_writer(&self, writer: &Connection) -> rusqlite::Result<()> {
        use rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_FKEY as FKEY;
        let foreign_keys = self.own().db_config(FKEY)?;
        if writer.db_config(FKEY)? != foreign_keys {
            writer.set_db_config(FKEY, foreign_keys)?;
        }
        writer.busy_timeout(self.busy_timeout.unwrap_or(self.pool.options.busy_timeout))?;
        if let Some((steps, check)) = &self.stop {
            install_stop_check(writer, *steps, check);
        }
        Ok(())
    }

    /// Give the write gate back once the connection is in autocommit mode again (its
    /// write statement or transaction is over), and the writer with it. Reading the flag
    /// does no I/O.
    pub fn leave_write_if_done(&mut self) {
        if self.gate.is_none() || !self.conn().is_autocommit() {
            return;
        }
        match self.writer.take() {
            Some(writer) => {
                self.written = Some((writer.last_insert_rowid(), writer.changes()));
                if std::mem::take(&mut self.writer_changed) {
                    // The writer now holds state this lease made (a temporary table, a
                    // setting): the lease keeps it as its own, and its former own
                    // connection goes back to the pool; the pool opens a new writer.
                    // It already has the lease's settings (`configure_writer`).
                    self.written = None;
                    if let Some(own) = self.conn.replace(writer) {
                        reset_connection(&own, &self.pool);
                        push_idle(&self.pool, own);
                    }
                } else {
                    self.return_writer(writer, false);
                }
            }
            // A write on this lease's own connection.
            None => self.written = None,
        }
        self.gate = None;
        self.pool.wrote();
    }

    /// Put the writer back in its slot (or close it when `discard`), without the lease's
    /// settings. Only while the gate is held: the next holder finds it there.
    fn return_writer(&self, writer: Connection, discard: bool) {
        reset_connection(&writer, &self.pool);
        if discard || self.pool.closed.load(Ordering::Acquire) {
            return;
        }
        if let Ok(mut slot) = self.pool.writer.lock() {
            *slot = Some(writer);
        }
    }
}

fn install_stop_check(conn: &Connection, steps: i32, check: &StopCheck) {
    let check = check.clone();
    conn.progress_handler(steps, Some(move || check()));
}

/// Back to the pool's settings: no stop check (the last user's must not interrupt the
/// next, nor a ROLLBACK), the pool's busy timeout (a huge one would let a lock wait,
/// where SQLite does not call the stop check, outlast the next user's deadline) and
/// foreign keys on.
fn reset_connection(conn: &Connection, pool: &PoolInner) {
    use rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_FKEY as FKEY;
    conn.progress_handler(0, None::<fn() -> bool>);
    let _ = conn.busy_timeout(pool.options.busy_timeout);
    if conn.db_config(FKEY).ok() == Some(false) && conn.is_autocommit() {
        let _ = conn.set_db_config(FKEY, true);
    }
}

/// Roll back what `conn` left open and put it back to the pool's settings; `false` when
/// the rollback failed (the connection is then not fit to reuse). The stop check goes
/// first, so that it cannot interrupt the ROLLBACK; foreign keys come back on after it,
/// since SQLite ignores the setting inside a transaction.
fn end_transaction(conn: &Connection, pool: &PoolInner) -> bool {
    reset_connection(conn, pool);
    if conn.is_autocommit() {
        return true;
    }
    if let Err(e) = conn.execute_batch("ROLLBACK") {
        tracing::warn!(database = %pool.label, error = %e, "rollback failed; discarding connection");
        return false;
    }
    reset_connection(conn, pool);
    true
}

/// Whether `statement` may leave state on its connection that a later statement could
/// see: a `PRAGMA` other than those that only read or set the database itself and the
/// two a lease carries over (`foreign_keys`, `busy_timeout`), `ATTACH`/`DETACH`, or
/// anything naming a temporary object (`TEMP`, `TEMPORARY`, `temp.`), anywhere in a
/// script. Errs on the side of yes (a word in a string literal counts): a false yes only
/// keeps a lease on its own connection.
pub fn changes_connection_state(statement: &str) -> bool {
    const DATABASE_PRAGMAS: &[&str] = &[
        "user_version",
        "foreign_keys",
        "busy_timeout",
        "journal_mode",
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
        "schema_version",
        "data_version",
        "page_count",
        "freelist_count",
    ];
    let mut words = statement
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty());
    while let Some(word) = words.next() {
        let is = |keyword: &str| word.eq_ignore_ascii_case(keyword);
        if is("pragma") {
            let name = words.next().unwrap_or("");
            if !DATABASE_PRAGMAS
                .iter()
                .any(|p| p.eq_ignore_ascii_case(name))
            {
                return true;
            }
        } else if is("attach") || is("detach") || is("temp") || is("temporary") {
            return true;
        }
    }
    false
}

/// Whether the first word of `statement` is `keyword` (ASCII, any case). A statement
/// that starts with `SELECT` only reads (a write would start with `INSERT`, `WITH`…).
fn starts_with_keyword(statement: &str, keyword: &str) -> bool {
    let s = statement.trim_start().as_bytes();
    s.len() >= keyword.len()
        && s[..keyword.len()].eq_ignore_ascii_case(keyword.as_bytes())
        && s.get(keyword.len())
            .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
}

/// Back into the idle list, unless the pool is closed or already holds as many idle
/// connections as it has slots (a lease that kept a writer gave one back early).
fn push_idle(pool: &PoolInner, conn: Connection) {
    if pool.closed.load(Ordering::Acquire) {
        return;
    }
    if let Ok(mut idle) = pool.idle.lock() {
        if idle.len() < pool.options.size {
            idle.push(conn);
        }
    }
}

/// End a lease: roll back what it left open (on the writer and on its own connection),
/// put the writer back in its slot, the connection in the idle list, then free the slot.
fn release(lease: Lease) {
    let Lease {
        conn,
        writer,
        pool,
        permit,
        gate,
        writer_changed,
    } = lease;
    if let Some(writer) = writer {
        // Only the gate holder has a writer; the slot is filled before the gate goes.
        let clean = end_transaction(&writer, &pool);
        if clean && !writer_changed && !pool.closed.load(Ordering::Acquire) {
            if let Ok(mut slot) = pool.writer.lock() {
                *slot = Some(writer);
            }
        }
    }
    // A guest that trapped, timed out or simply forgot to COMMIT must not leave its
    // transaction (and its write lock) to the next user of this connection.
    if !end_transaction(&conn, &pool) {
        drop(conn);
        drop(gate);
        drop(permit);
        return;
    }
    // The write lock is gone with the transaction: the next writer may go.
    drop(gate);
    push_idle(&pool, conn);
    // The permit goes last, so whoever it wakes finds the connection idle.
    drop(permit);
}

/// What [`release`] needs of a lease, taken out of it in `drop`.
struct Lease {
    conn: Connection,
    writer: Option<Connection>,
    pool: Arc<PoolInner>,
    permit: Option<OwnedSemaphorePermit>,
    gate: Option<OwnedSemaphorePermit>,
    writer_changed: bool,
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let lease = Lease {
            conn,
            writer: self.writer.take(),
            pool: self.pool.clone(),
            permit: self.permit.take(),
            gate: self.gate.take(),
            writer_changed: self.writer_changed,
        };
        // Nothing to roll back and the pool stays open: putting the connections back is
        // a push under a mutex, no SQLite work. Otherwise (ROLLBACK, or closing the
        // connection) it is blocking work: do it here only where that is allowed.
        let no_sqlite_work = lease.conn.is_autocommit()
            && lease.writer.as_ref().is_none_or(Connection::is_autocommit)
            && !lease.pool.closed.load(Ordering::Acquire);
        if no_sqlite_work || may_block() {
            return release(lease);
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                // ROLLBACK is blocking SQLite work; keep it off the async workers.
                drop(handle.spawn_blocking(move || release(lease)));
            }
            Err(_) => release(lease),
        }
    }
}

#[cfg(test)]
mod writer_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn options(size: usize, wait_ms: u64) -> PoolOptions {
        PoolOptions {
            size,
            wait: Duration::from_millis(wait_ms),
            busy_timeout: Duration::from_millis(500),
            synchronous: Synchronous::Normal,
        }
    }

    async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        tokio::task::spawn_blocking(f).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pragmas_are_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/db.sqlite");
        let mut opts = options(2, 100);
        opts.synchronous = Synchronous::Full;
        let pool = Pool::open("default", &path, opts).await.unwrap();
        assert!(path.exists(), "folder and file are created");
        let c = pool.acquire().await.unwrap();
        let (mode, fk, sync, busy) = blocking(move || {
            let conn = c.conn();
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            let fk: i64 = conn
                .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
                .unwrap();
            let sync: i64 = conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap();
            let busy: i64 = conn
                .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
                .unwrap();
            (mode, fk, sync, busy)
        })
        .await;
        assert_eq!(mode, "wal");
        assert_eq!(fk, 1);
        assert_eq!(sync, 2, "FULL");
        assert_eq!(busy, 500);

        let pool = Pool::open("n", &dir.path().join("n.db"), options(1, 100))
            .await
            .unwrap();
        let c = pool.acquire().await.unwrap();
        let sync: i64 = blocking(move || {
            c.conn()
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap()
        })
        .await;
        assert_eq!(sync, 1, "NORMAL");
    }

    #[test]
    fn a_cached_statement_with_a_bound_limit_is_not_re_prepared() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_connection(&dir.path().join("db"), &options(1, 100)).unwrap();
        conn.execute_batch("CREATE TABLE t(x INTEGER PRIMARY KEY, y); CREATE INDEX i ON t(y);")
            .unwrap();
        let sql = "SELECT x FROM t ORDER BY y LIMIT ?1 OFFSET ?2";
        for _ in 0..3 {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            stmt.query([100, 0]).unwrap().next().unwrap();
        }
        let stmt = conn.prepare_cached(sql).unwrap();
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exhaustion_waits_a_bounded_time_then_fails() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open("default", &dir.path().join("db"), options(2, 200))
            .await
            .unwrap();
        let a = pool.acquire().await.unwrap();
        let _b = pool.acquire().await.unwrap();
        assert_eq!(pool.in_use(), 2);
        let started = std::time::Instant::now();
        let err = pool.acquire().await.err().expect("pool is exhausted");
        let waited = started.elapsed();
        assert!(matches!(err, PoolError::Exhausted { .. }), "{err}");
        assert!(err.to_string().contains("pool exhausted"), "{err}");
        assert!(waited >= Duration::from_millis(190), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");

        // A release during the wait hands the connection over.
        let pool2 = pool.clone();
        let waiter = tokio::spawn(async move { pool2.acquire().await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(a);
        waiter.await.unwrap().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_transaction_is_rolled_back_on_release() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open("default", &dir.path().join("db"), options(1, 2000))
            .await
            .unwrap();
        let c = pool.acquire().await.unwrap();
        let c = blocking(move || {
            c.conn()
                .execute_batch("CREATE TABLE t(x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
                .unwrap();
            assert!(!c.conn().is_autocommit());
            c
        })
        .await;
        drop(c);
        // Size 1: this is the same connection, handed back after the rollback.
        let c = pool.acquire().await.unwrap();
        let (autocommit, n) = blocking(move || {
            let n: i64 = c
                .conn()
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap();
            (c.conn().is_autocommit(), n)
        })
        .await;
        assert!(autocommit);
        assert_eq!(n, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_writing_statements_need_the_write_gate() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open("default", &dir.path().join("db"), options(1, 100))
            .await
            .unwrap();
        let c = pool.acquire().await.unwrap();
        let gated = blocking(move || {
            c.conn().execute_batch("CREATE TABLE t(x)").unwrap();
            let statements = [
                "SELECT x FROM t",
                "  select\n x FROM t",
                "PRAGMA foreign_keys = ON",
                "PRAGMA busy_timeout = 5000",
                "PRAGMA user_version",
                "BEGIN",
                "COMMIT",
                "BEGIN IMMEDIATE",
                "BEGIN EXCLUSIVE",
                "INSERT INTO t VALUES (1)",
                "UPDATE t SET x = 2",
                "PRAGMA user_version = 3",
                "CREATE TABLE u(y); INSERT INTO u VALUES (1)",
                "SELECT 1; DELETE FROM t",
            ];
            statements
                .iter()
                .map(|s| (*s, c.needs_write_gate(s)))
                .collect::<Vec<_>>()
        })
        .await;
        for (statement, needs) in gated {
            let writes = statement.starts_with("BEGIN ")
                || statement.starts_with("INSERT")
                || statement.starts_with("UPDATE")
                || statement.starts_with("CREATE")
                || statement.contains("DELETE")
                || statement.ends_with("= 3");
            assert_eq!(needs, writes, "{statement}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_take_turns_at_the_write_gate() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open("default", &dir.path().join("db"), options(2, 2000))
            .await
            .unwrap();
        let mut a = pool.acquire().await.unwrap();
        let mut b = pool.acquire().await.unwrap();
        a.enter_write().await;
        let mut a = blocking(move || {
            a.conn().execute_batch("BEGIN IMMEDIATE").unwrap();
            a
        })
        .await;
        a.leave_write_if_done();
        assert!(a.gate.is_some(), "held while the transaction is open");
        // b waits for the gate until a commits.
        let waiter = tokio::spawn(async move {
            b.enter_write().await;
            b
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        let mut a = blocking(move || {
            a.conn().execute_batch("COMMIT").unwrap();
            a
        })
        .await;
        a.leave_write_if_done();
        assert!(a.gate.is_none());
        let b = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("b gets the gate after the commit")
            .unwrap();
        assert!(b.gate.is_some());
        // A connection dropped mid-transaction gives the gate back with its rollback.
        let b = blocking(move || {
            b.conn().execute_batch("BEGIN IMMEDIATE").unwrap();
            b
        })
        .await;
        assert!(!b.conn().is_autocommit());
        drop(b);
        tokio::time::timeout(Duration::from_secs(1), a.enter_write())
            .await
            .expect("the gate came back with the rollback");
        assert!(a.gate.is_some());
        // And the rollback released SQLite's write lock too.
        blocking(move || a.conn().execute_batch("BEGIN IMMEDIATE; COMMIT").unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn not_a_database_fails_to_open_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.db");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let err = Pool::open("default", &path, options(1, 100))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("not a database"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_refuses_new_acquires() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open("default", &dir.path().join("db"), options(2, 100))
            .await
            .unwrap();
        let c = pool.acquire().await.unwrap();
        drop(c);
        pool.close(Duration::from_secs(1)).await;
        assert!(matches!(pool.acquire().await, Err(PoolError::Closed(_))));
        assert_eq!(pool.idle(), 0);
    }
}
