//! The Spin SQLite host binding: `spin:sqlite/sqlite@3.0.0` and the older
//! `fermyon:spin/sqlite@2.0.0`, one implementation behind both, over two backends —
//! a local file ([`local`], on rusqlite through [`pool`]) and a libSQL server
//! ([`libsql`], through the `libsql-client` crate). The binding methods are written once
//! against [`Backend`]; only `open` knows which backend serves a label.
//!
//! Semantics, as in Spin:
//! * a component may open only the labels in its `sqlite_databases`; a label that is
//!   configured but not listed is `access-denied`, a label not configured at all is
//!   `no-such-database` (`default` is always configured);
//! * a `connection` resource pins one pooled connection (for libSQL, one server-side
//!   stream) from `open` until the guest drops it or the store ends (normally, trap or
//!   deadline); any transaction left open is then rolled back before the connection is
//!   reused (see [`pool`]);
//! * SQLite errors reach the guest as `io(<SQLite's message>)`, a full disk as
//!   `database-full`, an exhausted pool as `io("... pool exhausted ...")`;
//! * all SQLite work on a local file runs on tokio's blocking threads; every wait on a
//!   libSQL server is bounded.

pub(crate) mod capability;
mod checkpoint;
pub mod config;
mod library_config;
pub mod libsql;
mod local;
mod open;
pub mod pool;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use futures::future::BoxFuture;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

pub use libsql::RemotePool;
pub use local::execute_blocking;
pub use pool::{
    may_block, run_marked_blocking, Pool, PoolError, PoolOptions, PooledConnection, StopCheck,
    Synchronous,
};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spin-host:host/sqlite",
        imports: { default: async | trappable },
        with: {
            "spin:sqlite/sqlite.connection": super::Connection,
            "fermyon:spin/sqlite.connection": super::Connection,
        },
    });
}

use bindings::fermyon::spin::sqlite as v2;
use bindings::spin::sqlite::sqlite as v3;

/// The host side of a guest `connection` resource: the backend's pinned connection.
pub struct Connection {
    backend: Box<dyn Backend>,
}

impl Connection {
    fn new(backend: impl Backend + 'static) -> Connection {
        Connection {
            backend: Box::new(backend),
        }
    }

    fn backend_mut(&mut self) -> &mut dyn Backend {
        &mut *self.backend
    }
}

/// What the binding needs of a pinned connection, whichever backend serves it.
///
/// A trait object rather than an enum: each backend's way of running a statement (the
/// local file's hand-off to a blocking thread, which moves its pooled connection out
/// and back in through `&mut self`; libSQL's exchange on a task of its own) stays inside
/// its `execute`, and a third backend is one more impl. The boxed future costs one
/// allocation per statement, next to a statement's microseconds.
trait Backend: Send {
    /// Run one statement. The outer error ends the guest (a trap): the run had to stop
    /// while the statement ran.
    fn execute(
        &mut self,
        statement: String,
        params: Vec<DbValue>,
    ) -> BoxFuture<'_, wasmtime::Result<Result<DbQueryResult, DbError>>>;

    /// The rowid of the last insert on this connection.
    fn last_insert_rowid(&self) -> i64;

    /// Rows changed by the last statement.
    fn changes(&self) -> u64;
}

/// The databases of one host: the opened pools, and every label that counts as
/// configured. Shared by all instances.
#[derive(Debug, Default)]
pub struct Databases {
    pools: HashMap<String, Pool>,
    remote: HashMap<String, RemotePool>,
    configured: HashSet<String>,
}

impl Databases {
    /// `pools` are the opened databases; `configured` every label the configuration
    /// knows (`default` is added automatically).
    pub fn new(pools: HashMap<String, Pool>, configured: impl IntoIterator<Item = String>) -> Self {
        let mut configured: HashSet<String> = configured.into_iter().collect();
        configured.insert("default".to_string());
        configured.extend(pools.keys().cloned());
        Databases {
            pools,
            remote: HashMap::new(),
            configured,
        }
    }

