//! HTTP side: one hyper connection per accepted socket, routing, the handshake rules
//! (token, origin), `/health`, and the upgrade into a WebSocket client task.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use subtle::ConstantTimeEq;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::hub::{normalize_origin, Hub, UpstreamState};

/// The one WebSocket path.
pub(crate) const WS_PATH: &str = "/ws/agent-status";

type Body = Full<Bytes>;

/// Serves one TCP connection until it closes or `stop` turns true (then in-flight requests
/// finish and the connection closes). `_alive` is held until the end so that `serve` can
/// wait for every connection; an upgraded WebSocket's task gets its own clone.
pub(crate) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    hub: Arc<Hub>,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    let service = {
        let stop = stop.clone();
        let alive = alive.clone();
        service_fn(move |req| {
            let response = handle(&hub, req, peer, &stop, &alive);
            async move { Ok::<_, Infallible>(response) }
        })
    };
    let conn = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "HTTP connection ended with an error");
            }
        }
        _ = crate::hub::stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
    drop(alive);
}

fn handle(
    hub: &Arc<Hub>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    stop: &watch::Receiver<bool>,
    alive: &mpsc::Sender<()>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    // Order as the API's: 401 (for /ws), 404, 405, then the rest.
    let is_ws_area = path == "/ws" || path.starts_with("/ws/");
    if is_ws_area && !authorized(hub, req.headers(), param("token")) {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid token is required: Authorization: Bearer TOKEN or ?token=TOKEN",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    match path.as_str() {
        "/health" => {
            if req.method() != Method::GET && req.method() != Method::HEAD {
                return method_not_allowed("GET, HEAD");
            }
            health(hub)
        }
        WS_PATH => {
            if req.method() != Method::GET {
                return method_not_allowed("GET");
            }
            if let Some(origin) = req.headers().get(header::ORIGIN) {
                if !origin_allowed(hub, origin) {
                    return error(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        &format!(
                            "origin {} is not allowed",
                            String::from_utf8_lossy(origin.as_bytes())
                        ),
                    );
                }
            }
            let after = match param("after") {
                None => None,
                Some(text) => match text.parse::<u64>() {
                    Ok(n) => Some(n),
                    Err(_) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "bad_request",
                            "after must be a non-negative integer cursor",
                        )
                    }
                },
            };
            let key = match websocket_key(req.headers()) {
                Ok(key) => key,
                Err(response) => return *response,
            };
            let on_upgrade = hyper::upgrade::on(&mut req);
            let hub = hub.clone();
            let stop = stop.clone();
            let alive = alive.clone();
            tokio::spawn(async move {
                let upgraded = match on_upgrade.await {
                    Ok(upgraded) => upgraded,
                    Err(error) => {
                        tracing::debug!(%peer, %error, "WebSocket upgrade failed");
                        return;
                    }
                };
                // Clients only send control frames; keep what one may make us buffer small.
                let config = WebSocketConfig {
                    max_message_size: Some(64 << 10),
                    max_frame_size: Some(64 << 10),
                    ..WebSocketConfig::default()
                };
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                crate::client::run(hub, ws, peer, after, stop).await;
                drop(alive);
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::CONNECTION, "upgrade")
                .header(header::UPGRADE, "websocket")
                .header(
                    header::SEC_WEBSOCKET_ACCEPT,
                    derive_accept_key(key.as_bytes()),
                )
                .body(Body::default())
                .expect("static response parts are valid")
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no route for {path}; the WebSocket is at {WS_PATH}"),
        ),
    }
}

/// `GET /health`: always 200 while the sidecar runs; says whether the upstream answers.
fn health(hub: &Hub) -> Response<Body> {
    let upstream = match hub.status().upstream {
        UpstreamState::Connected => "connected",
        UpstreamState::Connecting | UpstreamState::Unavailable { .. } => "unavailable",
    };
    json(
        StatusCode::OK,
        serde_json::json!({
            "status": "ok",
            "upstream": upstream,
            "cursor": hub.head(),
            "clients": hub.clients(),
            "poll_wait_secs": hub.poll_wait_secs(),
        }),
    )
}

/// With a token configured, the handshake must carry it as a bearer header or `?token=`.
/// Both are compared in constant time (for a given length).
fn authorized(hub: &Hub, headers: &HeaderMap, query_token: Option<&str>) -> bool {
    let Some(expected) = hub.token.as_deref() else {
        return true;
    };
    let matches = |given: &[u8]| bool::from(given.ct_eq(expected.as_bytes()));
    let from_header =
        headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .any(|value| match bearer(value.as_bytes()) {
                Some(token) => matches(token),
                None => false,
            });
    from_header || query_token.is_some_and(|t| matches(t.as_bytes()))
}

/// The token of an `Authorization: Bearer TOKEN` value (scheme case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let rest = rest.trim_ascii();
    (!rest.is_empty()).then_some(rest)
}

fn origin_allowed(hub: &Hub, origin: &HeaderValue) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = normalize_origin(origin);
    hub.allowed_origins
        .iter()
        .any(|allowed| allowed == "*" || *allowed == origin)
}

/// Checks an upgrade request (RFC 6455 §4.2.1) and returns its `Sec-WebSocket-Key`.
fn websocket_key(headers: &HeaderMap) -> Result<String, Box<Response<Body>>> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        let mut response = error(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "this endpoint speaks WebSocket only (Upgrade: websocket)",
        );
        response
            .headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return Err(Box::new(response));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        let mut response = error(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "only WebSocket version 13 is supported",
        );
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Err(Box::new(response));
    }
    match headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
    {
        Some(key) if !key.trim().is_empty() => Ok(key.trim().to_string()),
        _ => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "missing Sec-WebSocket-Key",
        ))),
    }
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("allowed: {allow}"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// The API's error shape: `{"error":{"code":..,"message":..}}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json(
        status,
        serde_json::json!({"error": {"code": code, "message": message}}),
    )
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(value.to_string()))
        .expect("static response parts are valid")
}
