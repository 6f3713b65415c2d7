//! One pinned Hrana stream ([`RemoteConnection`]): statements one at a time, busy
//! answers retried when that is safe, and the stream closed (rolled back first) when
//! the connection goes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;

use crate::pool::RemoteInner;
use crate::protocol::{self, HranaError, StmtResult, StreamRequest, StreamResponse, StreamResult};
use crate::transport::Endpoint;
use crate::{Error, QueryResult, Value};

/// The first pause before a statement the server answered busy is sent again; each
/// further pause doubles, up to [`BUSY_BACKOFF_MAX`].
const BUSY_BACKOFF_FIRST: Duration = Duration::from_millis(1);
const BUSY_BACKOFF_MAX: Duration = Duration::from_millis(50);

/// The server-side state of one connection's stream.
#[derive(Debug)]
pub(crate) struct StreamState {
    /// The stream's current baton; `None` before the first statement.
    baton: Option<String>,
    /// Where the server asked this stream's requests to go, if elsewhere.
    base: Option<Endpoint>,
    /// Whether the stream is outside a transaction (as the server last reported).
    autocommit: bool,
    /// The stream was lost inside a transaction (an exchange failed): its statements
    /// must not go on in a fresh stream, outside the transaction they belong to.
    lost: bool,
}

impl Default for StreamState {
    fn default() -> Self {
        StreamState {
            baton: None,
            base: None,
            autocommit: true,
            lost: false,
        }
    }
}

/// One connection: a pinned Hrana stream.
pub struct RemoteConnection {
    pool: Arc<RemoteInner>,
    /// Locked for each exchange, so statements go out one at a time and the cleanup at
    /// drop waits for the one in flight.
    stream: Arc<tokio::sync::Mutex<StreamState>>,
    permit: Option<OwnedSemaphorePermit>,
    last_insert_rowid: i64,
    changes: u64,
}

impl RemoteConnection {
    pub(crate) fn new(
        pool: Arc<RemoteInner>,
        state: StreamState,
        permit: OwnedSemaphorePermit,
    ) -> RemoteConnection {
        RemoteConnection {
            pool,
            stream: Arc::new(tokio::sync::Mutex::new(state)),
            permit: Some(permit),
            last_insert_rowid: 0,
            changes: 0,
        }
    }

    /// Run one statement on this connection's stream.
    pub async fn execute(
        &mut self,
        statement: &str,
        params: &[Value],
    ) -> Result<QueryResult, Error> {
        if refused_by_libsql_clients(statement) {
            return Err(Error::Unsupported);
        }
        let pool = self.pool.clone();
        let stream = self.stream.clone();
        let sql = statement.to_string();
        let args: Vec<protocol::Value> = params.iter().map(Into::into).collect();
        // On a task of its own: if the caller is ended mid-statement, the exchange still
        // completes and records the stream's new baton, which the cleanup at drop needs
        // to roll the transaction back.
        let exchange = tokio::spawn(async move {
            let mut state = stream.lock_owned().await;
            if state.lost {
                return Err(
                    pool.error("the connection was lost inside a transaction; open a new one")
                );
            }
            let started = Instant::now();
            let mut backoff = BUSY_BACKOFF_FIRST;
            loop {
                let autocommit_before = state.autocommit;
                match execute_once(&pool, &mut state, &sql, args.clone()).await? {
                    Ok(result) => return Ok(result),
                    Err(error)
                        if is_busy(&error)
                            && retry_when_busy(autocommit_before, state.autocommit)
                            && started.elapsed() + backoff <= pool.busy_timeout =>
                    {
                        // The stream lock stays held: the connection's statements
                        // still go out one at a time, and a drop's cleanup waits.
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(BUSY_BACKOFF_MAX);
                    }
                    Err(error) => return Err(Error::from_statement(error)),
                }
            }
        });
        let result = exchange
            .await
            .map_err(|e| self.pool.error(format!("statement task failed: {e}")))??;
        self.changes = result.affected_row_count;
        if let Some(rowid) = result.last_insert_rowid.as_deref() {
            if let Ok(rowid) = rowid.parse() {
                self.last_insert_rowid = rowid;
            }
        }
        let columns = result
            .cols
            .into_iter()
            .map(|c| c.name.unwrap_or_default())
            .collect();
        let rows = result
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(Value::try_from).collect())
            .collect::<Result<_, _>>()?;
        Ok(QueryResult { columns, rows })
    }

    /// The rowid of the last insert on this connection (as the server reported it).
    pub fn last_insert_rowid(&self) -> i64 {
        self.last_insert_rowid
    }

    /// Rows changed by the last statement.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Whether the server reported the stream outside a transaction after the last
    /// statement.
    pub async fn is_autocommit(&self) -> bool {
        self.stream.lock().await.autocommit
    }

    /// End the stream now (rolling back an open transaction) and wait for it.
    pub async fn close(mut self) {
        let cleanup = self.cleanup();
        cleanup.await;
    }

    fn cleanup(&mut self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let pool = self.pool.clone();
        let stream = self.stream.clone();
        let permit = self.permit.take();
        async move {
            let mut state = stream.lock().await;
            if let Some(baton) = state.baton.take() {
                let mut requests = Vec::new();
                if !state.autocommit {
                    requests.push(StreamRequest::Execute {
                        stmt: protocol::Stmt {
                            sql: "ROLLBACK",
                            args: Vec::new(),
                            want_rows: false,
                        },
                    });
                }
                requests.push(StreamRequest::Close);
                if let Err(e) = pool
                    .pipeline(state.base.as_ref(), Some(&baton), requests)
                    .await
                {
                    // The server expires an abandoned stream (and its transaction).
                    tracing::warn!(database = %pool.label, error = %e, "closing a libSQL stream failed");
                }
            }
            // The slot frees only once the server-side stream is gone.
            drop(permit);
        }
    }
}

