//! Outbound HTTP as a host capability: each component's allow-list (its templates
//! rendered with the app's variables), the slot self requests go through, and the hook
//! each instance's WASI HTTP gets. The WASI HTTP interfaces themselves are linked for
//! every component (see [`crate::instance`]).

use std::sync::Arc;

use anyhow::{anyhow, Result};
use wasmtime::component::Linker;

use super::{AllowedHosts, OutboundConfig, OutboundHttp, SelfSlot};
use crate::capability::{AppContext, Capability, ComponentContext, InstanceContext};
use crate::instance::HostState;
use crate::variables::AppVariables;

/// The app's variables (allow-list entries may refer to them) and the app itself, for
/// self requests.
pub(crate) struct OutboundHttpCapability {
    variables: AppVariables,
    self_handler: SelfSlot,
}

impl OutboundHttpCapability {
    /// Where self requests go; filled in once the app is built.
    pub(crate) fn self_slot(&self) -> &SelfSlot {
        &self.self_handler
    }
}

impl Capability for OutboundHttpCapability {
    type ComponentState = Arc<OutboundConfig>;
    type InstanceState = OutboundHttp;

    fn add_to_linker(_: &mut Linker<HostState>) -> Result<()> {
        Ok(())
    }

    async fn configure_app(app: &AppContext<'_>) -> Result<Self> {
        Ok(OutboundHttpCapability {
            variables: app.variables.clone(),
            self_handler: Arc::new(std::sync::OnceLock::new()),
        })
    }

    fn prepare_component(&self, component: &ComponentContext<'_>) -> Result<Arc<OutboundConfig>> {
        let id = component.id;
        let allowed = AllowedHosts::parse(&component.component.allowed_outbound_hosts, |name| {
            self.variables.get(name).map(str::to_string)
        })
        .map_err(|e| anyhow!("component `{id}`: {e}"))?;
        Ok(Arc::new(OutboundConfig {
            component: id.to_string(),
            allowed,
            self_handler: self.self_handler.clone(),
        }))
    }

    fn new_instance(
        component: &Arc<OutboundConfig>,
        instance: &mut InstanceContext<'_>,
    ) -> OutboundHttp {
        OutboundHttp::new(component.clone(), instance.meter.clone())
    }
}
