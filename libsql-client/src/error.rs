//! Why a pool or a connection failed. The Display text is what a guest (or the CLI)
//! classifies by, so the words are kept stable.

use std::time::Duration;

use crate::protocol::HranaError;

/// Everything [`RemotePool`](crate::RemotePool) and
/// [`RemoteConnection`](crate::RemoteConnection) can fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The server ran the statement and refused it: SQLite's message as the server sent
    /// it (the core classifies constraint failures, busy and interrupts by it).
    #[error("{0}")]
    Statement(String),
    /// The database is full (`SQLITE_FULL`).
    #[error("database or disk is full")]
    DatabaseFull,
    /// Refused before sending, as libSQL's own client refuses it.
    #[error("unsupported statement")]
    Unsupported,
    /// The server could not be reached, did not answer in time, answered something
    /// this client cannot read, or the stream was lost. The message names the database
    /// and its URL (never the token).
    #[error("{0}")]
    Server(String),
    /// The pool could not be set up: a bad URL, or a server that did not answer the
    /// first statement.
    #[error("{0}")]
    Open(String),
    /// Every stream stayed checked out for the whole wait.
    #[error(
        "database `{label}`: connection pool exhausted ({size} connections busy for {wait:?})"
    )]
    Exhausted {
        /// Database label.
        label: String,
        /// Pool size.
        size: usize,
        /// How long `acquire` waited.
        wait: Duration,
    },
    /// The pool was closed.
    #[error("database `{0}` is closed")]
    Closed(String),
}

impl Error {
    /// The error for a statement the server refused. SQLite's message stays as it is;
    /// a full database is [`Error::DatabaseFull`], as for a local file.
    pub(crate) fn from_statement(e: HranaError) -> Error {
        match e.code.as_deref() {
            Some(code) if code.starts_with("SQLITE_FULL") => Error::DatabaseFull,
            _ => Error::Statement(e.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_sqlites_message_and_spot_a_full_database() {
        let e = |message: &str, code: Option<&str>| {
            Error::from_statement(HranaError {
                message: message.into(),
                code: code.map(Into::into),
            })
        };
        assert_eq!(
            e(
                "SQLite error: UNIQUE constraint failed: t.x",
                Some("SQLITE_CONSTRAINT_UNIQUE")
            ),
            Error::Statement("SQLite error: UNIQUE constraint failed: t.x".into())
        );
        assert_eq!(
            e("database or disk is full", Some("SQLITE_FULL")),
            Error::DatabaseFull
        );
    }
}
