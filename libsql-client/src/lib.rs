//! A libSQL client: a libSQL server (`sqld`, Turso) spoken to over Hrana over HTTP,
//! version 3 with JSON bodies (`POST <url>/v3/pipeline`), through a bounded pool of
//! pinned streams. The Spin host serves `type = "libsql"` databases with it, and the
//! `orchestrator` CLI runs its native migrations with it, so a statement means the same
//! in a guest and natively.
//!
//! Why not the `libsql` crate (what Spin uses): with only its `remote` feature it still
//! brings hyper 0.14, http 0.2, rustls 0.22 and hyper-rustls 0.25 (a second HTTP and TLS
//! stack beside the hyper 1 / rustls 0.23 the host already has through wasmtime-wasi-http)
//! and libSQL's SQL parser; here the protocol is a few JSON shapes over the hyper 1 client
//! and tokio-rustls already in the build. See `docs/scale-out.md` for the numbers.
//!
//! Same semantics as a local file in the host's pool:
//! * a [`RemoteConnection`] pins one Hrana *stream* (one server-side connection, tied
//!   together by the baton the server hands back with every response) from
//!   [`RemotePool::acquire`] to drop, so `BEGIN IMMEDIATE … COMMIT` spans `execute` calls;
//! * at most `size` streams per database are open at once; `acquire` waits at most
//!   `wait` for one, then fails with [`Error::Exhausted`] ("pool exhausted");
//! * every HTTP exchange is bounded (`wait + busy_timeout`), so a stalled server ends in
//!   an error, never a hung request. Like every failure to reach the server, it is an
//!   [`Error::Server`] in words no SQLite error uses ("no answer from HOST within 10s",
//!   "cannot connect to HOST: …"), so a caller can tell "the server did not answer, try
//!   later" from a failed statement (the orchestrator's core answers those 503). A
//!   statement without an answer may still have run: it is never sent again;
//! * when the connection goes (dropped, or its task ended), its stream is closed with a
//!   `ROLLBACK` first if a transaction is still open — after any statement still in
//!   flight has come back, so the rollback cannot overtake it;
//! * a writer waits for the server's write lock as a file's writer waits with
//!   `busy_timeout`: a statement the server answers "database is locked"
//!   (`SQLITE_BUSY`) is sent again, with a short backoff, for up to the pool's
//!   `busy_timeout` — but only when resending is safe (see `connection.rs`);
//! * `PRAGMA busy_timeout = N` and `PRAGMA journal_mode = …` are refused with
//!   [`Error::Unsupported`] ("unsupported statement"), as libSQL's own client refuses
//!   them (the server, not the connection, decides how writers wait and how the log is
//!   kept), so the core's best-effort rule sees what it sees on Spin.
//!
//! The modules: `protocol` (the Hrana JSON shapes), `base64`, `transport` (keep-alive
//! HTTP/1.1 connections, TLS), `pool` (the bounded set of streams), `connection` (one
//! pinned stream, busy retries, cleanup), `error` and `value` (what callers see).

mod base64;
mod connection;
mod error;
mod pool;
mod protocol;
mod transport;
mod value;

#[cfg(feature = "fake-server")]
pub mod fake_server;

pub use connection::RemoteConnection;
pub use error::Error;
pub use pool::{PoolOptions, RemotePool};
pub use value::{QueryResult, Value};
