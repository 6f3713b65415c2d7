//! Outbound HTTP (`wasi:http/outgoing-handler`) under Spin's `allowed_outbound_hosts`
//! rules; wasmtime-wasi-http's own client sends what is allowed.
//!
//! An entry is `scheme://host[:port]`: scheme `http`, `https` or `*`; host a name, an
//! address, `*`, or `*.domain` (any subdomain of it); port a number or `*`, and when
//! left out the scheme's default (a `*` scheme then needs one). `{{ variable }}`
//! templates are rendered with the application's variables. `insecure:allow-all`
//! allows everything. `http://self` (or `http://self.alt`) allows calls to the app's
//! own routes by the host name `self.alt`; they go to this host's own listener on
//! loopback. A request nothing allows fails with Spin's `HttpRequestDenied`, and a
//! hint naming the entry to add goes to stderr. Every request is bounded by the
//! deadline of the incoming request that made it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::variables::Template;

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    /// `None` is `*`.
    scheme: Option<String>,
    host: HostPattern,
    /// `None` is `*`.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`: the suffix with its leading dot, `.example.com`.
    Subdomain(String),
    Exact(String),
}

/// A component's parsed `allowed_outbound_hosts`.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
    allow_all: bool,
    allow_self: bool,
}

impl AllowedHosts {
    /// Parse `entries`, rendering templates with `lookup`. Errors name the entry.
    pub fn parse(entries: &[String], lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut out = AllowedHosts::default();
        for raw in entries {
            let entry = Template::parse(raw)?
                .render(&lookup)
                .map_err(|e| anyhow!("allowed_outbound_hosts entry `{raw}`: {e}"))?;
            let entry = entry.trim();
            if entry == "insecure:allow-all" {
                out.allow_all = true;
                continue;
            }
            if entry == "http://self" || entry == "http://self.alt" {
                out.allow_self = true;
                continue;
            }
            out.entries.push(
                parse_entry(entry)
                    .map_err(|e| anyhow!("allowed_outbound_hosts entry `{raw}`: {e}"))?,
            );
        }
        Ok(out)
    }

    /// Nothing is allowed: the component makes no outbound request.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && !self.allow_all && !self.allow_self
    }

    /// Whether `scheme://host:port` may be called.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.allow_all {
            return true;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.entries.iter().any(|e| {
            e.scheme
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case(scheme))
                && e.port.is_none_or(|p| p == port)
                && match &e.host {
                    HostPattern::Any => true,
                    HostPattern::Subdomain(suffix) => host
                        .to_ascii_lowercase()
                        .ends_with(&suffix.to_ascii_lowercase()),
                    HostPattern::Exact(h) => h.eq_ignore_ascii_case(host),
                }
        })
    }
}

fn parse_entry(entry: &str) -> Result<AllowedHost> {
    let (scheme, rest) = entry
        .split_once("://")
        .ok_or_else(|| anyhow!("needs a scheme, e.g. `https://{entry}`"))?;
    let scheme = match scheme {
        "*" => None,
        "http" | "https" => Some(scheme.to_string()),
        other => bail!("scheme `{other}` is not one this host can call (http, https or *)"),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') {
        bail!("must not have a path");
    }
    // The port is after the last `:`, unless that is inside an IPv6 literal.
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (rest, None),
    };
    let port = match port {
        Some("*") => None,
        Some(p) => Some(p.parse::<u16>().map_err(|_| anyhow!("bad port `{p}`"))?),
        None => match scheme.as_deref() {
            Some("http") => Some(80),
            Some("https") => Some(443),
            _ => bail!("a `*` scheme needs a port (e.g. `*://{host}:*`)"),
        },
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = match host {
        "" => bail!("has no host"),
        "*" => HostPattern::Any,
        h if h.starts_with("*.") => HostPattern::Subdomain(h[1..].to_string()),
        h if h.contains('*') => bail!("`*` is allowed only as the whole host or as `*.domain`"),
        h => HostPattern::Exact(h.to_string()),
    };
    Ok(AllowedHost { scheme, host, port })
}

/// The host name a component uses for its own app (`http://self.alt/route`).
const SELF_HOST: &str = "self.alt";

/// What every store's outbound HTTP hook of one component shares.
#[derive(Debug)]
pub struct OutboundConfig {
    /// The component id (named in the denial hint).
    pub component: String,
    /// Its parsed allow-list.
    pub allowed: AllowedHosts,
    /// This host's listener, once bound: where `self.alt` requests go.
    pub self_addr: Arc<OnceLock<SocketAddr>>,
}

/// The per-request hook: checks each request against the component's allow-list and
/// bounds it by the request's deadline.
pub struct OutboundHttp {
    config: Arc<OutboundConfig>,
    deadline: Instant,
}

