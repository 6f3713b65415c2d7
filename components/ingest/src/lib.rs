//! The `ingest` component: /api/ingest/... (Claude Code hooks): what agents report
//! without code, mapped by the core's `ingest` module.

use orchestrator_core::api::groups;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

#[spin_sdk::http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    spin_adapter::serve(groups::Ingest, req, out).await
}
