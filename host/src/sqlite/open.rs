//! Opening one connection to a database file, configured as every pooled connection is
//! (WAL, `busy_timeout`, foreign keys, `synchronous`, a statement cache), and the
//! options that configure it. The pool ([`super::pool`]) and the background
//! checkpointer ([`super::checkpoint`]) both open their connections here.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// The pool connections' `wal_autocheckpoint`: a writer checkpoints inline only when the
/// WAL has grown this far (about 40 MiB of 4 KiB pages), i.e. when the background
/// checkpointer ([`super::checkpoint`]) cannot keep up.
pub const SAFETY_FRAMES: u32 = 10_000;

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
    conn.pragma_update(None, "wal_autocheckpoint", SAFETY_FRAMES)?;
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
