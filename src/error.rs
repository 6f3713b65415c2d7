//! The one error type of the API and its JSON shape.
//!
//! Every failure a handler can produce is an [`ApiError`]; [`ApiError::status`] and
//! [`ErrorCode`] are the single mapping to HTTP, so a client always gets
//! `{"error": {"code", "message", "details"?}}` with a stable machine-readable code.

use serde_json::{json, Value as Json};

use crate::db::{DbError, DbErrorKind, TransactionError};
use crate::domain::PageError;

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
    /// The kind of the database failure this error was made from (`From<DbError>`), if
    /// it was: how [`crate::db::write_transaction`] tells a busy or interrupted statement
    /// inside its work, which it runs again, from everything else. Not in the answer.
    pub(crate) db_cause: Option<DbErrorKind>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: None,
            db_cause: None,
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

/// Database failures the client did not cause: a busy, interrupted or unreachable database
/// is 503 (retry later), anything else is a bug (500). Constraint violations that a client
/// *can* cause are checked in code first and mapped by the store before they get here.
/// A transaction's work may fail with an `ApiError`; the database failure it was made from
/// (if any) decides whether [`crate::db::write_transaction`] tries again.
impl TransactionError for ApiError {
    fn db_cause(&self) -> Option<DbErrorKind> {
        self.db_cause
    }
}

/// A bad `limit` or `offset`: a 400 naming the parameter.
impl From<PageError> for ApiError {
    fn from(err: PageError) -> Self {
        ApiError::bad_query(err.parameter, err.message)
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        let kind = err.kind;
        let mut api = match kind {
            DbErrorKind::Busy | DbErrorKind::Interrupted | DbErrorKind::Unavailable => {
                ApiError::unavailable(format!("database unavailable: {}", err.message))
            }
            DbErrorKind::SchemaTooNew => ApiError::unavailable(err.message),
            _ => ApiError::internal(format!("database error: {}", err.message)),
        };
        api.db_cause = Some(kind);
        api
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

    /// The three transient failures real Spin 3.6.3 answered under load on sqld 0.24.33
    /// (docs/scale-out.md, section 7), as Spin's libsql client words them, and this host's
    /// answer for a libSQL server that does not answer: all 503, none 500.
    #[test]
    fn what_spin_and_this_host_report_for_a_busy_interrupted_or_silent_server_is_a_503() {
        for (message, kind) in [
            (
                "Hrana: `cursor error: `error at step 0: (error code: SQLITE_BUSY) \
                 `SQLite error: database is locked```",
                DbErrorKind::Busy,
            ),
            (
                "Hrana: `cursor error: `error at step 0: (error code: SQLITE_INTERRUPT) \
                 `SQLite error: interrupted```",
                DbErrorKind::Interrupted,
            ),
            (
                "Hrana: `cursor error: `error at step 0: (error code: TRANSACTION_TIMEOUT) \
                 `Transaction timed out```",
                DbErrorKind::Unavailable,
            ),
            // SQLite's own text for SQLITE_INTERRUPT, as rusqlite and a local file say it.
            ("interrupted", DbErrorKind::Interrupted),
            (
                "database `default` (libSQL at http://127.0.0.1:8080): \
                 no answer from 127.0.0.1:8080 within 10s",
                DbErrorKind::Unavailable,
            ),
            (
                "database `default` (libSQL at http://127.0.0.1:8080): cannot connect to \
                 127.0.0.1:8080: Connection refused (os error 111)",
                DbErrorKind::Unavailable,
            ),
        ] {
            let db = DbError::from_sqlite_message(message);
            assert_eq!(db.kind, kind, "{message}");
            let err = ApiError::from(db);
            assert_eq!(err.status(), 503, "{message}");
            assert_eq!(err.to_json()["error"]["code"], "unavailable");
            assert_eq!(err.message, format!("database unavailable: {message}"));
        }
        // A constraint that names such a word is still the constraint.
        let db = DbError::from_sqlite_message(
            "UNIQUE constraint failed: orchestrator_agents.name (interrupted)",
        );
        assert_eq!(db.kind, DbErrorKind::Unique);
    }
}
