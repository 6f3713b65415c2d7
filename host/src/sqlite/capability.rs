//! SQLite as a host capability: which database each label names (runtime config,
//! then the embedder's overrides), the pools opened at start, which labels each
//! component may open, and the binding each instance gets.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use wasmtime::component::Linker;

use super::config::{default_database_path, LibsqlConfig, SqliteDatabase};
use super::{Databases, Pool, PoolOptions, RemotePool, SqliteCtx, SqliteView};
use crate::capability::{AppContext, Capability, ComponentContext, InstanceContext};
use crate::instance::{to_anyhow, HostState};

/// The host's databases, open for the app's lifetime.
pub(crate) struct SqliteCapability {
    databases: Arc<Databases>,
    /// The libSQL servers by label (with their tokens), for [`crate::Host::libsql_databases`].
    libsql: BTreeMap<String, LibsqlConfig>,
}

impl SqliteCapability {
    /// Every open database pool.
    pub(crate) fn databases(&self) -> &Databases {
        &self.databases
    }

    /// The libSQL servers by label.
    pub(crate) fn libsql(&self) -> &BTreeMap<String, LibsqlConfig> {
        &self.libsql
    }
}

/// What one component's instances share: the databases and the labels it may open.
pub(crate) struct ComponentDatabases {
    databases: Arc<Databases>,
    allowed: Arc<HashSet<String>>,
}

impl Capability for SqliteCapability {
    type ComponentState = ComponentDatabases;
    type InstanceState = SqliteCtx;

    fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
        super::add_to_linker(linker, |s: &mut HostState| SqliteView {
            ctx: &mut s.capabilities.sqlite,
            table: &mut s.table,
        })
        .map_err(to_anyhow)
    }

    /// Decide where each database lives and open the pools.
    ///
    /// A label is configured if the runtime config or an override names it (`default`
    /// always is, at `.spin/sqlite_db.db` next to the manifest unless configured
    /// otherwise). A component listing an unconfigured label is a start-up error, as in
    /// Spin. Pools are opened for labels some component uses and for labels configured
    /// explicitly; a configured label no component lists can never be opened anyway.
    async fn configure_app(app: &AppContext<'_>) -> Result<Self> {
        let config = app.config;
        let mut targets: BTreeMap<String, SqliteDatabase> =
            app.runtime_config.sqlite_databases.clone();
        for (label, path) in &config.sqlite_path_overrides {
            if config.sqlite_libsql_overrides.contains_key(label) {
                bail!("database `{label}` is given both a file and a libSQL server; give one");
            }
            targets.insert(label.clone(), SqliteDatabase::File(path.clone()));
        }
        for (label, remote) in &config.sqlite_libsql_overrides {
            targets.insert(label.clone(), SqliteDatabase::Libsql(remote.clone()));
        }
        let mut configured: HashSet<String> = targets.keys().cloned().collect();
        configured.insert("default".to_string());

        let mut used: BTreeSet<String> = targets.keys().cloned().collect();
        for (id, component) in &app.manifest.components {
            for label in &component.sqlite_databases {
                if !configured.contains(label) {
                    bail!(
                        "component `{id}` uses SQLite database `{label}`, which is not configured (add [sqlite_database.{label}] to the runtime config)"
                    );
                }
                used.insert(label.clone());
            }
        }

        let options = PoolOptions {
            size: config.sqlite_pool_size.max(1),
            wait: config.sqlite_pool_wait,
            busy_timeout: config.sqlite_busy_timeout,
            synchronous: config.sqlite_synchronous,
        };
        let mut pools = HashMap::new();
        let mut remote = HashMap::new();
        let mut libsql = BTreeMap::new();
        for label in used {
            match targets.get(&label) {
                Some(SqliteDatabase::Libsql(server)) => {
                    let pool = RemotePool::open(&label, server, &options).await?;
                    tracing::debug!(database = %label, url = %server.url, "libSQL database reachable");
                    libsql.insert(label.clone(), server.clone());
                    remote.insert(label, pool);
                }
                file => {
                    let path = match file {
                        Some(SqliteDatabase::File(path)) => path.clone(),
                        _ => default_database_path(&app.manifest.dir),
                    };
                    let pool = Pool::open(&label, &path, options.clone()).await?;
                    tracing::debug!(database = %label, path = %path.display(), "database open");
                    pools.insert(label, pool);
                }
            }
        }
        let databases = Databases::new(pools, configured).with_remote(remote);
        Ok(SqliteCapability {
            databases: Arc::new(databases),
            libsql,
        })
    }

    fn prepare_component(&self, component: &ComponentContext<'_>) -> Result<ComponentDatabases> {
        Ok(ComponentDatabases {
            databases: self.databases.clone(),
            allowed: Arc::new(
                component
                    .component
                    .sqlite_databases
                    .iter()
                    .cloned()
                    .collect(),
            ),
        })
    }

    fn new_instance(
        component: &ComponentDatabases,
        instance: &mut InstanceContext<'_>,
    ) -> SqliteCtx {
        SqliteCtx::new(component.databases.clone(), component.allowed.clone())
            .with_stop(instance.stop_sqlite.clone())
    }

    /// Close the pools, waiting a bounded time for connections still in use.
    async fn close(&self) {
        for pool in self.databases.pools() {
            pool.close(Duration::from_secs(5)).await;
        }
        for pool in self.databases.remote_pools() {
            pool.close(Duration::from_secs(5)).await;
        }
    }
}
