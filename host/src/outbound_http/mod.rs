//! Outbound HTTP (`wasi:http/outgoing-handler`) under Spin's `allowed_outbound_hosts`
//! rules; wasmtime-wasi-http's own client sends what is allowed to the network.
//!
//! An entry is `scheme://host[:port]`, as in Spin:
//! - scheme: `*` or a name (`http`, `https`; `postgres`, `redis`, ... are accepted, as
//!   Spin accepts them, and simply never match an HTTP request);
//! - host: a name or address, `*`, `*.domain` (any subdomain of it), an address range
//!   (`10.0.0.0/8`), or `self` / `self.alt` (the app itself);
//! - port: a number, `*`, or a range `3000..3010` (end excluded, Spin's form); left out,
//!   the scheme's well-known port (so a `*` scheme needs one).
//!
//! `{{ variable }}` templates are rendered with the application's variables first.
//! `insecure:allow-all` is refused, as Spin refuses it (`*://*:*` says the same).
//!
//! A request to the app itself, by a relative URL (`/hello`: the SDK sends it with an
//! authority of only a port, which wasmtime turns into `http://:80/hello`) or by the host
//! `self.alt`, is allowed by an entry for `self` (or by a `*` host) and served
//! in-process through the host's router ([`SelfHandler`]), never over the network: the
//! incoming request's `Host` plays no part (Spin's CVE-2024-32980 came from letting it).
//! Anything not allowed fails with Spin's `HttpRequestDenied`, and a line naming the
//! entry to add goes to stderr. Every request, self requests included, is bounded by the
//! wall-time limit of the incoming request that made it (see [`crate::limits`]): the
//! calling guest only waits meanwhile, which uses none of its run time, so a component
//! may wait on a slow upstream (a streamed model answer) as long as it may sleep; it can
//! always set shorter timeouts of its own. A self request also gets the run time its
//! caller has left: the two runs together use no more than the caller's.

pub(crate) mod capability;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::limits::{RunLimits, RunMeter};
use crate::variables::Template;

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    /// `None` is `*`; otherwise lowercase.
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`: the suffix with its leading dot, `.example.com`, lowercase.
    Subdomain(String),
    /// `self` or `self.alt`: only requests to the app itself.
    ToSelf,
    /// `10.0.0.0/8`, `fd00::/8`.
    Network(IpAddr, u8),
    /// A name (lowercase) or an address.
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    One(u16),
    /// `start..end`, end excluded.
    Range(u16, u16),
}

/// A component's parsed `allowed_outbound_hosts`.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

impl AllowedHosts {
    /// Parse `entries`, rendering templates with `lookup`. Errors name the entry.
    pub fn parse(entries: &[String], lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut out = AllowedHosts::default();
        for raw in entries {
            let entry = Template::parse(raw)?
                .render(&lookup)
                .map_err(|e| anyhow!("allowed_outbound_hosts entry `{raw}`: {e}"))?;
            out.entries.push(
                parse_entry(entry.trim())
                    .map_err(|e| anyhow!("allowed_outbound_hosts entry `{raw}`: {e}"))?,
            );
        }
        Ok(out)
    }

    /// Nothing is allowed: the component makes no outbound request.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `scheme://host:port` (on the network) may be called.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        self.entries.iter().any(|e| {
            e.scheme
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case(scheme))
                && match e.port {
                    PortPattern::Any => true,
                    PortPattern::One(p) => p == port,
                    PortPattern::Range(start, end) => (start..end).contains(&port),
                }
                && match &e.host {
                    HostPattern::Any => true,
                    HostPattern::Subdomain(suffix) => ip.is_none() && host.ends_with(suffix),
                    HostPattern::ToSelf => false,
                    HostPattern::Network(net, bits) => {
                        ip.is_some_and(|ip| in_network(ip, *net, *bits))
                    }
                    HostPattern::Exact(h) => match (ip, h.parse::<IpAddr>()) {
                        // `::1` and `0:0::1` are one address.
                        (Some(a), Ok(b)) => a == b,
                        _ => *h == host,
                    },
                }
        })
    }

    /// Whether the app may call itself (a relative URL or `self.alt`): an entry whose
    /// host is `self` or `*`, for `http` or `https`; its port plays no part (Spin's rule).
    pub fn allows_self(&self) -> bool {
        self.entries.iter().any(|e| {
            matches!(e.host, HostPattern::Any | HostPattern::ToSelf)
                && e.scheme
                    .as_deref()
                    .is_none_or(|s| s == "http" || s == "https")
        })
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// The port a scheme implies when an entry or URL names none (Spin's list).
fn well_known_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "http" => 80,
        "https" => 443,
        "postgres" => 5432,
        "mysql" => 3306,
        "redis" => 6379,
        "mqtt" => 1883,
        _ => return None,
    })
}

