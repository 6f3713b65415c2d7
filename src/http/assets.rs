//! Serving files embedded in a component (the dashboard): the HTTP rules a browser expects
//! of static files, independent of which files they are.
//!
//! Each [`Asset`] carries its bytes, a gzip copy made at build time (so no request pays for
//! compression) and a strong ETag of its bytes. `GET` and `HEAD` answer the file, `304` when
//! `If-None-Match` names its ETag, the gzip copy when `Accept-Encoding` allows it (with
//! `Vary: Accept-Encoding`, so a cache keeps both). Files are revalidated on every use
//! (`Cache-Control: no-cache`): their names carry no hash, and a revalidation is a 304 of
//! a few bytes. An unknown path is the API's JSON 404; another method is a 405.

use crate::error::{ApiError, ErrorCode};

use super::{Request, Response};

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The path it answers, e.g. `/` or `/ui/app.js`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// The same bytes gzip-compressed, when that is smaller.
    pub gzip: Option<&'static [u8]>,
    /// A strong validator of `body`, quoted (`"…"`).
    pub etag: &'static str,
}

/// Answer `req` from `assets`.
pub fn serve(assets: &[Asset], req: &Request) -> Response {
    let Some(asset) = assets.iter().find(|a| a.path == req.path) else {
        return Response::error(&ApiError::not_found(format!("no route for {}", req.path)));
    };
    if req.method != "GET" && req.method != "HEAD" {
        let err = ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!(
                "{} is not allowed on {}; allowed: GET, HEAD",
                req.method, req.path
            ),
        );
        return Response::error(&err).with_header("allow", "GET, HEAD");
    }
    let common = |response: Response| {
        response
            .with_header("etag", asset.etag)
            .with_header("cache-control", "no-cache")
            .with_header("vary", "accept-encoding")
            .with_header("x-content-type-options", "nosniff")
    };
    if req
        .header("if-none-match")
        .is_some_and(|tags| etag_matches(tags, asset.etag))
    {
        return common(Response::empty(304));
    }
    let (body, gzipped) = match asset.gzip {
        Some(gzip) if accepts_gzip(req.header("accept-encoding").unwrap_or("")) => (gzip, true),
        _ => (asset.body, false),
    };
    let mut response = common(Response {
        status: 200,
        headers: vec![("content-type".into(), asset.content_type.into())],
        body: if req.method == "HEAD" {
            Vec::new()
        } else {
            body.to_vec()
        },
    });
    if gzipped {
        response = response.with_header("content-encoding", "gzip");
    }
    response
}

/// `If-None-Match`: `*` or a list of (possibly weak) tags; weak comparison, as RFC 9110
/// asks for this header.
fn etag_matches(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|tag| {
        tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag.trim_start_matches("W/")
    })
}

/// Whether `Accept-Encoding` allows gzip (a `q=0` refuses it).
fn accepts_gzip(header: &str) -> bool {
    header.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        if !coding.eq_ignore_ascii_case("gzip") && coding != "*" {
            return false;
        }
        !parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASSETS: &[Asset] = &[Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: b"<!doctype html>hello",
        gzip: Some(b"GZ"),
        etag: "\"abc\"",
    }];

    #[test]
    fn a_file_is_served_with_its_type_and_validator() {
        let res = serve(ASSETS, &Request::new("GET", "/"));
        assert_eq!(res.status, 200);
        assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(res.header("etag"), Some("\"abc\""));
        assert_eq!(res.body, b"<!doctype html>hello");
        assert_eq!(res.header("content-encoding"), None);
    }

    #[test]
    fn gzip_is_sent_only_when_the_client_accepts_it() {
        let req = Request::new("GET", "/").with_header("accept-encoding", "br, gzip");
        let res = serve(ASSETS, &req);
        assert_eq!(res.header("content-encoding"), Some("gzip"));
        assert_eq!(res.body, b"GZ");
        let refused = Request::new("GET", "/").with_header("accept-encoding", "gzip;q=0");
        assert_eq!(serve(ASSETS, &refused).body, b"<!doctype html>hello");
    }

    #[test]
    fn a_matching_if_none_match_is_a_304_without_body() {
        for tags in ["\"abc\"", "W/\"abc\"", "\"x\", \"abc\"", "*"] {
            let req = Request::new("GET", "/").with_header("if-none-match", tags);
            let res = serve(ASSETS, &req);
            assert_eq!(res.status, 304, "{tags}");
            assert!(res.body.is_empty());
        }
        let stale = Request::new("GET", "/").with_header("if-none-match", "\"old\"");
        assert_eq!(serve(ASSETS, &stale).status, 200);
    }

    #[test]
    fn unknown_paths_and_other_methods_get_the_api_error_shape() {
        let res = serve(ASSETS, &Request::new("GET", "/ui/nope.js"));
        assert_eq!(res.status, 404);
        assert_eq!(res.json_body()["error"]["code"], "not_found");
        let res = serve(ASSETS, &Request::new("POST", "/"));
        assert_eq!(res.status, 405);
        assert_eq!(res.header("allow"), Some("GET, HEAD"));
    }

    #[test]
    fn head_has_the_headers_and_no_body() {
        let res = serve(ASSETS, &Request::new("HEAD", "/"));
        assert_eq!(res.status, 200);
        assert!(res.body.is_empty());
        assert_eq!(res.header("etag"), Some("\"abc\""));
    }
}
