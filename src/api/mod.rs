//! The API: one entry point, [`handle`], applying the cross-cutting rules in the contract's
//! order (401, 404 route, 405, 413, 415, 400, 422, 404 id, 409), then the route's handler.
//! Each Spin component calls it with its own route group type ([`groups`]), so it links
//! only that group's handlers; tests and the native server call it with [`Group`](crate::http::Group), which
//! serves every route. There is no other implementation of any endpoint.

mod admin;
mod approvals;
mod definitions;
pub mod events;
pub mod groups;
mod logs;
mod meta;
pub mod openapi;
mod prompts;
mod runner;
mod runs;
mod sessions;

use crate::db::{autocommit_write, Connector, Database, DbError};
use crate::domain::{Id, Page};
use crate::error::{ApiError, ErrorCode};
use crate::http::{auth, cors, Config, JsonObject, Query, Request, Response, Route};
use groups::RouteGroup;

/// What a handler receives: the parsed query and, for POST/PUT/PATCH, the body object.
pub struct Input {
    pub query: Query,
    pub body: Option<JsonObject>,
}

impl Input {
    /// The body of a POST/PUT/PATCH (always present for those methods).
    pub fn body(&self) -> Result<&JsonObject, ApiError> {
        self.body
            .as_ref()
            .ok_or_else(|| ApiError::bad_request("request body is required"))
    }
}

/// What a request gets: a whole response, or a response head followed by a stream `S` of
/// body chunks (the Server-Sent Events feed).
pub enum Reply<S> {
    Full(Response),
    Stream(Response, S),
}

/// Answer one request for the routes of `group`, collecting a stream into the body (a
/// stream ends by itself, so this always returns). Hosts that can stream use [`respond`].
pub fn handle<G: RouteGroup, C: Connector + Clone>(
    group: G,
    connector: &C,
    config: &Config,
    req: &Request,
) -> Response {
    match respond(group, connector, config, req) {
        Reply::Full(response) => response,
        Reply::Stream(mut head, stream) => {
            for chunk in stream {
                head.body.extend_from_slice(&chunk);
            }
            head
        }
    }
}

/// Answer one request for the routes of `group`.
pub fn respond<G: RouteGroup, C: Connector + Clone>(
    group: G,
    connector: &C,
    config: &Config,
    req: &Request,
) -> Reply<G::Stream<C>> {
    let mut reply = if req.method == "OPTIONS" {
        // CORS preflights need no token and exist on every path.
        Reply::Full(cors::preflight(config, req))
    } else {
        match route(group, connector, config, req) {
            Ok(reply) => reply,
            // OTLP exporters read errors as OTLP's Status, in their own encoding.
            Err(err) if is_otlp(req) => Reply::Full(crate::ingest::otlp::error_response(req, &err)),
            Err(err) => Reply::Full(error_response(&err, None)),
        }
    };
    let head = match &mut reply {
        Reply::Full(response) | Reply::Stream(response, _) => response,
    };
    cors::decorate(config, req, head);
    reply
}

/// OTLP/HTTP's paths (`/v1/...`).
fn is_otlp(req: &Request) -> bool {
    req.path.starts_with("/v1/")
}

/// An error response; a 405 carries its `Allow` header.
fn error_response(err: &ApiError, allow: Option<&str>) -> Response {
    let response = Response::error(err);
    match allow {
        Some(allow) => response.with_header("allow", allow),
        None => response,
    }
}

fn route<G: RouteGroup, C: Connector + Clone>(
    group: G,
    connector: &C,
    config: &Config,
    req: &Request,
) -> Result<Reply<G::Stream<C>>, ApiError> {
    // OTLP's /v1/... is ingest, behind the same token as /api.
    if req.path == "/api" || req.path.starts_with("/api/") || req.path.starts_with("/v1/") {
        auth::check(config, req)?;
    }
    let route = Route::resolve(&req.path)
        .filter(|r| group.serves(r))
        .ok_or_else(|| ApiError::not_found(format!("no route for {}", req.path)))?;
    if !route.methods().contains(&req.method.as_str()) {
        let allow = route.methods().join(", ");
        let err = ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!(
                "{} is not allowed on {}; allowed: {allow}",
                req.method, req.path
            ),
        );
        let response = if is_otlp(req) {
            crate::ingest::otlp::error_response(req, &err).with_header("allow", allow)
        } else {
            error_response(&err, Some(&allow))
        };
        return Ok(Reply::Full(response));
    }
    // The prune's body is optional (a cron may send none).
    let optional_body = route == Route::AdminPrune && req.body.iter().all(u8::is_ascii_whitespace);
    let body = if optional_body {
        None
    } else if is_otlp(req) {
        // OTLP bodies are protobuf or JSON, checked by the ingest module.
        None
    } else if matches!(req.method.as_str(), "POST" | "PUT" | "PATCH") {
        Some(read_body(config, req)?)
    } else {
        None
    };
    let input = Input {
        query: Query::parse(&req.query),
        body,
    };
    // Query and body rules are checked before the database is touched: a rejected request
    // costs no connection and changes nothing.
    group.dispatch(&route, connector, config, req, &input)
}

