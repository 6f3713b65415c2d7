//! HTTP routing with Spin's semantics, and the `spin-*` request headers Spin sets.
//!
//! Routes are exact (`/health`), may contain single-segment captures (`/users/:id`),
//! and may end in a trailing wildcard (`/api/...`, which also matches `/api` itself).
//! The most specific matching route wins, segment by segment from the left: a literal
//! segment beats a `:name` capture, which beats the end of a route, which beats a
//! trailing wildcard. So `/one` beats `/...`, `/one/two/...` beats `/one/...`, and
//! `/api/items/...` beats `/api/:id` for `/api/items`. When two distinct routes are
//! equally specific, the one declared later wins; a route declared twice keeps its
//! last component (as Spin does, which also warns).
//!
//! The application base is always `/` (Spin 3 removed the `base` option), so the
//! "based" route equals the manifest route with one trailing `/` removed.

use std::cmp::Ordering;
use std::net::SocketAddr;

use anyhow::{bail, Result};

/// Spin's request header names (lowercase, as Spin sends them).
pub mod headers {
    /// The full URL of the request: scheme, host, path and query.
    pub const FULL_URL: &str = "spin-full-url";
    /// The part of the path matched by the trailing wildcard (empty for exact routes).
    pub const PATH_INFO: &str = "spin-path-info";
    /// The matched route, as written, combined with the base.
    pub const MATCHED_ROUTE: &str = "spin-matched-route";
    /// The application base path: always `/`.
    pub const BASE_PATH: &str = "spin-base-path";
    /// The matched route as written in the manifest, wildcard included.
    pub const RAW_COMPONENT_ROUTE: &str = "spin-raw-component-route";
    /// The matched route without its trailing `/...`.
    pub const COMPONENT_ROUTE: &str = "spin-component-route";
    /// The client's socket address, `ip:port`.
    pub const CLIENT_ADDR: &str = "spin-client-addr";
    /// Prefix of the per-capture headers: `spin-path-match-<name>`.
    pub const PATH_MATCH_PREFIX: &str = "spin-path-match-";
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Capture(String),
}

#[derive(Debug, Clone)]
struct Route {
    raw: String,
    based: String,
    segments: Vec<Segment>,
    wildcard: bool,
    component: String,
    /// Specificity key; see the module docs. Larger is more specific.
    rank: Vec<u8>,
}

/// A router built from `(route, component id)` pairs.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

/// The result of routing one path: which component, and what Spin tells it about
/// the match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    component_id: String,
    raw_route: String,
    based_route: String,
    named_wildcards: Vec<(String, String)>,
    trailing_wildcard: Option<String>,
}

const RANK_WILDCARD: u8 = 0;
const RANK_END: u8 = 1;
const RANK_CAPTURE: u8 = 2;
const RANK_LITERAL: u8 = 3;

/// Splits a path into segments, ignoring one leading and one trailing `/`.
fn split_path(path: &str) -> Vec<&str> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    }
}

impl Router {
    /// Build a router. Fails (naming the route and component) on a route that does not
    /// start with `/`, an empty `:` capture name, or `...` anywhere but at the end.
    pub fn build<I, R, C>(routes: I) -> Result<Router>
    where
        I: IntoIterator<Item = (R, C)>,
        R: Into<String>,
        C: Into<String>,
    {
        let mut out: Vec<Route> = Vec::new();
        for (raw, component) in routes {
            let raw = raw.into();
            let component = component.into();
            let route = parse_route(&raw, &component)?;
            if let Some(existing) = out.iter_mut().find(|r| r.raw == raw) {
                tracing::warn!(
                    route = %raw,
                    replaced = %existing.component,
                    effective = %component,
                    "duplicate route: the later component handles it"
                );
                *existing = route;
            } else {
                out.push(route);
            }
        }
        Ok(Router { routes: out })
    }

    /// The routes as `(route as written, component id)`, in declaration order.
    pub fn routes(&self) -> Vec<(String, String)> {
        self.routes
            .iter()
            .map(|r| (r.raw.clone(), r.component.clone()))
            .collect()
    }

