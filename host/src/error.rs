//! The JSON error responses the host itself produces (no component involved, or a
//! component that failed before sending its response head).
//!
//! The shape is the one the application's own API uses,
//! `{"error": {"code": "...", "message": "..."}}`, so that a client sees one error
//! format whether the error came from a component or from the host.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

/// The error kinds the host can answer with on its own.
///
/// Each maps to one HTTP status and one stable machine-readable `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostErrorKind {
    /// A request the host cannot parse or route at all (a malformed request line, a bad
    /// header or `Content-Length`, a target that is not a path): 400 `bad_request`.
    BadRequest,
    /// The request's headers are too many or too large: 431 `bad_request`.
    HeadersTooLarge,
    /// The request target is too long: 414 `bad_request`.
    UriTooLong,
    /// No route matches the path: 404 `not_found`.
    NotFound,
    /// The component trapped, panicked or returned no response: 500 `internal`.
    Internal,
    /// The host is at capacity (no instance slot free): 503 `unavailable`.
    Unavailable,
    /// The request deadline passed before the response head: 504 `timeout`.
    Timeout,
}

impl HostErrorKind {
    /// The HTTP status for this kind.
    pub fn status(self) -> StatusCode {
        match self {
            HostErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            HostErrorKind::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HostErrorKind::UriTooLong => StatusCode::URI_TOO_LONG,
            HostErrorKind::NotFound => StatusCode::NOT_FOUND,
            HostErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            HostErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            HostErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The stable `code` string for this kind.
    pub fn code(self) -> &'static str {
        match self {
            // One code for every request the host cannot take as sent: the status says
            // which limit, the message what was wrong.
            HostErrorKind::BadRequest
            | HostErrorKind::HeadersTooLarge
            | HostErrorKind::UriTooLong => "bad_request",
            HostErrorKind::NotFound => "not_found",
            HostErrorKind::Internal => "internal",
            HostErrorKind::Unavailable => "unavailable",
            HostErrorKind::Timeout => "timeout",
        }
    }
}

/// The JSON body `{"error":{"code":..,"message":..}}` for `kind` and `message`.
///
/// Always valid JSON: the message is escaped by serde_json.
pub fn error_body(kind: HostErrorKind, message: &str) -> String {
    serde_json::json!({ "error": { "code": kind.code(), "message": message } }).to_string()
}

/// A complete error response: the kind's status, `Content-Type: application/json`
/// and the body from [`error_body`].
pub fn error_response(kind: HostErrorKind, message: &str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(error_body(kind, message)));
    *response.status_mut() = kind.status();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_api_shape() {
        let body = error_body(HostErrorKind::Timeout, "took \"too\" long");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "timeout");
        assert_eq!(v["error"]["message"], "took \"too\" long");
    }

    #[test]
    fn response_sets_status_and_content_type() {
        let r = error_response(HostErrorKind::NotFound, "nope");
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let r = error_response(HostErrorKind::Internal, "boom");
        assert_eq!(r.status(), 500);
        assert_eq!(error_response(HostErrorKind::Unavailable, "").status(), 503);
        assert_eq!(error_response(HostErrorKind::Timeout, "").status(), 504);
    }
}