fn parse_entry(entry: &str) -> Result<AllowedHost> {
    if entry == "insecure:allow-all" {
        bail!("`insecure:allow-all` is not allowed (Spin refuses it too); use `*://*:*` to allow all outbound traffic");
    }
    let (scheme, rest) = entry.split_once("://").ok_or_else(|| {
        anyhow!("needs a scheme, e.g. `https://{entry}` (`*://*:*` allows everything)")
    })?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "*" && (scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphabetic())) {
        bail!("scheme `{scheme}` must be `*` or letters only");
    }
    // `host[:port][/]`, where the host may be `[v6]` or an address range `a.b.c.d/n`.
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| anyhow!("`[` without `]`"))?;
        let after = after.strip_suffix('/').unwrap_or(after);
        match after {
            "" => (host.to_string(), None),
            a => match a.strip_prefix(':') {
                Some(p) => (host.to_string(), Some(p.to_string())),
                None => bail!("unexpected `{a}` after the address"),
            },
        }
    } else {
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => (rest.to_string(), None),
        }
    };
    let port = match port.as_deref() {
        None | Some("") => match well_known_port(&scheme) {
            Some(p) => PortPattern::One(p),
            None if scheme == "*" => {
                bail!("a `*` scheme needs a port (e.g. `*://{host}:*`)")
            }
            None => {
                bail!("scheme `{scheme}` has no default port; add one (e.g. `:{{port}}` or `:*`)")
            }
        },
        Some("*") => PortPattern::Any,
        Some(p) if p.contains('/') => bail!("must not have a path"),
        Some(p) => match p.split_once("..") {
            Some((a, b)) => {
                let (Ok(start), Ok(end)) = (a.parse::<u16>(), b.parse::<u16>()) else {
                    bail!("bad port range `{p}` (written `3000..3010`, end excluded)");
                };
                if start >= end {
                    bail!("port range `{p}` is empty (the end is excluded)");
                }
                PortPattern::Range(start, end)
            }
            None if p.contains('-') => {
                bail!("bad port `{p}`: a range is written `start..end` (end excluded), as in Spin")
            }
            None => PortPattern::One(p.parse::<u16>().map_err(|_| anyhow!("bad port `{p}`"))?),
        },
    };
    let host = host.to_ascii_lowercase();
    let host = match host.as_str() {
        "" => bail!("has no host"),
        "*" => HostPattern::Any,
        "self" | "self.alt" => HostPattern::ToSelf,
        h if h.contains('/') => match h.split_once('/') {
            Some((addr, bits)) if addr.parse::<IpAddr>().is_ok() => {
                let addr: IpAddr = addr.parse()?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                match bits.parse::<u8>() {
                    Ok(b) if b <= max => HostPattern::Network(addr, b),
                    _ => bail!("bad address range `{h}`"),
                }
            }
            _ => bail!("must not have a path"),
        },
        h if h.starts_with("*.") && !h[2..].contains('*') && h.len() > 2 => {
            HostPattern::Subdomain(h[1..].to_string())
        }
        h if h.contains('*') => bail!("`*` is allowed only as the whole host or as `*.domain`"),
        h => HostPattern::Exact(h.to_string()),
    };
    Ok(AllowedHost {
        scheme: (scheme != "*").then_some(scheme),
        host,
        port,
    })
}

/// The host name a component may use for its own app (`http://self.alt/route`).
const SELF_HOST: &str = "self.alt";

/// A response future of the app's own router.
pub type SelfResponse =
    Pin<Box<dyn Future<Output = Result<http::Response<WasiBody>, HttpError>> + Send>>;

/// Serves a component's requests to its own app in-process (the server's router).
pub trait SelfHandler: Send + Sync {
    /// Answer `request` (origin-form: a path and query) as the app would answer a
    /// client, the guest run getting `limits` (run time left, wall limit).
    fn handle_self(
        self: Arc<Self>,
        request: http::Request<WasiBody>,
        limits: RunLimits,
    ) -> SelfResponse;
}

