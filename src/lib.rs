//! The core of the agent orchestrator: everything the API does, independent of where it
//! runs. The Spin components (wasm) and the native tests and tools call the same functions
//! with a different [`db::Connector`]; there is no second implementation of any endpoint.
//!
//! - [`domain`]: types that can only exist valid (`AgentName`, `RunStatus`, `Page`, …).
//! - [`db`]: the SQLite seam (one small trait) and its native implementation.
//! - [`migrations`]: the embedded schema and its runner.
//! - [`store`]: the SQL, one module per table.
//! - [`http`]: request/response types and the cross-cutting rules (CORS, auth, parsing).
//! - [`ingest`]: Claude Code hooks and OpenTelemetry mapped onto runs, prompts and logs.
//! - [`api`]: the handlers and the one entry point, [`api::handle`], generic over the
//!   route group ([`api::groups`]: one type per component, so each links only its own).
//! - [`error`]: the error type and its JSON shape.

pub mod api;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod ingest;
pub mod migrations;
pub mod steering;
pub mod store;

pub use api::handle;
pub use error::{ApiError, ErrorCode};
pub use http::{Config, Group, Request, Response};
