//! Key-value: `GET /<store>` adds one to the counter in that store and answers the
//! new value; an error opening the store answers 500 with the SDK's error.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let label = req.path().trim_start_matches('/').to_string();
    let store = match Store::open(&label) {
        Ok(s) => s,
        Err(e) => return Ok(Response::builder().status(500).body(format!("{e:?}")).build()),
    };
    let count = store
        .get("count")?
        .map(|v| String::from_utf8_lossy(&v).parse::<u64>().unwrap_or(0))
        .unwrap_or(0)
        + 1;
    store.set("count", count.to_string().as_bytes())?;
    Ok(Response::builder().status(200).body(count.to_string()).build())
}
