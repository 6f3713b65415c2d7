//! Where the CLI's native commands (`migrate`, `prune`, and `up` before it serves) find
//! the database: a local file (`DATABASE_PATH`) or a libSQL server (`DATABASE_URL`,
//! `DATABASE_TOKEN`), and the core's [`Database`] over either.
//!
//! The libSQL side is the client the host serves the components' statements with (the
//! `libsql-client` crate), so a statement means the same natively and in a guest; its
//! errors are classified from their text exactly as the Spin adapter classifies a
//! guest's `io(message)`.

use std::cell::RefCell;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use libsql_client::{PoolOptions, RemoteConnection, RemotePool};
use orchestrator_core::db::native::NativeDatabase;
use orchestrator_core::db::{Database, DbError, DbErrorKind, Rows, Value};
use spin_host::runtime_config::LibsqlConfig;

/// The database a native command works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    File(PathBuf),
    Libsql(LibsqlConfig),
}

impl Target {
    /// From the flags: a URL (with its token) wins over the default path, and both a
    /// URL and an explicit path is an error (which one was meant?).
    pub fn from_args(
        path: Option<PathBuf>,
        url: Option<String>,
        token: Option<String>,
        default_path: &str,
    ) -> Result<Target> {
        let url = url.filter(|u| !u.trim().is_empty());
        match (path, url) {
            (Some(path), Some(_)) => bail!(
                "both DATABASE_PATH ({}) and DATABASE_URL are set; set one",
                path.display()
            ),
            (_, Some(url)) => Ok(Target::Libsql(
                LibsqlConfig::new(url, token.unwrap_or_default())
                    .map_err(|e| anyhow!("DATABASE_URL: {e}"))?,
            )),
            (Some(path), None) => Ok(Target::File(path)),
            (None, None) => Ok(Target::File(PathBuf::from(default_path))),
        }
    }

    /// How messages name it: the path, or the URL (never the token).
    pub fn describe(&self) -> String {
        match self {
            Target::File(path) => path.display().to_string(),
            Target::Libsql(server) => format!("libSQL at {}", server.url),
        }
    }

    /// Open a connection (for a file: create it with its folder, WAL mode). Blocking:
    /// call it from a thread that may block (not an async worker).
    pub fn open(&self) -> Result<AnyDatabase> {
        match self {
            Target::File(path) => Ok(AnyDatabase::File(
                NativeDatabase::open(path).map_err(|e| anyhow!("{}", e.message))?,
            )),
            Target::Libsql(server) => {
                let db = RemoteDatabase::open(server)?;
                // A fresh stream is a fresh server-side connection: the core's connection
                // pragmas (foreign keys mandatory, busy_timeout best-effort), as a
                // component's `db::open` applies them.
                orchestrator_core::db::pragmas::apply_connection_pragmas(&db)
                    .map_err(|e| anyhow!("database libSQL at {}: {}", server.url, e.message))?;
                Ok(AnyDatabase::Libsql(db))
            }
        }
    }
}

/// Either backend, as one [`Database`] (the core's functions are generic over it).
pub enum AnyDatabase {
    File(NativeDatabase),
    Libsql(RemoteDatabase),
}

impl Database for AnyDatabase {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        match self {
            AnyDatabase::File(db) => db.execute(sql, params),
            AnyDatabase::Libsql(db) => db.execute(sql, params),
        }
    }
}

/// One libSQL stream, driven synchronously.
pub struct RemoteDatabase {
    /// Set when the caller had no tokio runtime (the `migrate` and `prune` commands).
    _runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    conn: RefCell<Option<RemoteConnection>>,
}

impl RemoteDatabase {
    fn open(server: &LibsqlConfig) -> Result<RemoteDatabase> {
        let (runtime, handle) = match tokio::runtime::Handle::try_current() {
            Ok(handle) => (None, handle),
            Err(_) => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let handle = runtime.handle().clone();
                (Some(runtime), handle)
            }
        };
        // One stream at a time; the default waits bound every exchange.
        let options = PoolOptions {
            size: 1,
            ..PoolOptions::default()
        };
        let conn = handle.block_on(async {
            let pool = RemotePool::open("default", &server.url, &server.token, &options).await?;
            pool.acquire().await
        })?;
        Ok(RemoteDatabase {
            _runtime: runtime,
            handle,
            conn: RefCell::new(Some(conn)),
        })
    }
}

impl Database for RemoteDatabase {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let params: Vec<libsql_client::Value> = params.iter().map(to_libsql).collect();
        let mut conn = self.conn.borrow_mut();
        let conn = conn
            .as_mut()
            .ok_or_else(|| DbError::new(DbErrorKind::Unavailable, "connection closed"))?;
        match self.handle.block_on(conn.execute(sql, &params)) {
            Ok(r) => Ok(Rows {
                columns: r.columns,
                rows: r
                    .rows
                    .into_iter()
                    .map(|row| row.into_iter().map(from_libsql).collect())
                    .collect(),
            }),
            // What a guest sees as `database-full` rather than `io(message)`.
            Err(full @ libsql_client::Error::DatabaseFull) => {
                Err(DbError::new(DbErrorKind::Other, format!("{full:?}")))
            }
            Err(e) => Err(DbError::from_sqlite_message(e.to_string())),
        }
    }
}

fn to_libsql(v: &Value) -> libsql_client::Value {
    match v {
        Value::Null => libsql_client::Value::Null,
        Value::Integer(i) => libsql_client::Value::Integer(*i),
        Value::Real(f) => libsql_client::Value::Real(*f),
        Value::Text(s) => libsql_client::Value::Text(s.clone()),
        Value::Blob(b) => libsql_client::Value::Blob(b.clone()),
    }
}

fn from_libsql(v: libsql_client::Value) -> Value {
    match v {
        libsql_client::Value::Null => Value::Null,
        libsql_client::Value::Integer(i) => Value::Integer(i),
        libsql_client::Value::Real(f) => Value::Real(f),
        libsql_client::Value::Text(s) => Value::Text(s),
        libsql_client::Value::Blob(b) => Value::Blob(b),
    }
}

impl Drop for RemoteDatabase {
    fn drop(&mut self) {
        // Close the stream (rolling back anything left open) before the runtime goes.
        if let Some(conn) = self.conn.get_mut().take() {
            self.handle.block_on(conn.close());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_from_flags() {
        let default = "data/orchestrator.db";
        assert_eq!(
            Target::from_args(None, None, None, default).unwrap(),
            Target::File(PathBuf::from(default))
        );
        assert_eq!(
            Target::from_args(Some("x.db".into()), Some(" ".into()), None, default).unwrap(),
            Target::File(PathBuf::from("x.db")),
            "an empty DATABASE_URL is unset"
        );
        let remote = Target::from_args(
            None,
            Some("http://127.0.0.1:8080".into()),
            Some("tok".into()),
            default,
        )
        .unwrap();
        assert_eq!(
            remote,
            Target::Libsql(LibsqlConfig::new("http://127.0.0.1:8080", "tok").unwrap())
        );
        assert_eq!(remote.describe(), "libSQL at http://127.0.0.1:8080");
        let both = Target::from_args(Some("x.db".into()), Some("http://h".into()), None, default)
            .unwrap_err()
            .to_string();
        assert!(both.contains("set one"), "{both}");
        let bad = Target::from_args(None, Some("nope".into()), None, default)
            .unwrap_err()
            .to_string();
        assert!(bad.starts_with("DATABASE_URL:"), "{bad}");
    }
}
