//! HTTP/1.1 to the server: where it is ([`Endpoint`]), and keep-alive connections over
//! the hyper 1 client, with TLS by tokio-rustls and the webpki roots.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;

/// Idle keep-alive connections older than this are not reused: a server or proxy may
/// have closed them, and a request sent on a closed connection cannot be told apart
/// from one the server executed, so it must not be retried.
const IDLE_REUSE: Duration = Duration::from_secs(20);

/// Where the server is: scheme, authority and the path prefix of its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// `host[:port]`, for the `Host` header and as the connection-reuse key.
    pub authority: String,
    /// The URL's path without a trailing `/` (usually empty).
    pub base_path: String,
}

impl Endpoint {
    /// `http://`, `https://` or `libsql://` (spoken as `https://`, as libSQL's clients do).
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("invalid libSQL URL {url:?}: {e}"))?;
        let tls = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("https") | Some("libsql") => true,
            Some("http") => false,
            _ => {
                return Err(format!(
                    "libSQL URL {url:?} must be http://, https:// or libsql://"
                ))
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("libSQL URL {url:?} has no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Endpoint {
            tls,
            host: host.to_string(),
            port,
            authority: authority.as_str().to_string(),
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    }
}

/// An open HTTP/1.1 connection's request handle, and since when it has been idle.
type IdleConnection = (SendRequest<Full<Bytes>>, Instant);

/// Keep-alive HTTP/1.1 connections to the server(s), reused one request at a time.
pub struct Http {
    /// By authority.
    idle: Mutex<HashMap<String, Vec<IdleConnection>>>,
    tls: tokio_rustls::TlsConnector,
}

impl Http {
    pub fn new() -> Http {
        let roots = tokio_rustls::rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let config = tokio_rustls::rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Http {
            idle: Mutex::new(HashMap::new()),
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }

    fn take_idle(&self, key: &str) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        while let Some((sender, since)) = list.pop() {
            if since.elapsed() < IDLE_REUSE && sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, key: &str, sender: SendRequest<Full<Bytes>>) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.entry(key.to_string())
                .or_default()
                .push((sender, Instant::now()));
        }
    }

    async fn connect(&self, ep: &Endpoint) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = tokio::net::TcpStream::connect((ep.host.as_str(), ep.port))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", ep.authority))?;
        let _ = tcp.set_nodelay(true);
        if ep.tls {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(ep.host.clone())
                .map_err(|e| format!("bad TLS server name {:?}: {e}", ep.host))?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {} failed: {e}", ep.authority))?;
            handshake(tls).await
        } else {
            handshake(tcp).await
        }
    }

    /// POST `body` to `path` and read the whole answer.
    pub async fn post(
        &self,
        ep: &Endpoint,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(http::StatusCode, Bytes), String> {
        let mut sender = match self.take_idle(&ep.authority) {
            Some(sender) => sender,
            None => self.connect(ep).await?,
        };
        let mut request = http::Request::post(format!("{}{path}", ep.base_path))
            .header(http::header::HOST, &ep.authority)
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("bad request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request to {} failed: {e}", ep.authority))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer of {} failed: {e}", ep.authority))?
            .to_bytes();
        if sender.is_ready() {
            self.put_idle(&ep.authority, sender);
        }
        Ok((status, body))
    }
}

async fn handshake<S>(io: S) -> Result<SendRequest<Full<Bytes>>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    // The connection task ends when the sender is dropped or the server closes.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let ep = Endpoint::parse("libsql://db-org.turso.io").unwrap();
        assert!(ep.tls);
        assert_eq!((ep.host.as_str(), ep.port), ("db-org.turso.io", 443));
        assert_eq!(ep.base_path, "");
        let ep = Endpoint::parse("http://127.0.0.1:8080/").unwrap();
        assert!(!ep.tls);
        assert_eq!(ep.authority, "127.0.0.1:8080");
        assert_eq!(ep.base_path, "");
        let ep = Endpoint::parse("https://proxy.example/db1/").unwrap();
        assert_eq!(ep.base_path, "/db1");
        assert!(Endpoint::parse("ftp://x").is_err());
    }
}