impl Drop for RemoteConnection {
    fn drop(&mut self) {
        if self.permit.is_none() {
            return; // closed already
        }
        let cleanup = self.cleanup();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn(cleanup)),
            // No runtime to talk to the server: it expires the stream by itself.
            Err(_) => tracing::warn!(database = %self.pool.label, "libSQL stream left to expire"),
        }
    }
}

/// Send one statement on the stream `state` (with a `get_autocommit` after it) and
/// record what the server answered about the stream. The outer error is the
/// exchange's (the statement's fate is unknown); the inner one the statement's.
async fn execute_once(
    pool: &RemoteInner,
    state: &mut StreamState,
    sql: &str,
    args: Vec<protocol::Value>,
) -> Result<Result<StmtResult, HranaError>, Error> {
    let requests = vec![
        StreamRequest::Execute {
            stmt: protocol::Stmt {
                sql,
                args,
                want_rows: true,
            },
        },
        StreamRequest::GetAutocommit,
    ];
    let answer = pool
        .pipeline(state.base.as_ref(), state.baton.as_deref(), requests)
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(message) => {
            // The stream's fate is unknown: never reuse its baton.
            state.baton = None;
            state.lost = !state.autocommit;
            return Err(pool.error(message));
        }
    };
    state.baton = answer.baton;
    if let Some(base) = answer.base_url.as_deref() {
        state.base = Some(Endpoint::parse(base).map_err(|e| pool.error(e))?);
    }
    let mut results = answer.results.into_iter();
    let executed = results.next();
    match results.next() {
        Some(StreamResult::Ok {
            response: StreamResponse::GetAutocommit { is_autocommit },
        }) => state.autocommit = is_autocommit,
        // Cannot tell: assume a transaction may be open, so drop rolls back.
        _ => state.autocommit = false,
    }
    if state.baton.is_none() && !state.autocommit {
        state.lost = true;
    }
    match executed {
        Some(StreamResult::Ok {
            response: StreamResponse::Execute { result },
        }) => Ok(Ok(result)),
        Some(StreamResult::Error { error }) => Ok(Err(error)),
        other => Err(pool.error(format!("unexpected answer {other:?}"))),
    }
}