/// Check size (413), media type (415) and syntax (400) of a request body, in that order.
fn read_body(config: &Config, req: &Request) -> Result<JsonObject, ApiError> {
    if req.body.len() > config.max_body_bytes {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body is over {} bytes", config.max_body_bytes),
        ));
    }
    let is_json = req.header("content-type").is_some_and(|ct| {
        let media = ct.split(';').next().unwrap_or("").trim();
        let media = media.to_ascii_lowercase();
        media == "application/json"
            || (media.starts_with("application/") && media.ends_with("+json"))
    });
    if !is_json && !req.body.is_empty() {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "request body must be JSON (Content-Type: application/json)",
        ));
    }
    JsonObject::parse(&req.body)
}

/// A path id: a non-UUID is simply an id that does not exist.
pub(crate) fn path_id(raw: &str, what: &str) -> Result<Id, ApiError> {
    Id::parse(raw).ok_or_else(|| not_found(what, raw))
}

pub(crate) fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::not_found(format!("{what} {id} not found"))
}

/// How a handler opens its (migrated) connection, once it knows it needs one: a request
/// refused before that (a bad id, a bad body) never touches the database.
pub trait Open<D>: FnOnce() -> Result<D, ApiError> {}

impl<D, F: FnOnce() -> Result<D, ApiError>> Open<D> for F {}

/// `GET` of a list: the page (`limit`, `offset`; after the caller's own filters), one
/// store read, 200.
pub(crate) fn list_page<D: Database, T: serde::Serialize>(
    open: impl Open<D>,
    query: &Query,
    list: impl FnOnce(&D, Page) -> Result<T, DbError>,
) -> Result<Response, ApiError> {
    let page = Page::parse(query.get("limit"), query.get("offset"))?;
    Ok(Response::json(200, &list(&open()?, page)?))
}

/// 200 with the resource a store call found, or the 404 naming it (`what` and the id as
/// the client wrote it).
pub(crate) fn found<T: serde::Serialize>(
    row: Option<T>,
    what: &str,
    raw_id: &str,
) -> Result<Response, ApiError> {
    match row {
        Some(row) => Ok(Response::json(200, &row)),
        None => Err(not_found(what, raw_id)),
    }
}

/// `GET /…/{id}` of a resource: the id parsed (a malformed one is the same 404 as an
/// unknown one), one store read, [`found`].
pub(crate) fn get_by_id<D: Database, T: serde::Serialize>(
    open: impl Open<D>,
    raw_id: &str,
    what: &str,
    get: impl FnOnce(&D, &Id) -> Result<Option<T>, DbError>,
) -> Result<Response, ApiError> {
    let id = path_id(raw_id, what)?;
    found(get(&open()?, &id)?, what, raw_id)
}

/// `DELETE /…/{id}` of a resource: one delete statement, sent again while busy
/// ([`autocommit_write`]); 204, or the 404 naming it.
pub(crate) fn delete_by_id<D: Database>(
    open: impl Open<D>,
    raw_id: &str,
    what: &str,
    delete: impl Fn(&D, &Id) -> Result<bool, DbError>,
) -> Result<Response, ApiError> {
    let id = path_id(raw_id, what)?;
    let db = open()?;
    if autocommit_write(|| delete(&db, &id))? {
        Ok(Response::empty(204))
    } else {
        Err(not_found(what, raw_id))
    }
}

/// 201 with the created resource and its `Location`.
pub(crate) fn created<T: serde::Serialize>(location: String, value: &T) -> Response {
    Response::json(201, value).with_header("location", location)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
