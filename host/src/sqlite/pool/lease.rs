//! One connection checked out of a [`Pool`](super::Pool) ([`PooledConnection`]): the
//! write gate it queues on, the pool's writer connection it borrows for a write, and
//! what happens when it goes back (rollback, settings reset, the slot freed last).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::OwnedSemaphorePermit;

use super::statements::{changes_connection_state, starts_with_keyword};
use super::{may_block, open_connection, PoolInner};

/// Whether the instance's run has to end (its deadline passed, the host is shutting
/// down, the client left). A statement runs inline on the guest's thread, where nothing
/// async can end it; SQLite calls this every few thousand VM steps (a progress handler,
/// see [`PooledConnection::set_stop_check`]) and interrupts the statement when it says so.
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
    pub(super) writer: Option<Connection>,
    permit: Option<OwnedSemaphorePermit>,
    /// The pool's write gate, while this connection writes.
    pub(super) gate: Option<OwnedSemaphorePermit>,
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
    pub(super) fn new(
        pool: Arc<PoolInner>,
        conn: Connection,
        permit: OwnedSemaphorePermit,
    ) -> Self {
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

    pub(super) fn own(&self) -> &Connection {
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