/// Whether the server refused a statement because another connection holds the lock
/// it needs. sqld reports SQLite's primary code (`SQLITE_BUSY`, also for the extended
/// `SQLITE_BUSY_SNAPSHOT` it answers when a replica's snapshot went stale, and
/// `SQLITE_LOCKED`) with the message "SQLite error: database is locked"; the message
/// is checked too, for servers that send another code or none.
fn is_busy(e: &HranaError) -> bool {
    let code = e.code.as_deref().unwrap_or_default();
    code.starts_with("SQLITE_BUSY")
        || code.starts_with("SQLITE_LOCKED")
        || e.message.contains("database is locked")
        || e.message.contains("database table is locked")
}

/// Whether a statement the server answered busy may simply be sent again, on the same
/// stream: only when the stream was outside a transaction before it and still is
/// after it, as the server reported.
///
/// * Outside a transaction (autocommit) a busy statement did not apply: SQLite rolls
///   back the statement's implicit transaction, so sending it again runs it once.
/// * A `BEGIN` / `BEGIN IMMEDIATE` is sent outside a transaction too, and a busy one
///   opened nothing: retrying it is how a writer waits for the lock.
/// * Never inside an open transaction (any statement after its `BEGIN`, `COMMIT`
///   included): what a busy statement there did to the transaction differs by
///   statement and by server (SQLite may have rolled the whole transaction back, and
///   then a resent statement would run on its own, with the transaction's earlier
///   statements lost), so the error goes back to the caller, which retries the whole
///   transaction if it wants to.
fn retry_when_busy(autocommit_before: bool, autocommit_after: bool) -> bool {
    autocommit_before && autocommit_after
}

/// Whether libSQL's client refuses `statement` before sending it (see the crate doc).
fn refused_by_libsql_clients(statement: &str) -> bool {
    let words: Vec<String> = statement
        .trim()
        .trim_end_matches(';')
        .split(|c: char| c.is_ascii_whitespace() || c == '=' || c == '(')
        .filter(|w| !w.is_empty())
        .take(2)
        .map(str::to_ascii_lowercase)
        .collect();
    let has_value = statement.contains('=') || statement.contains('(');
    matches!(words.as_slice(), [p, name] if p == "pragma"
        && has_value
        && matches!(name.as_str(), "busy_timeout" | "journal_mode" | "main.journal_mode"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_counts_as_busy_and_when_it_is_retried() {
        let e = |message: &str, code: Option<&str>| HranaError {
            message: message.into(),
            code: code.map(Into::into),
        };
        // What sqld sends (its `sqlite_error_code` maps the primary code).
        assert!(is_busy(&e(
            "SQLite error: database is locked",
            Some("SQLITE_BUSY")
        )));
        assert!(is_busy(&e("database is locked", None)));
        assert!(is_busy(&e(
            "database table is locked",
            Some("SQLITE_LOCKED")
        )));
        assert!(is_busy(&e("busy", Some("SQLITE_BUSY_SNAPSHOT"))));
        assert!(!is_busy(&e(
            "SQLite error: UNIQUE constraint failed: t.x",
            Some("SQLITE_CONSTRAINT")
        )));
        assert!(!is_busy(&e(
            "Transaction timed out",
            Some("TRANSACTION_TIMEOUT")
        )));
        // Outside a transaction before and after (an autocommit statement, a BEGIN
        // that opened nothing): retried. Inside one: never.
        assert!(retry_when_busy(true, true));
        assert!(!retry_when_busy(false, false));
        assert!(
            !retry_when_busy(false, true),
            "a transaction the busy rolled back"
        );
        assert!(!retry_when_busy(true, false));
    }

    #[test]
    fn the_pragmas_libsql_clients_refuse() {
        for refused in [
            "PRAGMA busy_timeout = 5000",
            "pragma BUSY_TIMEOUT=0;",
            "PRAGMA journal_mode = WAL",
            "PRAGMA journal_mode=wal",
        ] {
            assert!(refused_by_libsql_clients(refused), "{refused}");
        }
        for sent in [
            "PRAGMA foreign_keys = ON",
            "PRAGMA user_version",
            "PRAGMA user_version = 3",
            "PRAGMA busy_timeout",
            "SELECT 'PRAGMA busy_timeout = 1'",
            "BEGIN IMMEDIATE",
        ] {
            assert!(!refused_by_libsql_clients(sent), "{sent}");
        }
    }
}
