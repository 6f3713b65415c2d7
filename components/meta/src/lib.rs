//! The `meta` component: /health, /openapi.json and the catch-all that gives unknown paths the API's 404.

use orchestrator_core::api::groups;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

#[spin_sdk::http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    spin_adapter::serve(groups::Meta, req, out).await
}
