//! `/health` and `/openapi.json`.

use crate::db::Connector;
use crate::error::ApiError;
use crate::http::Response;

/// 200 `{"status": "ok"}` once the database answers (schema current); 503 otherwise.
pub fn health<C: Connector>(connector: &C) -> Result<Response, ApiError> {
    let db = crate::migrations::open(connector)?;
    crate::store::ping(&db)?;
    Ok(Response::json(200, &serde_json::json!({ "status": "ok" })))
}

/// The OpenAPI 3.1 description of every route.
pub fn openapi() -> Response {
    Response::json(200, &super::openapi::document())
}
