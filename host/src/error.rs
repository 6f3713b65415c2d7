//! The error responses the host itself produces (no component involved, or a
//! component that failed before sending its response head).
//!
//! The host knows no application's error format: the app chooses the body with
//! [`crate::HostConfig::error_body`]. The default, [`ErrorBody::PlainText`], is what
//! Spin answers (the message as plain text); [`ErrorBody::Json`] is
//! `{"error": {"code": "...", "message": "..."}}`, for an app whose own API answers
//! errors in that shape, so that its clients see one error format whether the error
//! came from a component or from the host.

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

/// What the body of an error answer the host makes on its own looks like (the status
/// is always the kind's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ErrorBody {
    /// The message as `text/plain; charset=utf-8`, as Spin answers its own errors.
    #[default]
    PlainText,
    /// `{"error":{"code":..,"message":..}}` as `application/json`, the `code` being
    /// [`HostErrorKind::code`].
    Json,
}

impl ErrorBody {
    /// The body's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            ErrorBody::PlainText => "text/plain; charset=utf-8",
            ErrorBody::Json => "application/json",
        }
    }

    /// The body for `kind` and `message`. JSON is always valid: serde_json escapes the
    /// message.
    pub fn render(self, kind: HostErrorKind, message: &str) -> String {
        match self {
            ErrorBody::PlainText => message.to_string(),
            ErrorBody::Json => {
                serde_json::json!({ "error": { "code": kind.code(), "message": message } })
                    .to_string()
            }
        }
    }

    /// A complete error response: the kind's status, this body and its `Content-Type`.
    pub fn response(self, kind: HostErrorKind, message: &str) -> Response<Bytes> {
        let mut response = Response::new(Bytes::from(self.render(kind, message)));
        *response.status_mut() = kind.status();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type()),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_body_has_the_api_shape() {
        let body = ErrorBody::Json.render(HostErrorKind::Timeout, "took \"too\" long");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "timeout");
        assert_eq!(v["error"]["message"], "took \"too\" long");
    }

    #[test]
    fn plain_text_is_the_default_and_the_message_alone() {
        assert_eq!(ErrorBody::default(), ErrorBody::PlainText);
        let r = ErrorBody::default().response(HostErrorKind::NotFound, "no route matches /x");
        assert_eq!(r.status(), 404);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert_eq!(r.body().as_ref(), b"no route matches /x");
    }

    #[test]
    fn response_sets_status_and_content_type() {
        let r = ErrorBody::Json.response(HostErrorKind::NotFound, "nope");
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let r = ErrorBody::Json.response(HostErrorKind::Internal, "boom");
        assert_eq!(r.status(), 500);
        for style in [ErrorBody::Json, ErrorBody::PlainText] {
            assert_eq!(style.response(HostErrorKind::Unavailable, "").status(), 503);
            assert_eq!(style.response(HostErrorKind::Timeout, "").status(), 504);
        }
    }
}
