//! Key-value stores: `fermyon:spin/key-value@2.0.0` (what spin-sdk 5.2's `key_value`
//! module imports) on SQLite files laid out as Spin keeps them.
//!
//! As in Spin: the `default` store lives in `.spin/sqlite_key_value.db` next to the
//! manifest unless the runtime config's `[key_value_store.default]` says otherwise;
//! other labels must be configured there (`type = "spin"`, `path`). Each file holds
//! the table `spin_key_value (store TEXT, key TEXT, value BLOB, PRIMARY KEY (store,
//! key))`, so a store written under `spin up` reads the same here. A component may
//! open only the labels in its `key_value_stores` (`access-denied` otherwise); a label
//! not configured at all is `no-such-store`.
//!
//! Calls are synchronous: guests run on tokio's blocking threads, so a statement here
//! blocks no async worker. One connection per file, behind a mutex: key-value calls
//! are single short statements.

pub(crate) mod capability;
pub mod config;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use rusqlite::{params, Connection, OptionalExtension};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spin-host:host/key-value",
        imports: { default: trappable },
        with: {
            "fermyon:spin/key-value.store": super::OpenStore,
        },
    });
}

use bindings::fermyon::spin::key_value as wit;

pub use config::default_store_path;

/// One store file, shared by every instance.
#[derive(Debug)]
struct StoreFile {
    conn: Mutex<Connection>,
}

/// The host's key-value stores: label to its open file.
#[derive(Debug, Default)]
pub struct Stores {
    stores: HashMap<String, Arc<StoreFile>>,
}

impl Stores {
    /// Open (creating it with its folder and table) the file of each `(label, path)`.
    pub fn open(stores: impl IntoIterator<Item = (String, PathBuf)>) -> Result<Stores> {
        let mut out = HashMap::new();
        for (label, path) in stores {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow!("cannot create {}: {e}", dir.display()))?;
            }
            let conn = Connection::open(&path)
                .and_then(|c| {
                    c.busy_timeout(std::time::Duration::from_secs(5))?;
                    c.execute_batch(
                        "CREATE TABLE IF NOT EXISTS spin_key_value (
                           store TEXT NOT NULL,
                           key   TEXT NOT NULL,
                           value BLOB NOT NULL,
                           PRIMARY KEY (store, key)
                         );",
                    )?;
                    Ok(c)
                })
                .map_err(|e| {
                    anyhow!(
                        "cannot open key-value store `{label}` at {}: {e}",
                        path.display()
                    )
                })?;
            tracing::debug!(store = %label, path = %path.display(), "key-value store open");
            out.insert(
                label,
                Arc::new(StoreFile {
                    conn: Mutex::new(conn),
                }),
            );
        }
        Ok(Stores { stores: out })
    }
}

/// A guest's open `store` resource.
pub struct OpenStore {
    label: String,
    file: Arc<StoreFile>,
}

/// One instance's view: the host's stores and the labels this component may open.
#[derive(Clone, Default)]
pub struct KeyValueCtx {
    stores: Arc<Stores>,
    allowed: Arc<HashSet<String>>,
}

impl KeyValueCtx {
    /// A component's access to `stores`, limited to `allowed`.
    pub fn new(stores: Arc<Stores>, allowed: Arc<HashSet<String>>) -> Self {
        KeyValueCtx { stores, allowed }
    }
}

/// What the binding borrows from the instance state.
pub struct KeyValueView<'a> {
    /// This component's access.
    pub ctx: &'a KeyValueCtx,
    /// The instance's resource table.
    pub table: &'a mut ResourceTable,
}

struct KeyValueData;

impl HasData for KeyValueData {
    type Data<'a> = KeyValueView<'a>;
}

/// Link `fermyon:spin/key-value@2.0.0`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> KeyValueView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, KeyValueData>(linker, view)
}

fn other(e: impl std::fmt::Display) -> wit::Error {
    wit::Error::Other(e.to_string())
}

impl KeyValueView<'_> {
    fn with<R>(
        &mut self,
        store: &Resource<OpenStore>,
        f: impl FnOnce(&Connection, &str) -> rusqlite::Result<R>,
    ) -> wasmtime::Result<Result<R, wit::Error>> {
        let open = self.table.get(store)?;
        // A panic while holding the lock cannot leave a half-done statement (SQLite
        // statements are atomic), so a poisoned lock's connection is still good.
        let conn = open.file.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&conn, &open.label).map_err(other))
    }
}

impl wit::Host for KeyValueView<'_> {}

impl wit::HostStore for KeyValueView<'_> {
    fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<OpenStore>, wit::Error>> {
        if !self.ctx.allowed.contains(&label) {
            return Ok(Err(wit::Error::AccessDenied));
        }
        let Some(file) = self.ctx.stores.stores.get(&label).cloned() else {
            return Ok(Err(wit::Error::NoSuchStore));
        };
        Ok(Ok(self.table.push(OpenStore { label, file })?))
    }

    fn get(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wit::Error>> {
        self.with(&store, |c, label| {
            c.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .query_row(params![label, key], |r| r.get(0))
                .optional()
        })
    }

    fn set(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wit::Error>> {
        self.with(&store, |c, label| {
            c.prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![label, key, value])
            .map(drop)
        })
    }

    fn delete(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), wit::Error>> {
        self.with(&store, |c, label| {
            c.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .execute(params![label, key])
                .map(drop)
        })
    }

    fn exists(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wit::Error>> {
        self.with(&store, |c, label| {
            c.prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .query_row(params![label, key], |_| Ok(()))
                .optional()
                .map(|r| r.is_some())
        })
    }

    fn get_keys(
        &mut self,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<Result<Vec<String>, wit::Error>> {
        self.with(&store, |c, label| {
            c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?
                .query_map(params![label], |r| r.get(0))?
                .collect()
        })
    }

    fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