impl OutboundHttp {
    /// The hook for one request that must finish by `deadline`.
    pub fn new(config: Arc<OutboundConfig>, deadline: Instant) -> Self {
        OutboundHttp { config, deadline }
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendResult = Result<(http::Response<WasiBody>, IoFuture), HttpError>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _io: IoFuture,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let uri = request.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("https").to_string();
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        let config = self.config.clone();

        if host.eq_ignore_ascii_case(SELF_HOST) {
            match (config.allowed.allow_self, config.self_addr.get()) {
                (true, Some(addr)) => {
                    let mut parts = uri.clone().into_parts();
                    parts.scheme = Some(http::uri::Scheme::HTTP);
                    parts.authority = addr.to_string().parse().ok();
                    match http::Uri::from_parts(parts) {
                        Ok(u) => *request.uri_mut() = u,
                        Err(_) => return Box::new(async { Err(HttpError::HttpRequestUriInvalid) }),
                    }
                    if let Ok(v) = http::HeaderValue::from_str(&addr.to_string()) {
                        request.headers_mut().insert(http::header::HOST, v);
                    }
                }
                _ => return deny(&config.component, "http://self", &uri),
            }
        } else if !config.allowed.allows(&scheme, &host, port) {
            let entry = if uri.port_u16().is_some() {
                format!("{scheme}://{host}:{port}")
            } else {
                format!("{scheme}://{host}")
            };
            return deny(&config.component, &entry, &uri);
        }

        let deadline = self.deadline;
        Box::new(async move {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HttpError::ConnectionTimeout);
            }
            let options = bounded(options, left);
            let sent = tokio::time::timeout(
                left,
                wasmtime_wasi_http::default_send_request(request, Some(options)),
            )
            .await
            .map_err(|_| HttpError::ConnectionTimeout)??;
            use http_body_util::BodyExt;
            let (response, io) = sent;
            tracing::debug!(component = %config.component, %uri, status = response.status().as_u16(), "outbound request");
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as IoFuture,
            ))
        })
    }
}

/// The guest's timeouts, none longer than what is left of the request's deadline.
fn bounded(options: Option<RequestOptions>, left: Duration) -> RequestOptions {
    let o = options.unwrap_or_default();
    let cap = |d: Option<Duration>| Some(d.map_or(left, |d| d.min(left)));
    RequestOptions {
        connect_timeout: cap(o.connect_timeout),
        first_byte_timeout: cap(o.first_byte_timeout),
        between_bytes_timeout: cap(o.between_bytes_timeout),
    }
}

fn deny(
    component: &str,
    entry: &str,
    uri: &http::Uri,
) -> Box<dyn Future<Output = SendResult> + Send> {
    // Spin prints the same advice: the denial reaches the guest as an error code, which
    // apps seldom show, so the fix must be visible to whoever runs the app.
    eprintln!(
        "A component tried to make an HTTP request to a non-allowed host ('{uri}'). To allow it, add `allowed_outbound_hosts = [\"{entry}\"]` to [component.{component}] in the manifest."
    );
    tracing::warn!(component, %uri, "outbound request denied (not in allowed_outbound_hosts)");
    Box::new(async { Err(HttpError::HttpRequestDenied) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        AllowedHosts::parse(&entries, |v| (v == "port").then(|| "8080".to_string())).unwrap()
    }

    #[test]
    fn exact_entries_use_the_schemes_default_port() {
        let h = hosts(&["https://api.example.com", "http://127.0.0.1:{{ port }}"]);
        assert!(h.allows("https", "api.example.com", 443));
        assert!(!h.allows("https", "api.example.com", 8443));
        assert!(!h.allows("http", "api.example.com", 443));
        assert!(h.allows("http", "127.0.0.1", 8080));
        assert!(!h.allows("http", "127.0.0.1", 80));
        assert!(!h.allows("https", "evil.com", 443));
    }

    #[test]
    fn wildcards() {
        let h = hosts(&["https://*.example.com"]);
        assert!(h.allows("https", "a.example.com", 443));
        assert!(h.allows("https", "a.b.example.com", 443));
        assert!(!h.allows("https", "example.com", 443));
        assert!(!h.allows("https", "badexample.com", 443));
        let all = hosts(&["*://*:*"]);
        assert!(all.allows("http", "anything", 1));
        assert!(all.allows("https", "x.y", 443));
        assert!(hosts(&["insecure:allow-all"]).allows("http", "x", 9));
        assert!(hosts(&["http://*:3000"]).allows("http", "h", 3000));
        assert!(!hosts(&["http://*:3000"]).allows("http", "h", 3001));
    }

    #[test]
    fn self_is_not_a_network_host() {
        let h = hosts(&["http://self"]);
        assert!(h.allow_self && !h.is_empty());
        assert!(!h.allows("http", "self", 80));
        assert!(hosts(&[]).is_empty());
    }

    #[test]
    fn bad_entries_are_named() {
        for (entry, needle) in [
            ("example.com", "needs a scheme"),
            ("https://example.com/path", "path"),
            ("ftp://example.com", "scheme `ftp`"),
            ("*://example.com", "needs a port"),
            ("https://ex*.com", "`*`"),
            ("https://x:99999", "bad port"),
            ("https://{{ missing }}", "missing"),
        ] {
            let e = AllowedHosts::parse(&[entry.to_string()], |_| None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(entry) && e.contains(needle), "{entry}: {e}");
        }
    }
}
