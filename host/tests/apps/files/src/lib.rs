//! Files: `GET /read?<path>` answers the file's text, `GET /write?<path>` tries to
//! create it; a failure answers 500 with the error's kind.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let path = req.query().to_string();
    let result = if req.path().ends_with("/write") {
        std::fs::write(&path, "x").map(|()| "written".to_string())
    } else {
        std::fs::read_to_string(&path)
    };
    Ok(match result {
        Ok(text) => Response::builder().status(200).body(text).build(),
        Err(e) => Response::builder()
            .status(500)
            .body(format!("{:?}", e.kind()))
            .build(),
    })
}
