//! CORS: allowed origins get `Access-Control-Allow-Origin`, others get nothing.

use super::{Config, Request, Response};

const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const ALLOWED_HEADERS: &str = "authorization, content-type, last-event-id";

/// Whether `origin` is allowed (exact match after dropping a trailing slash).
pub fn origin_allowed(config: &Config, origin: &str) -> bool {
    let origin = origin.trim_end_matches('/');
    config.allowed_origins.iter().any(|o| o == origin)
}

/// Whether a request is a CORS preflight.
pub fn is_preflight(req: &Request) -> bool {
    req.method == "OPTIONS"
        && req.header("origin").is_some()
        && req.header("access-control-request-method").is_some()
}

/// The answer to a preflight: 204, with the CORS grant only for an allowed origin.
pub fn preflight(config: &Config, req: &Request) -> Response {
    let mut response = Response::empty(204);
    if req
        .header("origin")
        .is_some_and(|o| origin_allowed(config, o))
    {
        response = response
            .with_header("access-control-allow-methods", ALLOWED_METHODS)
            .with_header("access-control-allow-headers", ALLOWED_HEADERS)
            .with_header("access-control-max-age", "600");
    }
    response
}

/// Add the CORS headers an allowed origin gets on every response (errors included, so a
/// browser can read the error body).
pub fn decorate(config: &Config, req: &Request, response: &mut Response) {
    response.headers.push(("vary".into(), "Origin".into()));
    if let Some(origin) = req.header("origin").filter(|o| origin_allowed(config, o)) {
        response
            .headers
            .push(("access-control-allow-origin".into(), origin.to_owned()));
        response.headers.push((
            "access-control-expose-headers".into(),
            "location, allow".into(),
        ));
    }
}