/// Where self requests go: set once the app is built (it holds the components, which
/// hold this; a weak reference keeps that from being a cycle).
pub type SelfSlot = Arc<OnceLock<Weak<dyn SelfHandler>>>;

/// What every store's outbound HTTP hook of one component shares.
pub struct OutboundConfig {
    /// The component id (named in the denial hint).
    pub component: String,
    /// Its parsed allow-list.
    pub allowed: AllowedHosts,
    /// The app, for self requests.
    pub self_handler: SelfSlot,
}

impl std::fmt::Debug for OutboundConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundConfig")
            .field("component", &self.component)
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

/// The per-request hook: checks each request against the component's allow-list and
/// bounds it by the request's limits.
pub struct OutboundHttp {
    config: Arc<OutboundConfig>,
    meter: Arc<RunMeter>,
}

impl OutboundHttp {
    /// The hook for one request, whose run `meter` accounts for.
    pub fn new(config: Arc<OutboundConfig>, meter: Arc<RunMeter>) -> Self {
        OutboundHttp { config, meter }
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendResult = Result<(http::Response<WasiBody>, IoFuture), HttpError>;

/// Whether `uri` names the app itself: no host (a relative URL, which wasmtime gives a
/// bare `:port` authority) or `self.alt`.
fn is_self_request(uri: &http::Uri) -> bool {
    uri.host()
        .is_none_or(|h| h.is_empty() || h.eq_ignore_ascii_case(SELF_HOST))
}

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _io: IoFuture,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let uri = request.uri().clone();
        let config = self.config.clone();
        let deadline = self.meter.limits().wall_at;

        if is_self_request(&uri) {
            if !config.allowed.allows_self() {
                return deny(&config.component, "http://self", &uri);
            }
            let limits = RunLimits {
                run_time: self.meter.run_time_left(),
                wall_at: deadline,
            };
            return send_to_self(config, request, limits);
        }

        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri
            .port_u16()
            .or_else(|| well_known_port(&scheme))
            .unwrap_or(443);
        if !config.allowed.allows(&scheme, &host, port) {
            let entry = if uri.port_u16().is_some() {
                format!("{scheme}://{host}:{port}")
            } else {
                format!("{scheme}://{host}")
            };
            return deny(&config.component, &entry, &uri);
        }

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

/// A self request, served by the app's router in this process.
fn send_to_self(
    config: Arc<OutboundConfig>,
    mut request: http::Request<WasiBody>,
    limits: RunLimits,
) -> Box<dyn Future<Output = SendResult> + Send> {
    let deadline = limits.wall_at;
    let Some(app) = config.self_handler.get().and_then(Weak::upgrade) else {
        // Only when the host is gone (or never finished starting): nothing serves it.
        tracing::warn!(component = %config.component, "self request while the app is not serving");
        return Box::new(async { Err(HttpError::HttpRequestUriInvalid) });
    };
    let uri = request.uri().clone();
    let origin_form = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    *request.uri_mut() = http::Uri::from(origin_form);
    Box::new(async move {
        if Instant::now() >= deadline {
            return Err(HttpError::ConnectionTimeout);
        }
        // The head must arrive by the wall limit; the body is bounded by the inner run,
        // whose own limits these are.
        let response = tokio::time::timeout_at(deadline.into(), app.handle_self(request, limits))
            .await
            .map_err(|_| HttpError::ConnectionReadTimeout)??;
        tracing::debug!(component = %config.component, %uri, status = response.status().as_u16(), "self request");
        Ok((response, Box::new(async { Ok(()) }) as IoFuture))
    })
}

/// The guest's timeouts, none longer than what is left of the request's wall limit.
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
    eprintln!("{}", denial_hint(component, entry, uri));
    tracing::warn!(component, %uri, entry, "outbound request denied (not in allowed_outbound_hosts)");
    Box::new(async { Err(HttpError::HttpRequestDenied) })
}

/// The line on stderr for a denied request: what was called and the entry to add.
fn denial_hint(component: &str, entry: &str, uri: &http::Uri) -> String {
    let shown = if is_self_request(uri) {
        format!(
            "its own app ('{}')",
            uri.path_and_query().map_or("/", |p| p.as_str())
        )
    } else {
        format!("a non-allowed host ('{uri}')")
    };
    format!(
        "A component tried to make an HTTP request to {shown}. To allow it, add `allowed_outbound_hosts = [\"{entry}\"]` to [component.{component}] in the manifest."
    )
}

#[cfg(test)]
mod tests;
