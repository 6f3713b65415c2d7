//! WAL checkpoints in the background, off the writers' path.
//!
//! SQLite's default is to checkpoint inside the COMMIT that pushes the WAL past 1,000
//! pages: that writer copies the WAL back into the database and fsyncs both files while it
//! still holds the write lock, so every writer queued behind it waits too. Measured on the
//! ingest path, that inline checkpoint was half of a write transaction's cost. Here each
//! pool has one thread with its own connection that runs a `PASSIVE` checkpoint shortly
//! after writes: a passive checkpoint never takes the write lock and never waits for a
//! reader, so writers append to the WAL while it copies. The pool's connections keep a
//! much larger automatic threshold ([`super::open::SAFETY_FRAMES`]) only as a backstop,
//! should this thread fall behind.
//!
//! Durability is unchanged: a checkpoint only moves committed frames from the WAL into
//! the database file.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::open::{open_connection, PoolOptions};

/// How long the checkpointer lets writes gather before it checkpoints them: a page
/// rewritten by many transactions in this window is copied back once.
pub const COALESCE: Duration = Duration::from_millis(25);

#[derive(Default)]
struct Signal {
    /// Set by writers, cleared by the checkpointer when it starts a checkpoint.
    pending: AtomicBool,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    pending: bool,
    stop: bool,
}

/// The background checkpointer of one database file. Dropping it stops the thread (and
/// waits for a checkpoint in progress to end).
pub struct Checkpointer {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Open the checkpointer's own connection to `path` and start its thread.
    pub fn start(label: &str, path: &Path, options: &PoolOptions) -> anyhow::Result<Self> {
        let conn = open_connection(path, options)
            .map_err(|e| anyhow::anyhow!("database `{label}`: checkpoint connection: {e}"))?;
        let signal = Arc::new(Signal::default());
        let thread = std::thread::Builder::new()
            .name(format!("sqlite-ckpt-{label}"))
            .spawn({
                let signal = signal.clone();
                let label = label.to_owned();
                move || run(&conn, &signal, &label)
            })?;
        Ok(Checkpointer {
            signal,
            thread: Some(thread),
        })
    }

    /// A write transaction committed: checkpoint soon. Costs an atomic load while a
    /// checkpoint is already pending.
    pub fn wrote(&self) {
        if self.signal.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Ok(mut state) = self.signal.state.lock() {
            state.pending = true;
            self.signal.wake.notify_one();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Ok(mut state) = self.signal.state.lock() {
            state.stop = true;
            self.signal.wake.notify_one();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &rusqlite::Connection, signal: &Signal, label: &str) {
    loop {
        {
            let Ok(mut state) = signal.state.lock() else {
                return;
            };
            while !state.pending && !state.stop {
                state = match signal.wake.wait(state) {
                    Ok(state) => state,
                    Err(_) => return,
                };
            }
            if state.stop {
                return;
            }
            // Let more writes gather; a stop request ends the wait early.
            let (mut state, _) = match signal.wake.wait_timeout_while(state, COALESCE, |s| !s.stop)
            {
                Ok(woken) => woken,
                Err(_) => return,
            };
            if state.stop {
                return;
            }
            // Cleared before the checkpoint starts: a write committed while it runs
            // asks for the next one.
            state.pending = false;
            signal.pending.store(false, Ordering::Release);
        }
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        }) {
            Ok((log, copied)) => {
                tracing::trace!(database = %label, log, copied, "checkpoint")
            }
            Err(e) => tracing::debug!(database = %label, error = %e, "checkpoint failed"),
        }
    }
}