    /// Add the libSQL databases (`type = "libsql"`), each label also configured.
    pub fn with_remote(mut self, remote: HashMap<String, RemotePool>) -> Self {
        self.configured.extend(remote.keys().cloned());
        self.remote.extend(remote);
        self
    }

    /// The opened pools of local files.
    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.pools.values()
    }

    /// The libSQL databases.
    pub fn remote_pools(&self) -> impl Iterator<Item = &RemotePool> {
        self.remote.values()
    }
}

/// Per-instance SQLite state: which databases this component may open.
pub struct SqliteCtx {
    databases: Arc<Databases>,
    allowed: Arc<HashSet<String>>,
    stop: Option<StopCheck>,
    /// Set when the stop check interrupted a statement of this instance.
    interrupted: Arc<AtomicBool>,
}

impl SqliteCtx {
    /// State for an instance of a component allowed to open the labels in `allowed`.
    pub fn new(databases: Arc<Databases>, allowed: Arc<HashSet<String>>) -> Self {
        SqliteCtx {
            databases,
            allowed,
            stop: None,
            interrupted: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Interrupt this instance's statements once `stop` says so.
    pub fn with_stop(mut self, stop: StopCheck) -> Self {
        self.stop = Some(stop);
        self
    }
}

/// What the binding needs from the store: its SQLite state and the store's resource
/// table (where `connection` resources live).
pub struct SqliteView<'a> {
    /// The instance's SQLite state.
    pub ctx: &'a mut SqliteCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

struct SqliteBinding;

impl HasData for SqliteBinding {
    type Data<'a> = SqliteView<'a>;
}

/// Add both SQLite interfaces to `linker`; `get` projects the store data to a view.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> SqliteView<'_>,
) -> wasmtime::Result<()> {
    bindings::Sqlite::add_to_linker::<T, SqliteBinding>(linker, get)
}

// ---- the implementation, in interface-neutral types ---------------------------

/// Interface-neutral error (converted to each interface's `error`).
#[derive(Debug, Clone, PartialEq)]
pub enum DbError {
    /// The label is not configured.
    NoSuchDatabase,
    /// The label is configured but not in the component's `sqlite_databases`.
    AccessDenied,
    /// The connection is no longer usable.
    InvalidConnection,
    /// SQLITE_FULL.
    DatabaseFull,
    /// Anything else, with SQLite's (or the pool's) message.
    Io(String),
}

/// Interface-neutral value.
#[derive(Debug, Clone, PartialEq)]
pub enum DbValue {
    /// INTEGER
    Integer(i64),
    /// REAL
    Real(f64),
    /// TEXT
    Text(String),
    /// BLOB
    Blob(Vec<u8>),
    /// NULL
    Null,
}

/// Interface-neutral query result.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DbQueryResult {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows; each has one value per column.
    pub rows: Vec<Vec<DbValue>>,
}

impl SqliteView<'_> {
    async fn open_impl(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, DbError>> {
        let databases = self.ctx.databases.clone();
        if !databases.configured.contains(&database) {
            return Ok(Err(DbError::NoSuchDatabase));
        }
        if !self.ctx.allowed.contains(&database) {
            return Ok(Err(DbError::AccessDenied));
        }
        let opened = if let Some(remote) = databases.remote.get(&database) {
            remote.open_connection().await
        } else if let Some(pool) = databases.pools.get(&database) {
            local::open(pool, self.ctx.stop.clone(), &self.ctx.interrupted).await
        } else {
            // Configured, allowed, but never opened: the host only opens what
            // components list, so this cannot happen; refuse rather than panic.
            Err(DbError::AccessDenied)
        };
        Ok(match opened {
            Ok(conn) => Ok(self.table.push(conn)?),
            Err(e) => Err(e),
        })
    }

    async fn execute_impl(
        &mut self,
        this: &Resource<Connection>,
        statement: String,
        params: Vec<DbValue>,
    ) -> wasmtime::Result<Result<DbQueryResult, DbError>> {
        let backend = self.table.get_mut(this)?.backend_mut();
        backend.execute(statement, params).await
    }

    fn drop_impl(&mut self, this: Resource<Connection>) -> wasmtime::Result<()> {
        // Dropping the backend's connection rolls back and returns it to its pool.
        self.table.delete(this)?;
        Ok(())
    }
}