    /// Route a request path (without query). `None` when no route matches.
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let segments = split_path(path);
        let mut best: Option<(&Route, Captures)> = None;
        for route in &self.routes {
            let Some(captures) = match_route(route, &segments, path) else {
                continue;
            };
            let better = match &best {
                None => true,
                // `>=`: among equally specific routes the later declaration wins.
                Some((b, _)) => route.rank.cmp(&b.rank) != Ordering::Less,
            };
            if better {
                best = Some((route, captures));
            }
        }
        best.map(|(route, (named_wildcards, trailing_wildcard))| RouteMatch {
            component_id: route.component.clone(),
            raw_route: route.raw.clone(),
            based_route: route.based.clone(),
            named_wildcards,
            trailing_wildcard,
        })
    }
}

fn parse_route(raw: &str, component: &str) -> Result<Route> {
    if !raw.starts_with('/') {
        bail!("route `{raw}` of component `{component}` must start with `/`");
    }
    // Base "/" contributes nothing; Spin strips one trailing slash from the route.
    let based = raw.strip_suffix('/').unwrap_or(raw).to_string();
    let (prefix, wildcard) = match based.strip_suffix("/...") {
        Some(p) => (p, true),
        None if based == "..." => ("", true),
        None => (based.as_str(), false),
    };
    let mut segments = Vec::new();
    for s in split_path(prefix) {
        if s == "..." {
            bail!("route `{raw}` of component `{component}`: `...` is only allowed at the end");
        }
        match s.strip_prefix(':') {
            Some("") => {
                bail!("route `{raw}` of component `{component}` has an unnamed `:` segment")
            }
            Some(name) => segments.push(Segment::Capture(name.to_string())),
            None => segments.push(Segment::Literal(s.to_string())),
        }
    }
    let mut rank: Vec<u8> = segments
        .iter()
        .map(|s| match s {
            Segment::Literal(_) => RANK_LITERAL,
            Segment::Capture(_) => RANK_CAPTURE,
        })
        .collect();
    rank.push(if wildcard { RANK_WILDCARD } else { RANK_END });
    Ok(Route {
        raw: raw.to_string(),
        based,
        segments,
        wildcard,
        component: component.to_string(),
        rank,
    })
}

type Captures = (Vec<(String, String)>, Option<String>);

fn match_route(route: &Route, segments: &[&str], path: &str) -> Option<Captures> {
    let n = route.segments.len();
    if segments.len() < n || (!route.wildcard && segments.len() != n) {
        return None;
    }
    let mut named = Vec::new();
    for (pattern, actual) in route.segments.iter().zip(segments) {
        match pattern {
            Segment::Literal(l) if l == actual => {}
            Segment::Literal(_) => return None,
            Segment::Capture(_) if actual.is_empty() => return None,
            Segment::Capture(name) => named.push((name.clone(), (*actual).to_string())),
        }
    }
    let trailing = route.wildcard.then(|| {
        // Spin's (backward compatible) path-info: the rest after the prefix, with a
        // leading `/`, keeping a trailing `/` if the request had one.
        let rest = segments[n..].join("/");
        match (rest.is_empty(), path.ends_with('/')) {
            (true, false) => String::new(),
            (true, true) => "/".to_string(),
            (false, false) => format!("/{rest}"),
            (false, true) => format!("/{rest}/"),
        }
    });
    Some((named, trailing))
}

impl RouteMatch {
    /// The component that handles the request.
    pub fn component_id(&self) -> &str {
        &self.component_id
    }

    /// The route as written in the manifest (`spin-raw-component-route`).
    pub fn raw_route(&self) -> &str {
        &self.raw_route
    }

    /// The route combined with the base `/` (`spin-matched-route`).
    pub fn based_route(&self) -> &str {
        &self.based_route
    }

    /// The route without a trailing `/...` (`spin-component-route`).
    pub fn component_route(&self) -> &str {
        self.raw_route
            .strip_suffix("/...")
            .unwrap_or(&self.raw_route)
    }

    /// The part matched by the trailing wildcard (`spin-path-info`); empty for exact
    /// routes.
    pub fn path_info(&self) -> &str {
        self.trailing_wildcard.as_deref().unwrap_or("")
    }

    /// The `:name` captures, in route order.
    pub fn named_wildcards(&self) -> &[(String, String)] {
        &self.named_wildcards
    }

