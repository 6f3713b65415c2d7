//! Files as a host capability: each component's `files` resolved (and staged) at
//! start, and mounted read-only into each instance's WASI context.

use std::sync::Arc;

use anyhow::Result;
use wasmtime::component::Linker;
use wasmtime_wasi::FsPerms;

use super::Files;
use crate::capability::{AppContext, Capability, ComponentContext, InstanceContext};
use crate::instance::HostState;

/// Nothing app-wide: each component's mounts are its own.
pub(crate) struct FilesCapability;

impl Capability for FilesCapability {
    /// Shared by its instances; the staging directory lives as long as the component.
    type ComponentState = Arc<Files>;
    /// The mounts are preopens in the instance's WASI context.
    type InstanceState = ();

    fn add_to_linker(_: &mut Linker<HostState>) -> Result<()> {
        Ok(())
    }

    async fn configure_app(_: &AppContext<'_>) -> Result<Self> {
        Ok(FilesCapability)
    }

    fn prepare_component(&self, component: &ComponentContext<'_>) -> Result<Arc<Files>> {
        let c = component.component;
        Ok(Arc::new(super::mounts(
            component.id,
            component.manifest_dir,
            &c.files,
            &c.exclude_files,
        )?))
    }

    fn new_instance(files: &Arc<Files>, instance: &mut InstanceContext<'_>) {
        for mount in &files.mounts {
            // Checked to be a directory at start; if it has gone since, the guest
            // just doesn't see it (its reads fail), the request still runs.
            if let Err(e) =
                instance
                    .wasi
                    .preopened_dir(&mount.host, &mount.guest, FsPerms::ReadOnly)
            {
                tracing::warn!(component = %instance.component_id, dir = %mount.host.display(), "cannot mount files: {e}");
            }
        }
    }
}
