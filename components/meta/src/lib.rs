//! The `meta` component: /health, /openapi.json and the catch-all that gives unknown paths the API's 404.

use orchestrator_core::Group;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

#[spin_sdk::http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    spin_adapter::serve(Group::Meta, req, out).await
}
