//! The accept loop: one task per connection, the per-client connection cap, the
//! slow-loris timeout, malformed requests answered, and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::dispatch::handle;
use super::App;
use crate::conn_limit::Admitted;
use crate::error::{ErrorBody, HostErrorKind};
use crate::parse_errors::{Owed, ParseErrorIo};

/// Serve `listener` until `shutdown` resolves. Then stop accepting, let open
/// connections finish their in-flight requests within `grace` (idle keep-alive
/// connections close at once), end whatever is still running, and return once the
/// guest tasks have been told to stop.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    // `stop`: connections finish in-flight requests and close; `kill`: guest runs end now.
    let (stop_tx, stop_rx) = watch::channel(false);
    let kill_rx = app.kill.subscribe();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, client)) => match app.connection_limit.admit(client.ip()) {
                    Some(admitted) => {
                        connections.spawn(serve_connection(
                            stream,
                            client,
                            admitted,
                            app.clone(),
                            stop_rx.clone(),
                            kill_rx.clone(),
                        ));
                    }
                    None => {
                        connections.spawn(refuse_connection(
                            stream,
                            client,
                            app.connection_limit.max(),
                            app.error_body,
                        ));
                    }
                },
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Reap finished connection tasks so the set does not grow forever.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    tracing::info!(
        connections = connections.len(),
        "shutting down: no longer accepting"
    );
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(grace, drain(&mut connections))
        .await
        .is_ok();
    // Always tell guest runs to end: some may have lost their connection but still
    // be running (up to their deadline) and holding database connections.
    app.kill.send_replace(true);
    if !drained {
        tracing::warn!(
            remaining = connections.len(),
            "shutdown grace elapsed; ending in-flight requests"
        );
        // Killed runs answer 503 or end their body; give that a moment, then cut.
        let _ = tokio::time::timeout(Duration::from_secs(1), drain(&mut connections)).await;
        connections.shutdown().await;
    }
}

async fn drain(set: &mut JoinSet<()>) {
    while set.join_next().await.is_some() {}
}

/// How long the host tries to hand a client its error before closing anyway.
const ERROR_WRITE_PATIENCE: Duration = Duration::from_secs(1);

async fn serve_connection(
    mut stream: TcpStream,
    client: SocketAddr,
    _admitted: Admitted,
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
    kill: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let owed = Owed::default();
    let header_read_timeout = app.header_read_timeout;
    let error_body = app.error_body;
    let service = {
        let owed = owed.clone();
        hyper::service::service_fn(move |req| {
            owed.called();
            let app = app.clone();
            let kill = kill.clone();
            async move { Ok::<_, Infallible>(handle(app, req, client, kill).await) }
        })
    };
    let mut io = TokioIo::new(ParseErrorIo::new(&mut stream, owed));
    let result = {
        let conn = http1::Builder::new()
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(&mut io, service);
        tokio::pin!(conn);
        let stopped = async {
            // The watch `Ref` must not live across the await below (it is not `Send`).
            let _ = stop.wait_for(|stop| *stop).await;
        };
        tokio::select! {
            result = conn.as_mut() => result,
            () = stopped => {
                // Finish the request in flight (if any), then close.
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    };
    let refused = io.inner().refused();
    if let Err(e) = &result {
        if e.is_timeout() {
            tracing::info!(client = %client, "request head not received in time; connection closed");
        } else {
            tracing::debug!(client = %client, error = %e, "connection ended with an error");
        }
    }
    if let Some(status) = refused {
        tracing::info!(
            client = %client,
            status = status.as_u16(),
            error = %result.as_ref().err().map(ToString::to_string).unwrap_or_default(),
            "malformed request refused"
        );
        crate::parse_errors::answer(
            &mut stream,
            status,
            result.as_ref().err(),
            error_body,
            ERROR_WRITE_PATIENCE,
        )
        .await;
    }
}

/// A connection over the per-client cap: a 503 in the API's shape, then closed, without
/// reading the request.
async fn refuse_connection(
    mut stream: TcpStream,
    client: SocketAddr,
    max: usize,
    error_body: ErrorBody,
) {
    tracing::warn!(client = %client, max, "too many connections from one client; refused");
    let body = error_body.render(
        HostErrorKind::Unavailable,
        &format!(
            "too many open connections from {} (at most {max})",
            client.ip()
        ),
    );
    let bytes = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        error_body.content_type(),
        body.len()
    );
    crate::parse_errors::write_and_close(&mut stream, bytes.as_bytes(), ERROR_WRITE_PATIENCE).await;
}
