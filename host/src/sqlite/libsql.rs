//! The libSQL backend: a `type = "libsql"` database is served by the
//! [`libsql_client`] crate (Hrana over HTTP to `sqld` or Turso), with the same semantics
//! as a local file — a guest connection pins one server-side stream from `open` to drop,
//! transactions span calls, the end of the instance rolls back, every wait is bounded
//! (see the crate's documentation). This module only maps the crate's values and
//! errors to the binding's.
//!
//! No stop check to install: a libSQL statement is an async exchange, which the end of
//! the run cancels like any other wait.

use std::time::Duration;

use futures::future::BoxFuture;
use libsql_client::{Error, QueryResult, RemoteConnection, Value};

use super::config::LibsqlConfig;
use super::{Backend, Connection, DbError, DbQueryResult, DbValue, PoolOptions};

/// A bounded set of streams to one libSQL database. Cloning shares it.
#[derive(Debug, Clone)]
pub struct RemotePool(libsql_client::RemotePool);

impl RemotePool {
    /// Set up database `label` on the server `config` names, with the pool's size and
    /// waits, and check that the server answers and accepts the token, so that a wrong
    /// URL or token fails here, at start-up, with an error naming the URL.
    pub async fn open(
        label: &str,
        config: &LibsqlConfig,
        options: &PoolOptions,
    ) -> anyhow::Result<RemotePool> {
        let options = libsql_client::PoolOptions {
            size: options.size,
            wait: options.wait,
            busy_timeout: options.busy_timeout,
        };
        let pool =
            libsql_client::RemotePool::open(label, &config.url, &config.token, &options).await?;
        Ok(RemotePool(pool))
    }

    /// The database label.
    pub fn label(&self) -> &str {
        self.0.label()
    }

    /// The server's URL, as configured.
    pub fn url(&self) -> &str {
        self.0.url()
    }

    /// Streams currently checked out.
    pub fn in_use(&self) -> usize {
        self.0.in_use()
    }

    /// Refuse new connections, then wait up to `wait` for checked-out ones to close
    /// their streams.
    pub async fn close(&self, wait: Duration) {
        self.0.close(wait).await
    }

    /// Check out a connection for a guest.
    pub(super) async fn open_connection(&self) -> Result<Connection, DbError> {
        let conn = self.0.acquire().await?;
        Ok(Connection::new(conn))
    }
}

impl Backend for RemoteConnection {
    fn execute(
        &mut self,
        statement: String,
        params: Vec<DbValue>,
    ) -> BoxFuture<'_, wasmtime::Result<Result<DbQueryResult, DbError>>> {
        Box::pin(async move {
            let params: Vec<Value> = params.into_iter().map(Into::into).collect();
            let result = RemoteConnection::execute(self, &statement, &params).await;
            Ok(result.map(Into::into).map_err(Into::into))
        })
    }

    fn last_insert_rowid(&self) -> i64 {
        RemoteConnection::last_insert_rowid(self)
    }

    fn changes(&self) -> u64 {
        RemoteConnection::changes(self)
    }
}

/// SQLite's message (or the client's, for a server that could not be reached) reaches
/// the guest as `io(message)`, where the core classifies it; a full database is
/// `database-full`, as for a local file.
impl From<Error> for DbError {
    fn from(e: Error) -> DbError {
        match e {
            Error::DatabaseFull => DbError::DatabaseFull,
            other => DbError::Io(other.to_string()),
        }
    }
}

impl From<DbValue> for Value {
    fn from(v: DbValue) -> Value {
        match v {
            DbValue::Null => Value::Null,
            DbValue::Integer(i) => Value::Integer(i),
            DbValue::Real(f) => Value::Real(f),
            DbValue::Text(s) => Value::Text(s),
            DbValue::Blob(b) => Value::Blob(b),
        }
    }
}

impl From<Value> for DbValue {
    fn from(v: Value) -> DbValue {
        match v {
            Value::Null => DbValue::Null,
            Value::Integer(i) => DbValue::Integer(i),
            Value::Real(f) => DbValue::Real(f),
            Value::Text(s) => DbValue::Text(s),
            Value::Blob(b) => DbValue::Blob(b),
        }
    }
}

impl From<QueryResult> for DbQueryResult {
    fn from(r: QueryResult) -> DbQueryResult {
        DbQueryResult {
            columns: r.columns,
            rows: r
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(Into::into).collect())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libsql_client::fake_server::{FakeLibsql, SQLD_REFUSES};

    #[test]
    fn client_errors_reach_the_guest_as_io_or_database_full() {
        assert_eq!(DbError::from(Error::DatabaseFull), DbError::DatabaseFull);
        assert_eq!(
            DbError::from(Error::Unsupported),
            DbError::Io("unsupported statement".into())
        );
        assert_eq!(
            DbError::from(Error::Statement(
                "SQLite error: UNIQUE constraint failed".into()
            )),
            DbError::Io("SQLite error: UNIQUE constraint failed".into())
        );
    }

    /// The binding's view of a libSQL connection: values both ways, counters, errors.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_guest_connection_on_the_fake_server() {
        let server = FakeLibsql::start(SQLD_REFUSES, Some("s3cret")).await;
        let config = LibsqlConfig::new(server.url(), server.token()).unwrap();
        let options = PoolOptions {
            size: 2,
            wait: Duration::from_millis(1000),
            busy_timeout: Duration::from_millis(500),
            ..PoolOptions::default()
        };
        let pool = RemotePool::open("default", &config, &options)
            .await
            .unwrap();
        let mut conn = pool.open_connection().await.unwrap();
        let backend = conn.backend_mut();
        backend
            .execute(
                "CREATE TABLE v(id INTEGER PRIMARY KEY, x UNIQUE)".into(),
                vec![],
            )
            .await
            .unwrap()
            .unwrap();
        let row = vec![DbValue::Blob(vec![0, 255])];
        backend
            .execute("INSERT INTO v(x) VALUES (?)".into(), row.clone())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((backend.last_insert_rowid(), backend.changes()), (1, 1));
        let r = backend
            .execute("SELECT x FROM v".into(), vec![])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.rows, vec![row.clone()]);
        let e = backend
            .execute("INSERT INTO v(x) VALUES (?)".into(), row)
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(&e, DbError::Io(m) if m.contains("UNIQUE constraint failed: v.x")),
            "{e:?}"
        );
        let e = backend
            .execute("PRAGMA busy_timeout = 5000".into(), vec![])
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e, DbError::Io("unsupported statement".into()));
    }
}
