//! Key-value as a host capability: the stores some component lists, opened at start,
//! and each component's access to them.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Result};
use wasmtime::component::Linker;

use super::config::default_store_path;
use super::{KeyValueCtx, KeyValueView, Stores};
use crate::capability::{AppContext, Capability, ComponentContext, InstanceContext};
use crate::instance::{to_anyhow, HostState};

/// The host's open key-value stores.
pub(crate) struct KeyValueCapability {
    stores: Arc<Stores>,
}

impl Capability for KeyValueCapability {
    type ComponentState = KeyValueCtx;
    type InstanceState = KeyValueCtx;

    fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
        super::add_to_linker(linker, |s: &mut HostState| KeyValueView {
            ctx: &s.capabilities.key_value,
            table: &mut s.table,
        })
        .map_err(to_anyhow)
    }

    /// Open the stores some component lists: `default` at Spin's
    /// `.spin/sqlite_key_value.db` unless the runtime config moves it, any other label
    /// only if the runtime config has `[key_value_store.<label>]` (a start-up error
    /// otherwise, as in Spin). Nothing is opened for an app that uses none.
    async fn configure_app(app: &AppContext<'_>) -> Result<Self> {
        let mut used = BTreeMap::new();
        for (id, component) in &app.manifest.components {
            for label in &component.key_value_stores {
                let path = match app.runtime_config.key_value_stores.get(label) {
                    Some(path) => path.clone(),
                    None if label == "default" => default_store_path(&app.manifest.dir),
                    None => bail!(
                        "component `{id}` uses key-value store `{label}`, which is not configured (add [key_value_store.{label}] to the runtime config)"
                    ),
                };
                used.insert(label.clone(), path);
            }
        }
        Ok(KeyValueCapability {
            stores: Arc::new(Stores::open(used)?),
        })
    }

    fn prepare_component(&self, component: &ComponentContext<'_>) -> Result<KeyValueCtx> {
        Ok(KeyValueCtx::new(
            self.stores.clone(),
            Arc::new(
                component
                    .component
                    .key_value_stores
                    .iter()
                    .cloned()
                    .collect(),
            ),
        ))
    }

    fn new_instance(component: &KeyValueCtx, _: &mut InstanceContext<'_>) -> KeyValueCtx {
        component.clone()
    }
}
