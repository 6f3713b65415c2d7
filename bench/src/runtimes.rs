//! The two tokio runtimes of an in-process benchmark: the servers' and the load
//! generator's. Apart, so that [`crate::usage::threads_cpu_seconds`]`("server")` counts
//! what the server spent and nothing of the client, and the client's work never queues
//! behind a request being served.

use std::io::Result;

use tokio::runtime::{Builder, Runtime};

/// The servers' runtime, its threads named `server`; `threads` workers, or one per core.
pub fn server(threads: Option<usize>) -> Result<Runtime> {
    let mut builder = Builder::new_multi_thread();
    if let Some(threads) = threads {
        builder.worker_threads(threads.max(1));
    }
    builder.thread_name("server").enable_all().build()
}

/// The load generator's runtime, its threads named `client`.
pub fn client(threads: usize) -> Result<Runtime> {
    Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("client")
        .enable_all()
        .build()
}
