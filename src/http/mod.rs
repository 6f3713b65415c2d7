//! HTTP-neutral request and response types, and the cross-cutting rules every route obeys
//! (configuration, routing, CORS, auth, body and query parsing). Components translate
//! Spin's types to these and back; tests build them directly.

pub mod assets;
pub mod auth;
pub mod config;
pub mod cors;
pub mod input;
pub mod query;
pub mod router;

pub use config::Config;
pub use input::{Field, JsonObject};
pub use query::Query;
pub use router::{Group, Route};

use serde::Serialize;

use crate::error::ApiError;

/// A request as the core sees it. Header names are lowercase.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The raw query string, without the `?`.
    pub query: String,
    pub headers: Vec<(String, String)>,
    /// The body, read up to `max_body_bytes + 1` so that an oversized body is detectable
    /// without reading all of it.
    pub body: Vec<u8>,
}

impl Request {
    /// A request with a method and a path that may carry a query string.
    pub fn new(method: &str, path_and_query: &str) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Request {
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            query: query.to_owned(),
            ..Default::default()
        }
    }

    /// Add a header (name is lowercased).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// A JSON body with its `Content-Type`.
    pub fn with_json(self, body: &serde_json::Value) -> Self {
        let mut req = self.with_header("content-type", "application/json");
        req.body = body.to_string().into_bytes();
        req
    }

    /// The first value of a header, by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response as the core produces it.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Response {
                status,
                headers: vec![("content-type".into(), "application/json".into())],
                body,
            },
            Err(e) => Response::error(&ApiError::internal(format!("cannot encode JSON: {e}"))),
        }
    }

    /// An empty response (204).
    pub fn empty(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The contract's error shape.
    pub fn error(err: &ApiError) -> Self {
        Response::json(err.status(), &err.to_json())
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The first value of a header, by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (`null` when empty or not JSON); for tests and tools.
    pub fn json_body(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}
