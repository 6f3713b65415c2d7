//! The `events` component: /api/events, /api/events/...: the live status feed.

use orchestrator_core::Group;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

#[spin_sdk::http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    spin_adapter::serve(Group::Events, req, out).await
}
