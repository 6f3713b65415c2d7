//! Bearer-token auth for `/api`.

use subtle::ConstantTimeEq;

use super::{Config, Request};
use crate::error::{ApiError, ErrorCode};

/// Compare a presented token with the configured one in constant time (for equal lengths;
/// the length itself is not secret enough to matter).
pub fn token_matches(expected: &str, presented: &str) -> bool {
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// `Ok` when no token is configured or the request carries `Authorization: Bearer TOKEN`.
pub fn check(config: &Config, req: &Request) -> Result<(), ApiError> {
    let Some(expected) = config.api_token.as_deref() else {
        return Ok(());
    };
    let presented = req.header("authorization").and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    match presented {
        Some(token) if token_matches(expected, token) => Ok(()),
        Some(_) => Err(ApiError::new(ErrorCode::Unauthorized, "invalid API token")),
        None => Err(ApiError::new(
            ErrorCode::Unauthorized,
            "missing API token: send Authorization: Bearer <token>",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(token: Option<&str>) -> Config {
        Config {
            api_token: token.map(str::to_owned),
            ..Config::default()
        }
    }

    #[test]
    fn without_a_configured_token_everything_passes() {
        assert!(check(&config(None), &Request::new("GET", "/api/agents")).is_ok());
    }

    #[test]
    fn the_right_bearer_token_passes_and_others_get_401() {
        let cfg = config(Some("s3cret"));
        let ok = Request::new("GET", "/api/agents").with_header("Authorization", "Bearer s3cret");
        assert!(check(&cfg, &ok).is_ok());
        let wrong = Request::new("GET", "/api/agents").with_header("Authorization", "Bearer nope");
        assert_eq!(check(&cfg, &wrong).unwrap_err().status(), 401);
        let missing = Request::new("GET", "/api/agents");
        assert_eq!(check(&cfg, &missing).unwrap_err().status(), 401);
        let basic = Request::new("GET", "/api/agents").with_header("Authorization", "Basic s3cret");
        assert_eq!(check(&cfg, &basic).unwrap_err().status(), 401);
    }
}
