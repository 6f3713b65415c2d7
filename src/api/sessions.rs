//! `/api/runtime/sessions` and `/api/runtime/sessions/{session_id}`.

use super::{list_page, not_found, Input, Open};
use crate::db::Database;
use crate::error::ApiError;
use crate::http::Response;
use crate::store::sessions::{self as store, SessionFilter};

pub fn list<D: Database>(open: impl Open<D>, input: &Input) -> Result<Response, ApiError> {
    let q = &input.query;
    let filter = SessionFilter {
        active: match q.get("active") {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(raw) => {
                return Err(ApiError::bad_query(
                    "active",
                    format!("active must be true or false (got {raw:?})"),
                ))
            }
        },
    };
    list_page(open, q, |db, page| store::list(db, &filter, page))
}

pub fn get<D: Database>(open: impl Open<D>, raw_session_id: &str) -> Result<Response, ApiError> {
    // A session id is free text: the path carries it percent-encoded. One that does not
    // decode to UTF-8 cannot be stored, so no run has it.
    let session_id =
        percent_decode(raw_session_id).ok_or_else(|| not_found("session", raw_session_id))?;
    match store::get(&open()?, &session_id)? {
        Some(session) => Ok(Response::json(200, &session)),
        None => Err(not_found("session", &session_id)),
    }
}

/// Decode `%XX` escapes of a path segment (`+` is a plus sign in a path, not a space).
/// A `%` not followed by two hex digits stands for itself, as browsers send it.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&hi), Some(&lo)) if hex(hi).is_some() && hex(lo).is_some() => {
                out.push((hex(hi)? * 16 + hex(lo)?) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn path_segments_are_percent_decoded_and_plus_stays_a_plus() {
        assert_eq!(percent_decode("adw%2F12%20x+y").unwrap(), "adw/12 x+y");
        assert_eq!(percent_decode("%E2%9C%93").unwrap(), "✓");
        assert_eq!(percent_decode("100%").unwrap(), "100%");
        assert_eq!(percent_decode("%zz").unwrap(), "%zz");
        assert_eq!(percent_decode("%FF"), None);
    }
}
