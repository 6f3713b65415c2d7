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
//!
//! The pool itself is here; a checked-out connection (and the write gate and writer
//! connection it uses) is in [`lease`], the statement classification that decides when
//! it may borrow the writer in [`statements`].

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::Semaphore;

use super::checkpoint::Checkpointer;
pub use super::open::{open_connection, PoolOptions, Synchronous};

mod lease;
mod statements;

pub use lease::{PooledConnection, StopCheck};
pub use statements::changes_connection_state;

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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod writer_tests;
