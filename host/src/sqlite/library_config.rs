//! Process-wide SQLite settings, applied once before the first connection opens.
//!
//! **Statement journals in memory.** Inside a transaction, SQLite journals every page a
//! statement changes so that the statement alone can be undone (a multi-row INSERT whose
//! trigger or constraint fails half way). Past 64 KiB that journal spills into a temporary
//! file, one `pwrite` a page: a 200-row INSERT into a table with indexes and roll-up
//! triggers touches hundreds of pages, and a profile of a 512-span OTLP export had 9 % of
//! its CPU there. Such a journal lives only as long as its statement and is sized by the
//! pages that one statement changes, so holding up to [`STATEMENT_JOURNAL_SPILL`] of it in
//! memory is cheap; beyond that it spills as before.

use std::sync::Once;

/// Bytes of a statement journal kept in memory before it spills to a temporary file
/// (SQLite's default is 64 KiB).
pub const STATEMENT_JOURNAL_SPILL: i32 = 8 * 1024 * 1024;

static CONFIGURE: Once = Once::new();

/// Apply the settings, once. `sqlite3_config` only works before SQLite initialises; if
/// something in the process opened a connection first, the defaults stay (slower, not
/// wrong), and the log says so.
pub fn configure_once() {
    CONFIGURE.call_once(|| {
        // SAFETY: sqlite3_config is called with the argument type this option documents
        // (one int), before any connection of ours exists; it fails harmlessly with
        // SQLITE_MISUSE if SQLite is already initialised.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_STMTJRNL_SPILL,
                STATEMENT_JOURNAL_SPILL,
            )
        };
        if rc != rusqlite::ffi::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite was initialised before the host configured it; statement journals spill at 64 KiB"
            );
        }
    });
}
