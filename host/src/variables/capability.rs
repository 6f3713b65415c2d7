//! Variables as a host capability: every component's variables rendered once at start
//! (a template error in any component, routed or not, stops the start), and the
//! binding each instance gets.

use std::collections::HashMap;

use anyhow::Result;
use wasmtime::component::Linker;

use super::ComponentVariables;
use crate::capability::{AppContext, Capability, ComponentContext, InstanceContext};
use crate::instance::{to_anyhow, HostState};

/// Every component's rendered variables, by component id.
pub(crate) struct VariablesCapability {
    components: HashMap<String, ComponentVariables>,
}

impl Capability for VariablesCapability {
    type ComponentState = ComponentVariables;
    type InstanceState = ComponentVariables;

    fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
        super::add_to_linker(linker, |s: &mut HostState| &mut s.capabilities.variables)
            .map_err(to_anyhow)
    }

    async fn configure_app(app: &AppContext<'_>) -> Result<Self> {
        let mut components = HashMap::new();
        for (id, component) in &app.manifest.components {
            let values = app.variables.component_values(id, &component.variables)?;
            components.insert(id.clone(), values);
        }
        Ok(VariablesCapability { components })
    }

    fn prepare_component(&self, component: &ComponentContext<'_>) -> Result<ComponentVariables> {
        Ok(self
            .components
            .get(component.id)
            .cloned()
            .unwrap_or_default())
    }

    fn new_instance(
        component: &ComponentVariables,
        _: &mut InstanceContext<'_>,
    ) -> ComponentVariables {
        component.clone()
    }
}
