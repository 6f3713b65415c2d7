//! The seam between Spin and the core, shared by every component: the core's
//! [`Database`] trait over `spin:sqlite/sqlite@3.0.0`, the app's configuration from Spin
//! variables, and Spin's request/response types to the core's.
//!
//! Components stay a few lines: they name their route group's type and call [`serve`],
//! which is generic over it so that each component links only its own group's handlers.
//!
//! It also sets the components' global allocator ([`arena`]): a Spin instance lives
//! for one request, so most memory is better bump-allocated and never freed.

use futures::SinkExt;
use orchestrator_core::api::groups::RouteGroup;
use orchestrator_core::api::Reply;
use orchestrator_core::db::{Connector, Database, DbError, DbErrorKind, Rows, Value};
use orchestrator_core::{Config, ErrorCode, Request, Response};
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use spin_sdk::sqlite3;

pub mod arena;

#[global_allocator]
static ALLOCATOR: arena::RequestArena = arena::RequestArena;

/// Opens the `default` database through the host.
#[derive(Clone, Copy)]
pub struct SpinConnector;

/// One host connection.
pub struct SpinDatabase(sqlite3::Connection);

impl Connector for SpinConnector {
    type Db = SpinDatabase;
    fn connect(&self) -> Result<SpinDatabase, DbError> {
        sqlite3::Connection::open_default()
            .map(SpinDatabase)
            .map_err(convert_error)
    }
}

fn convert_error(err: sqlite3::Error) -> DbError {
    match err {
        // The host reports every SQLite failure as text; classify it by SQLite's message.
        sqlite3::Error::Io(message) => DbError::from_sqlite_message(message),
        other => DbError::new(DbErrorKind::Unavailable, format!("{other:?}")),
    }
}

impl Database for SpinDatabase {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let params: Vec<sqlite3::Value> = params
            .iter()
            .map(|p| match p {
                Value::Null => sqlite3::Value::Null,
                Value::Integer(n) => sqlite3::Value::Integer(*n),
                Value::Real(n) => sqlite3::Value::Real(*n),
                Value::Text(s) => sqlite3::Value::Text(s.clone()),
                Value::Blob(b) => sqlite3::Value::Blob(b.clone()),
            })
            .collect();
        let result = self.0.execute(sql, &params).map_err(convert_error)?;
        Ok(Rows {
            columns: result.columns,
            rows: result
                .rows
                .into_iter()
                .map(|row| {
                    row.values
                        .into_iter()
                        .map(|v| match v {
                            sqlite3::Value::Null => Value::Null,
                            sqlite3::Value::Integer(n) => Value::Integer(n),
                            sqlite3::Value::Real(n) => Value::Real(n),
                            sqlite3::Value::Text(s) => Value::Text(s),
                            sqlite3::Value::Blob(b) => Value::Blob(b),
                        })
                        .collect()
                })
                .collect(),
        })
    }
}

/// The app's configuration, from the component's Spin variables.
pub fn config() -> Result<Config, String> {
    Config::from_variables(|name| spin_sdk::variables::get(name).ok())
}

/// Serve one request for the routes of `group` (a type of `orchestrator_core::api::groups`).
/// A streaming reply (SSE) sends its head at once and each chunk as the core produces it.
pub async fn serve<G: RouteGroup>(group: G, req: IncomingRequest, out: ResponseOutparam) {
    let config = match config() {
        Ok(config) => config,
        Err(message) => {
            let err = orchestrator_core::ApiError::new(
                ErrorCode::Internal,
                format!("invalid configuration: {message}"),
            );
            return write_response(out, Response::error(&err), NO_STREAM).await;
        }
    };
    let request = read_request(req, config.max_body_bytes).await;
    match orchestrator_core::api::respond(group, &SpinConnector, &config, &request) {
        Reply::Full(response) => write_response(out, response, NO_STREAM).await,
        Reply::Stream(head, stream) => write_response(out, head, Some(stream)).await,
    }
}

/// Serve one request from files embedded in the component (the dashboard): no
/// configuration, no database, no token — the page must load before it can ask for one.
pub async fn serve_assets(
    assets: &[orchestrator_core::http::assets::Asset],
    req: IncomingRequest,
    out: ResponseOutparam,
) {
    // GET and HEAD only: no body is read.
    let request = read_request(req, 0).await;
    let response = orchestrator_core::http::assets::serve(assets, &request);
    write_response(out, response, NO_STREAM).await
}

/// Translate the request, reading at most `max_body + 1` body bytes: enough to tell that a
/// body is too large without holding all of it.
async fn read_request(req: IncomingRequest, max_body: usize) -> Request {
    let (path, query) = match req.path_with_query() {
        Some(pq) => match pq.split_once('?') {
            Some((p, q)) => (p.to_owned(), q.to_owned()),
            None => (pq, String::new()),
        },
        None => ("/".to_owned(), String::new()),
    };
    let headers: Vec<(String, String)> = req
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                String::from_utf8_lossy(&value).into_owned(),
            )
        })
        .collect();
    let method = req.method().to_string();
    let mut body = Vec::new();
    if matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
        use futures::StreamExt;
        let mut stream = req.into_body_stream();
        while let Some(Ok(chunk)) = stream.next().await {
            body.extend_from_slice(&chunk);
            if body.len() > max_body {
                body.truncate(max_body + 1);
                break;
            }
        }
    }
    Request {
        method,
        path,
        query,
        headers,
        body,
    }
}

/// A whole response: no chunks after the body.
const NO_STREAM: Option<std::iter::Empty<Vec<u8>>> = None;

async fn write_response(
    out: ResponseOutparam,
    response: Response,
    stream: Option<impl Iterator<Item = Vec<u8>>>,
) {
    let mut headers: Vec<(String, Vec<u8>)> = response
        .headers
        .into_iter()
        .map(|(name, value)| (name, value.into_bytes()))
        .collect();
    // A whole body has a known length: say so. Without it the host must send the body
    // chunked, and cannot end the response before the component has finished (one more
    // write, one more packet). Never on statuses that have no body.
    let bodiless = response.status < 200 || response.status == 204 || response.status == 304;
    if stream.is_none() && !bodiless {
        headers.push((
            "content-length".to_owned(),
            response.body.len().to_string().into_bytes(),
        ));
    }
    let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
    let outgoing = OutgoingResponse::new(fields);
    let _ = outgoing.set_status_code(response.status);
    let mut body = outgoing.take_body();
    out.set(outgoing);
    if !response.body.is_empty() && body.send(response.body).await.is_err() {
        return;
    }
    for chunk in stream.into_iter().flatten() {
        // The client went away: stop reading the feed for it.
        if body.send(chunk).await.is_err() {
            return;
        }
    }
}
