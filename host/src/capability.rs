//! The seam every host capability plugs into, after Spin's factors.
//!
//! A capability (SQLite, key-value, variables, outbound HTTP, files) is one module
//! that owns its runtime-config section, its state and its binding, and implements
//! [`Capability`]: link its interfaces, configure itself for the app once at start
//! (open what it needs, check what the manifest asks of it), prepare what one
//! component's instances share, and make each instance's own state. [`Host::start`]
//! and the instance builder go through [`AppCapabilities`], [`ComponentCapabilities`]
//! and [`InstanceCapabilities`], which [`capabilities!`] generates from the one list
//! at the bottom of this file: a new capability is a new module and one line there.
//!
//! WASI and WASI HTTP themselves are not capabilities here: every component gets them
//! (see [`crate::instance`]).
//!
//! [`Host::start`]: crate::Host::start

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;

use crate::instance::HostState;
use crate::limits::RunMeter;
use crate::manifest::{Component, Manifest};
use crate::runtime_config::RuntimeConfig;
use crate::sqlite::StopCheck;
use crate::variables::AppVariables;
use crate::HostConfig;

/// One host capability. Its value is its per-app state, built once at start and shared
/// by every instance.
pub(crate) trait Capability: Sized + Send + Sync + 'static {
    /// What every instance of one component shares (its allow-list, its values...).
    type ComponentState: Send + Sync + 'static;
    /// What one instance (one request) owns; dropped with the instance's store.
    type InstanceState: Send + 'static;

    /// Link its interfaces into the linker every component is checked against.
    fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()>;

    /// Its per-app state, from the manifest, its runtime-config section and the
    /// embedder's settings. Errors here stop the start and name what is wrong.
    async fn configure_app(app: &AppContext<'_>) -> Result<Self>;

    /// What one routed component's instances share.
    fn prepare_component(&self, component: &ComponentContext<'_>) -> Result<Self::ComponentState>;

    /// A fresh instance's state.
    fn new_instance(
        component: &Self::ComponentState,
        instance: &mut InstanceContext<'_>,
    ) -> Self::InstanceState;

    /// Release what it holds once the host has stopped serving.
    async fn close(&self) {}
}

/// What a capability configures itself from.
pub(crate) struct AppContext<'a> {
    /// The embedder's settings.
    pub config: &'a HostConfig,
    /// The application manifest.
    pub manifest: &'a Manifest,
    /// The runtime config; each capability reads its own section.
    pub runtime_config: &'a RuntimeConfig,
    /// The application variables, resolved before any capability is configured
    /// (several capabilities' settings may refer to them, as in Spin).
    pub variables: &'a AppVariables,
}

/// The component a capability prepares for.
pub(crate) struct ComponentContext<'a> {
    /// Its id.
    pub id: &'a str,
    /// Its manifest entry.
    pub component: &'a Component,
    /// The manifest's directory.
    pub manifest_dir: &'a Path,
}

/// What a capability may use or add to while a new instance is made.
pub(crate) struct InstanceContext<'a> {
    /// The component id, for logs.
    pub component_id: &'a str,
    /// The run's meter (its run time and wall limit; see [`crate::limits`]).
    pub meter: &'a Arc<RunMeter>,
    /// When a running SQLite statement must be interrupted.
    pub stop_sqlite: &'a StopCheck,
    /// The instance's WASI context, still being built (for preopens).
    pub wasi: &'a mut WasiCtxBuilder,
}

/// Generates the three structs holding one state per capability, and the loops over
/// them, from `field: Type` pairs. Capabilities are configured in the order listed.
macro_rules! capabilities {
    ($($field:ident: $cap:ty),* $(,)?) => {
        /// Every capability's per-app state.
        pub(crate) struct AppCapabilities {
            $(pub(crate) $field: $cap,)*
        }

        /// Every capability's state for one component.
        pub(crate) struct ComponentCapabilities {
            $($field: <$cap as Capability>::ComponentState,)*
        }

        /// Every capability's state for one instance: part of [`HostState`].
        // Some states are only held, never read back (files: its preopens live in WASI).
        #[allow(dead_code)]
        pub(crate) struct InstanceCapabilities {
            $(pub(crate) $field: <$cap as Capability>::InstanceState,)*
        }

        impl AppCapabilities {
            /// Link every capability's interfaces.
            pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
                $(<$cap as Capability>::add_to_linker(linker)?;)*
                Ok(())
            }

            /// Configure every capability for the app, in order.
            pub(crate) async fn configure(app: &AppContext<'_>) -> Result<Self> {
                Ok(AppCapabilities {
                    $($field: <$cap as Capability>::configure_app(app).await?,)*
                })
            }

            /// Every capability's state for one component.
            pub(crate) fn prepare_component(
                &self,
                component: &ComponentContext<'_>,
            ) -> Result<ComponentCapabilities> {
                Ok(ComponentCapabilities {
                    $($field: self.$field.prepare_component(component)?,)*
                })
            }

            /// Close every capability, in order.
            pub(crate) async fn close(&self) {
                $(self.$field.close().await;)*
            }
        }

        impl ComponentCapabilities {
            /// Every capability's state for a new instance.
            pub(crate) fn new_instance(
                &self,
                instance: &mut InstanceContext<'_>,
            ) -> InstanceCapabilities {
                InstanceCapabilities {
                    $($field: <$cap as Capability>::new_instance(&self.$field, instance),)*
                }
            }
        }
    };
}

capabilities! {
    variables: crate::variables::capability::VariablesCapability,
    sqlite: crate::sqlite::capability::SqliteCapability,
    key_value: crate::key_value::capability::KeyValueCapability,
    outbound_http: crate::outbound_http::capability::OutboundHttpCapability,
    files: crate::files::capability::FilesCapability,
}