macro_rules! convert_types {
    ($m:ident) => {
        impl From<DbError> for $m::Error {
            fn from(e: DbError) -> Self {
                match e {
                    DbError::NoSuchDatabase => $m::Error::NoSuchDatabase,
                    DbError::AccessDenied => $m::Error::AccessDenied,
                    DbError::InvalidConnection => $m::Error::InvalidConnection,
                    DbError::DatabaseFull => $m::Error::DatabaseFull,
                    DbError::Io(s) => $m::Error::Io(s),
                }
            }
        }

        impl From<$m::Value> for DbValue {
            fn from(v: $m::Value) -> Self {
                match v {
                    $m::Value::Integer(i) => DbValue::Integer(i),
                    $m::Value::Real(f) => DbValue::Real(f),
                    $m::Value::Text(s) => DbValue::Text(s),
                    $m::Value::Blob(b) => DbValue::Blob(b),
                    $m::Value::Null => DbValue::Null,
                }
            }
        }

        impl From<DbValue> for $m::Value {
            fn from(v: DbValue) -> Self {
                match v {
                    DbValue::Integer(i) => $m::Value::Integer(i),
                    DbValue::Real(f) => $m::Value::Real(f),
                    DbValue::Text(s) => $m::Value::Text(s),
                    DbValue::Blob(b) => $m::Value::Blob(b),
                    DbValue::Null => $m::Value::Null,
                }
            }
        }

        impl From<DbQueryResult> for $m::QueryResult {
            fn from(r: DbQueryResult) -> Self {
                $m::QueryResult {
                    columns: r.columns,
                    rows: r
                        .rows
                        .into_iter()
                        .map(|values| $m::RowResult {
                            values: values.into_iter().map(Into::into).collect(),
                        })
                        .collect(),
                }
            }
        }

        impl $m::Host for SqliteView<'_> {}
    };
}

convert_types!(v3);
convert_types!(v2);

impl v3::HostConnection for SqliteView<'_> {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, v3::Error>> {
        Ok(self.open_impl(database).await?.map_err(Into::into))
    }

    async fn execute(
        &mut self,
        this: Resource<Connection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> wasmtime::Result<Result<v3::QueryResult, v3::Error>> {
        let params = parameters.into_iter().map(Into::into).collect();
        Ok(self
            .execute_impl(&this, statement, params)
            .await?
            .map(Into::into)
            .map_err(Into::into))
    }

    async fn last_insert_rowid(&mut self, this: Resource<Connection>) -> wasmtime::Result<i64> {
        Ok(self.table.get(&this)?.backend.last_insert_rowid())
    }

    async fn changes(&mut self, this: Resource<Connection>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&this)?.backend.changes())
    }

    async fn drop(&mut self, this: Resource<Connection>) -> wasmtime::Result<()> {
        self.drop_impl(this)
    }
}

impl v2::HostConnection for SqliteView<'_> {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, v2::Error>> {
        Ok(self.open_impl(database).await?.map_err(Into::into))
    }

    async fn execute(
        &mut self,
        this: Resource<Connection>,
        statement: String,
        parameters: Vec<v2::Value>,
    ) -> wasmtime::Result<Result<v2::QueryResult, v2::Error>> {
        let params = parameters.into_iter().map(Into::into).collect();
        Ok(self
            .execute_impl(&this, statement, params)
            .await?
            .map(Into::into)
            .map_err(Into::into))
    }

    async fn drop(&mut self, this: Resource<Connection>) -> wasmtime::Result<()> {
        self.drop_impl(this)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_always_configured() {
        let d = Databases::new(HashMap::new(), ["other".to_string()]);
        assert!(d.configured.contains("default"));
        assert!(d.configured.contains("other"));
        assert!(!d.configured.contains("nope"));
    }
}
