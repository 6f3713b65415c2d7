//! The `runtime` component: /api/runtime/...: runtime agents, prompts, logs, stats.

use orchestrator_core::api::groups;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

#[spin_sdk::http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    spin_adapter::serve(groups::Runtime, req, out).await
}
