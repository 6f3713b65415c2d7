//! Outbound HTTP: `GET /fetch?<url>` fetches `<url>` (absolute, or relative for the
//! app's own routes) and answers with its status and body; a refused or failed
//! request answers 502 with the SDK's error text. `GET /pong` is a route to call, and
//! `GET /slow` one that takes 30 s to answer (to see deadlines hold).

use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let path = req.path().to_string();
    if path.ends_with("/pong") {
        return Ok(Response::builder().status(200).body("pong").build());
    }
    if path.ends_with("/slow") {
        std::thread::sleep(std::time::Duration::from_secs(30));
        return Ok(Response::builder().status(200).body("slow").build());
    }
    let target = req.query().to_string();
    let outbound = Request::builder().method(Method::Get).uri(target).build();
    match spin_sdk::http::send::<_, Response>(outbound).await {
        Ok(r) => Ok(Response::builder()
            .status(200)
            .body(format!(
                "{} {}",
                r.status(),
                String::from_utf8_lossy(r.body())
            ))
            .build()),
        Err(e) => Ok(Response::builder()
            .status(502)
            .body(format!("{e:?}"))
            .build()),
    }
}
