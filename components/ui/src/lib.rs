//! The `ui` component: the dashboard at `/` and its files under `/ui/...`, embedded in the
//! `.wasm` by the build script (see `build.rs`), so it runs on any Spin host.

use orchestrator_core::http::assets::Asset;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

// `ASSETS: &[Asset]`, generated from `assets/` by the build script.
include!(concat!(env!("OUT_DIR"), "/assets.rs"));

#[spin_sdk::http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    spin_adapter::serve_assets(ASSETS, req, out).await
}