    /// The `spin-*` headers Spin adds to the request, as `(lowercase name, value)`.
    ///
    /// `host` is the request's Host (Spin uses `localhost` if absent),
    /// `path_and_query` the request target. Capture names become header names the way
    /// Spin makes them: lowercased, `_` turned into `-`.
    pub fn spin_headers(
        &self,
        scheme: &str,
        host: &str,
        path_and_query: &str,
        client_addr: SocketAddr,
    ) -> Vec<(String, String)> {
        let mut out = vec![
            (headers::PATH_INFO.to_string(), self.path_info().to_string()),
            (
                headers::FULL_URL.to_string(),
                format!("{scheme}://{host}{path_and_query}"),
            ),
            (headers::MATCHED_ROUTE.to_string(), self.based_route.clone()),
            (headers::BASE_PATH.to_string(), "/".to_string()),
            (
                headers::RAW_COMPONENT_ROUTE.to_string(),
                self.raw_route.clone(),
            ),
            (
                headers::COMPONENT_ROUTE.to_string(),
                self.component_route().to_string(),
            ),
            (headers::CLIENT_ADDR.to_string(), client_addr.to_string()),
        ];
        for (name, value) in &self.named_wildcards {
            let name = name.to_ascii_lowercase().replace('_', "-");
            out.push((
                format!("{}{name}", headers::PATH_MATCH_PREFIX),
                value.clone(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        Router::build(routes.iter().map(|(r, c)| (*r, *c))).unwrap()
    }

    fn target(r: &Router, path: &str) -> Option<String> {
        r.route(path).map(|m| m.component_id().to_string())
    }

    #[test]
    fn exact_routes() {
        let r = router(&[("/foo", "foo"), ("/foo/bar", "foobar")]);
        assert_eq!(target(&r, "/foo").as_deref(), Some("foo"));
        assert_eq!(target(&r, "/foo/").as_deref(), Some("foo"));
        assert_eq!(target(&r, "/foo/bar").as_deref(), Some("foobar"));
        assert_eq!(target(&r, "/foo/bar/baz"), None);
        assert_eq!(target(&r, "/"), None);
        assert_eq!(r.route("/foo").unwrap().path_info(), "");
    }

    #[test]
    fn wildcards_match_prefix_and_below() {
        let r = router(&[("/foo/...", "foo")]);
        for p in ["/foo", "/foo/", "/foo/bar", "/foo/bar/baz/"] {
            assert_eq!(target(&r, p).as_deref(), Some("foo"), "{p}");
        }
        assert_eq!(target(&r, "/foobar"), None);
        assert_eq!(target(&r, "/"), None);
        let all = router(&[("/...", "all")]);
        for p in ["/", "/x", "/a/b/c/"] {
            assert_eq!(target(&all, p).as_deref(), Some("all"), "{p}");
        }
    }

    #[test]
    fn path_info_follows_spin() {
        let r = router(&[("/foo/...", "foo")]);
        let info = |p: &str| r.route(p).unwrap().path_info().to_string();
        assert_eq!(info("/foo"), "");
        assert_eq!(info("/foo/"), "/");
        assert_eq!(info("/foo/bar"), "/bar");
        assert_eq!(info("/foo/bar/"), "/bar/");
        assert_eq!(info("/foo/bar/baz"), "/bar/baz");
        let all = router(&[("/...", "all")]);
        assert_eq!(all.route("/").unwrap().path_info(), "/");
        assert_eq!(all.route("/a/b").unwrap().path_info(), "/a/b");
    }

    #[test]
    fn most_specific_wins_regardless_of_order() {
        let routes = [
            ("/one/...", "one"),
            ("/one/two/...", "onetwo"),
            ("/one/two/three/...", "onetwothree"),
        ];
        let r = router(&routes);
        assert_eq!(
            target(&r, "/one/two/three/four").as_deref(),
            Some("onetwothree")
        );
        let mut rev = routes;
        rev.reverse();
        let r = router(&rev);
        assert_eq!(
            target(&r, "/one/two/three/four").as_deref(),
            Some("onetwothree")
        );
        assert_eq!(target(&r, "/one/two").as_deref(), Some("onetwo"));
        assert_eq!(target(&r, "/one/x").as_deref(), Some("one"));
    }

    #[test]
    fn exact_beats_wildcard_and_literal_beats_capture() {
        let r = router(&[
            ("/...", "all"),
            ("/one", "one"),
            ("/api/:id", "by-id"),
            ("/api/items/...", "items"),
            ("/api/...", "api"),
            ("/users/:id/...", "user"),
            ("/users/me", "me"),
        ]);
        assert_eq!(target(&r, "/one").as_deref(), Some("one"));
        assert_eq!(target(&r, "/one/x").as_deref(), Some("all"));
        assert_eq!(target(&r, "/api/items").as_deref(), Some("items"));
        assert_eq!(target(&r, "/api/42").as_deref(), Some("by-id"));
        assert_eq!(target(&r, "/api/42/x").as_deref(), Some("api"));
        assert_eq!(target(&r, "/api").as_deref(), Some("api"));
        assert_eq!(target(&r, "/users/me").as_deref(), Some("me"));
        assert_eq!(target(&r, "/users/7/posts").as_deref(), Some("user"));
        assert_eq!(target(&r, "/nothing/here").as_deref(), Some("all"));
    }

    #[test]
    fn captures() {
        let r = router(&[("/users/:user_id/posts/:post", "p")]);
        let m = r.route("/users/42/posts/abc").unwrap();
        assert_eq!(
            m.named_wildcards(),
            &[
                ("user_id".to_string(), "42".to_string()),
                ("post".to_string(), "abc".to_string())
            ]
        );
        assert!(r.route("/users//posts/abc").is_none());
        assert!(r.route("/users/42/posts").is_none());
    }

    #[test]
    fn duplicate_route_last_wins() {
        let r = router(&[("/foo", "first"), ("/foo", "second")]);
        assert_eq!(target(&r, "/foo").as_deref(), Some("second"));
        assert_eq!(r.routes().len(), 1);
    }

    #[test]
    fn bad_routes_are_rejected() {
        assert!(Router::build([("foo", "c")]).is_err());
        assert!(Router::build([("/a/.../b", "c")]).is_err());
        assert!(Router::build([("/a/:", "c")]).is_err());
    }

    fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
        &h.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn spin_headers_match_spin_for_wildcards() {
        let r = router(&[("/foo/...", "c")]);
        let m = r.route("/foo/bar").unwrap();
        let addr: SocketAddr = "127.0.0.1:8777".parse().unwrap();
        let h = m.spin_headers(
            "https",
            "fermyon.dev",
            "/foo/bar?key1=value1&key2=value2",
            addr,
        );
        assert_eq!(
            header(&h, "spin-full-url"),
            "https://fermyon.dev/foo/bar?key1=value1&key2=value2"
        );
        assert_eq!(header(&h, "spin-path-info"), "/bar");
        assert_eq!(header(&h, "spin-matched-route"), "/foo/...");
        assert_eq!(header(&h, "spin-base-path"), "/");
        assert_eq!(header(&h, "spin-raw-component-route"), "/foo/...");
        assert_eq!(header(&h, "spin-component-route"), "/foo");
        assert_eq!(header(&h, "spin-client-addr"), "127.0.0.1:8777");
    }

    #[test]
    fn spin_headers_with_captures() {
        let r = router(&[("/foo/:userid/...", "c"), ("/x/:user_id", "d")]);
        let addr: SocketAddr = "127.0.0.1:8777".parse().unwrap();
        let m = r.route("/foo/42/bar").unwrap();
        let h = m.spin_headers("http", "h", "/foo/42/bar", addr);
        assert_eq!(header(&h, "spin-path-info"), "/bar");
        assert_eq!(header(&h, "spin-matched-route"), "/foo/:userid/...");
        assert_eq!(header(&h, "spin-component-route"), "/foo/:userid");
        assert_eq!(header(&h, "spin-path-match-userid"), "42");
        let m = r.route("/x/7").unwrap();
        let h = m.spin_headers("http", "h", "/x/7", addr);
        assert_eq!(header(&h, "spin-path-match-user-id"), "7");
        assert_eq!(header(&h, "spin-path-info"), "");
        assert_eq!(header(&h, "spin-component-route"), "/x/:user_id");
    }

    #[test]
    fn exact_route_headers_and_trailing_slash() {
        let r = router(&[("/health/", "h")]);
        let m = r.route("/health").unwrap();
        assert_eq!(m.based_route(), "/health");
        assert_eq!(m.raw_route(), "/health/");
    }
}
