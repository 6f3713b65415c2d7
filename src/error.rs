//! The one error type of the API and its JSON shape.
//!
//! Every failure a handler can produce is an [`ApiError`]; [`ApiError::status`] and
//! [`ErrorCode`] are the single mapping to HTTP, so a client always gets
//! `{"error": {"code", "message", "details"?}}` with a stable machine-readable code.

use serde_json::{json, Value as Json};

use crate::db::{DbError, DbErrorKind};

/// Machine-readable error codes of the contract (API.md, "Conventions").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    Internal,
    Unavailable,
}

impl ErrorCode {
    /// The stable string clients match on.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
        }
    }

    /// The HTTP status this code is always answered with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::ValidationFailed => 422,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }
}

/// An error answer: code, human message and optional details (always a `field` for 422).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Json>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// A bad query parameter: 400 naming the parameter.
    pub fn bad_query(param: &str, message: impl Into<String>) -> Self {
        Self::bad_request(message).with_details(json!({ "parameter": param }))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// A 422 always names the offending field.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationFailed, message).with_details(json!({ "field": field }))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    pub fn with_details(mut self, details: Json) -> Self {
        self.details = Some(details);
        self
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The JSON body of the contract's error shape.
    pub fn to_json(&self) -> Json {
        let mut error = json!({ "code": self.code.as_str(), "message": self.message });
        if let Some(details) = &self.details {
            error["details"] = details.clone();
        }
        json!({ "error": error })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

/// Database failures the client did not cause: a busy or unreachable database is 503 (retry
/// later), anything else is a bug (500). Constraint violations that a client *can* cause
/// are checked in code first and mapped by the store before they get here.
impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err.kind {
            DbErrorKind::Busy | DbErrorKind::Unavailable => {
                ApiError::unavailable(format!("database unavailable: {}", err.message))
            }
            DbErrorKind::SchemaTooNew => ApiError::unavailable(err.message),
            _ => ApiError::internal(format!("database error: {}", err.message)),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_validation_error_names_its_field_in_details() {
        let body =
            ApiError::validation("agent_type", "agent_type must be one of planner").to_json();
        assert_eq!(body["error"]["code"], "validation_failed");
        assert_eq!(body["error"]["details"]["field"], "agent_type");
    }

    #[test]
    fn an_error_without_details_has_no_details_key() {
        let body = ApiError::not_found("no such agent").to_json();
        assert!(body["error"].get("details").is_none());
        assert_eq!(ApiError::not_found("x").status(), 404);
    }

    #[test]
    fn a_busy_database_is_a_503_not_a_500() {
        let err: ApiError = DbError::new(DbErrorKind::Busy, "database is locked").into();
        assert_eq!(err.status(), 503);
        let err: ApiError = DbError::new(DbErrorKind::Other, "no such column").into();
        assert_eq!(err.status(), 500);
    }
}
