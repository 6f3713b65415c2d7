//! The response body's plumbing: the client's interest in a run (a client gone ends
//! it) and the guest's body, which fails instead of ending cleanly when the run did.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::outcome::Outcome;

/// Ends a guest run when dropped while the client still waits on it: before the
/// response head, or while its body is being read. Not once the body has been sent
/// whole (read to its end, or all of its `content-length`: hyper then stops reading),
/// and not when the body is never read (a `HEAD` request, a bodiless status): then the
/// run goes on to its own end, as in Spin, so work a component does after sending its
/// response is not cut short.
pub(super) struct ClientInterest {
    gone: Option<oneshot::Sender<()>>,
    /// Set when the client is gone, for checks that cannot await (SQLite's).
    gone_flag: Arc<AtomicBool>,
    /// The response head is out and the body is being read.
    reading: bool,
    headed: bool,
    /// Body bytes still to send, when the head declared a `content-length`.
    remaining: Option<u64>,
}

impl ClientInterest {
    /// The interest, and the future the guest run selects on: it resolves when the
    /// client is gone.
    pub(super) fn new() -> (Self, impl Future<Output = ()> + Send) {
        let (tx, rx) = oneshot::channel::<()>();
        let interest = ClientInterest {
            gone: Some(tx),
            gone_flag: Arc::new(AtomicBool::new(false)),
            reading: false,
            headed: false,
            remaining: None,
        };
        // A send means gone; the sender dropped without a send means the run keeps
        // going, so that case never resolves.
        let gone = async move {
            if rx.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        (interest, gone)
    }

    /// The flag set when the client is gone.
    pub(super) fn gone_flag(&self) -> Arc<AtomicBool> {
        self.gone_flag.clone()
    }

    /// The head is out (with the body's `content-length`, if it has one): from now on
    /// only a body dropped mid-read means gone.
    pub(super) fn headed(mut self, content_length: Option<u64>) -> Self {
        self.headed = true;
        self.remaining = content_length;
        if content_length == Some(0) {
            self.keep();
        }
        self
    }

    /// `n` more body bytes went out; all of a declared length means the body is whole.
    fn sent(&mut self, n: usize) {
        if let Some(remaining) = self.remaining.as_mut() {
            *remaining = remaining.saturating_sub(n as u64);
            if *remaining == 0 {
                self.keep();
            }
        }
    }

    /// The run may go on whatever happens to the client.
    pub(super) fn keep(&mut self) {
        self.gone = None;
    }
}

impl Drop for ClientInterest {
    fn drop(&mut self) {
        if let Some(gone) = self.gone.take() {
            if !self.headed || self.reading {
                self.gone_flag.store(true, Ordering::Relaxed);
                let _ = gone.send(());
            }
        }
    }
}

/// The guest's response body, which ends with an error (so hyper aborts the
/// connection instead of sending the final chunk) if the guest run failed after the
/// head was sent: a client must be able to tell a truncated body from a complete one.
pub(super) struct GuardedBody {
    pub(super) inner: HyperOutgoingBody,
    pub(super) outcome: Option<oneshot::Receiver<Outcome>>,
    /// Dropped with the body; see [`ClientInterest`].
    pub(super) interest: Option<ClientInterest>,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(interest) = this.interest.as_mut() {
            interest.reading = true;
        }
        if let Some(frame) = ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            if let (Some(interest), Ok(frame)) = (this.interest.as_mut(), &frame) {
                if let Some(data) = frame.data_ref() {
                    interest.sent(data.len());
                }
            }
            return Poll::Ready(Some(frame));
        }
        // Read to its end: the run is no longer the client's to end.
        if let Some(mut interest) = this.interest.take() {
            interest.keep();
        }
        // The body ended (finished, or its writer went away with the instance); the
        // run's outcome says whether that was complete.
        let Some(outcome) = this.outcome.as_mut() else {
            return Poll::Ready(None);
        };
        let result = ready!(Pin::new(outcome).poll(cx));
        this.outcome = None;
        match result {
            Ok(Outcome::Ok) => Poll::Ready(None),
            other => Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(
                format!("response body ended early: {other:?}"),
            ))))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.outcome.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
