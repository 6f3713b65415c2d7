//! The `events` component: /api/events, /api/events/...: the live status feed.

use orchestrator_core::api::groups;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

#[spin_sdk::http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    spin_adapter::serve(groups::Events, req, out).await
}
