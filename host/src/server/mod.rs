//! The HTTP server: hyper http/1.1 accept loop (keep-alive, one task per
//! connection), per-request instances, deadlines, request logging and graceful
//! shutdown.
//!
//! Per request: route the path, add Spin's `spin-*` headers, make a fresh store and
//! instance from the pre-instantiated component, and run `handle` on one of tokio's
//! blocking threads (where its SQLite calls run inline) while this side awaits the
//! response outparam. The response head is returned as soon as the guest sets it,
//! and the body streams from the still-running guest (SSE works). Two limits bound the
//! whole guest run, head and body (see [`crate::limits`]): its run time, which epoch
//! interruption enforces on a guest that computes forever, and its wall time, which a
//! tokio timeout enforces on one that waits forever (a guest `sleep` is an async wait in
//! the host, which uses no run time).
//!
//! [`accept`] holds the accept loop and the connection tasks, [`dispatch`] routes one
//! request and runs its component, [`body`] the response body that watches the
//! client and the run, and [`outcome`] how a run ended and the error answers the host
//! makes of it.

mod accept;
mod body;
mod dispatch;
mod outcome;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::conn_limit::ConnectionLimit;
use crate::error::ErrorBody;
use crate::instance::PreparedComponent;
use crate::routing::Router;

pub use accept::serve;

/// Everything the server needs to answer requests. Immutable once built.
pub struct App {
    /// Routes to component ids.
    pub router: Router,
    /// Prepared components by id (every routed id is present).
    pub components: HashMap<String, Arc<PreparedComponent>>,
    /// Run time one guest run may use (head and body; waits not counted).
    pub request_deadline: Duration,
    /// Wall time one guest run may last (head and body, waits included); never shorter
    /// than `request_deadline`.
    pub request_wall_limit: Duration,
    /// How long a client may take to send a request head (and how long a keep-alive
    /// connection may sit idle before its next one): slow-loris protection.
    pub header_read_timeout: Duration,
    /// Open connections per client address.
    pub connection_limit: Arc<ConnectionLimit>,
    /// Set when the host shuts down for good: every guest run, self requests
    /// included, ends.
    pub kill: watch::Sender<bool>,
    /// The `Host` a self request carries (the listener's address): what the app would
    /// see if it had called itself over the network, and never the incoming request's
    /// `Host`, which a client chooses.
    pub self_authority: String,
    /// The body of the answers the host makes on its own (see [`crate::error`]).
    pub error_body: ErrorBody,
}
