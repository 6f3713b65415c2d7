//! The host's error answer (in the body the app chose) for requests hyper itself
//! refuses.
//!
//! hyper answers a request head it cannot parse (a garbage request line, a bad header or
//! `Content-Length`, too many or too large headers, an over-long target) on its own, with
//! a bodiless 400, 431 or 414, and closes the connection; it has no hook for the body.
//! So the connection's I/O goes through [`ParseErrorIo`], which recognises that automatic
//! response and holds it back, and [`answer`] then writes the same status with the
//! host's error body (see [`crate::error::ErrorBody`]), naming hyper's reason.
//!
//! How the automatic response is told from the application's: hyper calls the service
//! for every request it parsed and writes that request's response head before any other
//! response, so a response head written while no service call is owed a response is
//! hyper's own. It is recognised at the start of a write, which is where hyper's flush
//! after each response puts it; an automatic response that shared a write with the tail
//! of the previous response (pipelined garbage) goes out bare, as before.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::error::{ErrorBody, HostErrorKind};

/// Service calls whose response head has not been written yet. The service counts a
/// call in with [`Owed::called`]; [`ParseErrorIo`] counts it out at its response head.
#[derive(Clone, Debug, Default)]
pub struct Owed(Arc<AtomicUsize>);

impl Owed {
    /// hyper handed a parsed request to the service.
    pub fn called(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// The connection's stream, as hyper reads and writes it.
pub struct ParseErrorIo<'a> {
    stream: &'a mut TcpStream,
    owed: Owed,
    /// The status of the automatic response held back, once there is one; every later
    /// write of the connection is dropped too (hyper closes it after that response).
    refused: Option<StatusCode>,
}

impl<'a> ParseErrorIo<'a> {
    /// `owed` is shared with the connection's service.
    pub fn new(stream: &'a mut TcpStream, owed: Owed) -> Self {
        ParseErrorIo {
            stream,
            owed,
            refused: None,
        }
    }

    /// The status hyper answered on its own, if it did.
    pub fn refused(&self) -> Option<StatusCode> {
        self.refused
    }

    /// Looks at the start of a write: hyper's automatic response (then held back: true),
    /// or the head of a response the service owes (counted out).
    fn inspect(&mut self, start: &[u8]) -> bool {
        if self.refused.is_some() {
            return true;
        }
        if !start.starts_with(b"HTTP/1.") || start.get(9) == Some(&b'1') {
            // Body bytes, or an informational head (`100 Continue`) that precedes the
            // real response.
            return false;
        }
        let owed = self
            .owed
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if owed.is_ok() {
            return false;
        }
        self.refused = automatic_status(start);
        self.refused.is_some()
    }
}

/// The status of hyper's automatic response, if `head` is one: 400, 414 or 431 with
/// `content-length: 0` (what hyper sends after a parse error).
fn automatic_status(head: &[u8]) -> Option<StatusCode> {
    let code = head.get(9..12)?;
    let status = match code {
        b"400" => StatusCode::BAD_REQUEST,
        b"414" => StatusCode::URI_TOO_LONG,
        b"431" => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        _ => return None,
    };
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = &head[..end + 2];
    head.windows(19)
        .any(|w| w.eq_ignore_ascii_case(b"content-length: 0\r\n"))
        .then_some(status)
}

impl AsyncRead for ParseErrorIo<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ParseErrorIo<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.inspect(buf) {
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut *self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
        if self.inspect(first) {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        Pin::new(&mut *self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // After its automatic response hyper closes the write side; the JSON answer
        // still has to go out there, so [`answer`] closes it instead.
        if self.refused.is_some() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut *self.stream).poll_shutdown(cx)
    }
}

/// The complete response for a request hyper refused with `status`; `reason` is hyper's
/// error (e.g. "invalid content-length parsed"), if the connection reported one.
pub fn response_bytes(
    status: StatusCode,
    reason: Option<&hyper::Error>,
    error_body: ErrorBody,
) -> Vec<u8> {
    let (kind, what) = match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            HostErrorKind::HeadersTooLarge,
            "the request's headers are too many or too large",
        ),
        StatusCode::URI_TOO_LONG => (HostErrorKind::UriTooLong, "the request target is too long"),
        _ => (HostErrorKind::BadRequest, "malformed HTTP request"),
    };
    let message = match reason {
        Some(reason) => format!("{what}: {reason}"),
        None => what.to_string(),
    };
    let body = error_body.render(kind, &message);
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        error_body.content_type(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Writes the error answer for a refused request and closes the connection; bounded by
/// `patience` so a client that does not read cannot hold the connection.
pub async fn answer(
    stream: &mut TcpStream,
    status: StatusCode,
    reason: Option<&hyper::Error>,
    error_body: ErrorBody,
    patience: std::time::Duration,
) {
    write_and_close(
        stream,
        &response_bytes(status, reason, error_body),
        patience,
    )
    .await;
}

/// Most request bytes read and dropped after an error answer, see [`write_and_close`].
const LINGER_BYTES: usize = 1 << 20;

/// Writes `bytes`, closes the write side, then reads and drops what the client still
/// sends (at most [`LINGER_BYTES`], until `patience` runs out): closing a socket with
/// unread input makes the kernel send a reset, and a reset makes the client's kernel
/// drop the answer it has not read yet. All of it bounded by `patience`.
pub async fn write_and_close(stream: &mut TcpStream, bytes: &[u8], patience: std::time::Duration) {
    let work = async {
        stream.write_all(bytes).await?;
        stream.shutdown().await?;
        let mut scratch = vec![0u8; 16 * 1024];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut scratch).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, io::Error>(())
    };
    if let Ok(Err(e)) = tokio::time::timeout(patience, work).await {
        tracing::debug!(error = %e, "could not send an error answer");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_automatic_heads_are_recognised() {
        let head =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(
            automatic_status(head),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let head = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(automatic_status(head), Some(StatusCode::BAD_REQUEST));
        // A head with a body, or another status, is not hyper's.
        let head = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n";
        assert_eq!(automatic_status(head), None);
        let head = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(automatic_status(head), None);
    }

    #[test]
    fn the_answer_has_the_body_the_app_chose() {
        let bytes = response_bytes(StatusCode::URI_TOO_LONG, None, ErrorBody::PlainText);
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("content-type: text/plain"), "{head}");
        assert_eq!(body, "the request target is too long");
        let bytes = response_bytes(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            None,
            ErrorBody::Json,
        );
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "bad_request");
    }
}
