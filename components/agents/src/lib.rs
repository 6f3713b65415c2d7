//! The `agents` component: /api/agents, /api/agents/...: agent definitions.

use orchestrator_core::api::groups;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

#[spin_sdk::http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    spin_adapter::serve(groups::Agents, req, out).await
}
