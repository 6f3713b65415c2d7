//! The native server: hyper 1 (http/1.1, keep-alive) serving `orchestrator_core::api::handle`
//! over rusqlite, with no wasm anywhere. Same core functions as the components, same
//! per-request work (connect, connection pragmas, schema check, the handler), so the
//! difference to the host is the host's own cost: instantiation, WASI, the canonical ABI,
//! host calls, and the core compiled to wasm.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use orchestrator_core::db::native::NativeDatabase;
use orchestrator_core::db::{Connector, Database, DbError, Rows, Value};
use orchestrator_core::http::Route;
use orchestrator_core::{Config, Group, Request, Response};
use tokio::net::TcpListener;

/// A small pool of rusqlite connections on one file: a connection goes back on drop.
/// `connect` never waits: an empty pool opens a new connection (at most one per blocking
/// thread in use, so the pool stays small).
#[derive(Clone)]
pub struct PoolConnector {
    path: Arc<PathBuf>,
    idle: Arc<Mutex<Vec<NativeDatabase>>>,
}

impl PoolConnector {
    pub fn new(path: PathBuf) -> Self {
        PoolConnector {
            path: Arc::new(path),
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

/// A pooled connection.
pub struct PooledDb {
    db: Option<NativeDatabase>,
    idle: Arc<Mutex<Vec<NativeDatabase>>>,
}

impl Database for PooledDb {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        self.db
            .as_ref()
            .expect("present until drop")
            .execute(sql, params)
    }
}

impl Drop for PooledDb {
    fn drop(&mut self) {
        if let (Some(db), Ok(mut idle)) = (self.db.take(), self.idle.lock()) {
            idle.push(db);
        }
    }
}

impl Connector for PoolConnector {
    type Db = PooledDb;
    fn connect(&self) -> Result<PooledDb, DbError> {
        let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
        let db = match pooled {
            Some(db) => db,
            None => NativeDatabase::open(&self.path)?,
        };
        Ok(PooledDb {
            db: Some(db),
            idle: self.idle.clone(),
        })
    }
}

struct State {
    connector: PoolConnector,
    config: Config,
}

/// Bind `127.0.0.1:0` and serve the database at `path` until the runtime ends.
pub async fn start(path: PathBuf, config: Config) -> Result<SocketAddr> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(State {
        connector: PoolConnector::new(path),
        config,
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(answer(state, req).await) }
                });
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn answer(state: Arc<State>, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let max = state.config.max_body_bytes;
    // Like the adapter: read at most max + 1 bytes, enough to tell a body is too large.
    let body = match Limited::new(body, max + 1).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => vec![0; max + 1],
    };
    let request = Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    let group = Route::resolve(&request.path).map_or(Group::Meta, |r| r.group());
    let response = tokio::task::spawn_blocking(move || {
        orchestrator_core::api::handle(group, &state.connector, &state.config, &request)
    })
    .await
    .unwrap_or_else(|e| {
        Response::error(&orchestrator_core::ApiError::internal(format!(
            "handler panicked: {e}"
        )))
    });
    let mut builder = hyper::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(response.body)))
        .unwrap_or_else(|_| {
            let mut r = hyper::Response::new(Full::new(Bytes::new()));
            *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
}
