//! Serving one HTTP/1.1 connection of the public port with hyper, within budgets: the
//! request head must arrive within node.ini's `[limits] head_time` and be at most
//! [`MAX_HEAD_BYTES`]
//! (the same timer closes a kept-alive connection that stays idle), and a connection's
//! buffers are bounded. Bodies are read by the handlers, with their own deadline
//! (`api::read_body`).
//!
//! hyper answers requests it cannot parse (400, 414, 431) by itself, with an empty body;
//! [`JsonErrors`] gives those answers the `{"error", "reason"}` body every other error has,
//! and tells the guard.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest request head accepted (request line and headers).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest read buffer of one connection.
pub const MAX_BUF_BYTES: usize = 64 * 1024;

/// The hyper connection settings of the public port: a request head (or, between
/// requests, the next one) must arrive within `head_time`.
pub fn builder(head_time: Duration) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(head_time)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_BUF_BYTES)
        .keep_alive(true)
        .writev(false);
    b
}

/// The JSON answer for a response hyper wrote by itself, if `head` is one (a status 400,
/// 414 or 431 with an empty body), and its status.
fn rewrite(head: &[u8]) -> Option<(u16, Vec<u8>)> {
    if !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    let empty = text
        .split("\r\n")
        .any(|l| l.eq_ignore_ascii_case("content-length: 0"));
    let (error, reason) = match status {
        "400" => ("bad_request", "the request could not be parsed as HTTP/1.1"),
        "414" => ("uri_too_long", "the request's path is too long"),
        "431" => (
            "headers_too_large",
            "the request's head is larger than 16384 bytes",
        ),
        _ => return None,
    };
    if !empty {
        return None;
    }
    let body = serde_json::to_vec(&crate::api::ErrorBody {
        error: error.into(),
        reason: reason.into(),
    })
    .expect("plain struct");
    let mut out = Vec::with_capacity(head.len() + body.len() + 64);
    for line in text.trim_end_matches("\r\n").split("\r\n") {
        if !line.eq_ignore_ascii_case("content-length: 0") {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(
        format!(
            "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&body);
    Some((status.parse().ok()?, out))
}

/// A connection's stream, through which hyper's own error answers get JSON bodies (see the
/// module). `on_error` is told the status of each: a 400 may be an honest client's probe
/// (BitTorrent clients try an encrypted handshake first), a 414 or 431 is not.
pub struct JsonErrors<T, F> {
    inner: T,
    pending: Vec<u8>,
    sent: usize,
    on_error: F,
}

impl<T, F: FnMut(u16)> JsonErrors<T, F> {
    pub fn new(inner: T, on_error: F) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            sent: 0,
            on_error,
        }
    }
}

impl<T: AsyncWrite + Unpin, F: FnMut(u16) + Unpin> JsonErrors<T, F> {
    /// Writes out a rewritten answer still pending.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = std::task::ready!(
                Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.sent..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin, F: Unpin> AsyncRead for JsonErrors<T, F> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin, F: FnMut(u16) + Unpin> AsyncWrite for JsonErrors<T, F> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.drain(cx))?;
        if let Some((status, answer)) = rewrite(buf) {
            (self.on_error)(status);
            self.pending = answer;
            self.sent = 0;
            // The caller's bytes are taken; ours go out now or on the next flush.
            let _ = self.drain(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_empty_error_answers_get_json_bodies() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 21:00:00 GMT\r\n\r\n";
        let (status, out) = rewrite(head).unwrap();
        assert_eq!(status, 431);
        let out = String::from_utf8(out).unwrap();
        let (h, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(h.starts_with("HTTP/1.1 431 "));
        assert!(!h.contains("content-length: 0"));
        assert!(h.contains(&format!("content-length: {}", body.len())));
        let e: crate::api::ErrorBody = serde_json::from_str(body).unwrap();
        assert_eq!(e.error, "headers_too_large");
        for status in ["400 Bad Request", "414 URI Too Long"] {
            let head = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
            assert!(rewrite(head.as_bytes()).is_some(), "{status}");
        }
        // Everything else passes untouched: answers with bodies, other statuses, pieces.
        for other in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n",
            b"{\"records\":[]}",
        ] {
            assert_eq!(rewrite(other), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[tokio::test]
    async fn hyper_answers_an_oversized_head_with_json() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let errors = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = errors.clone();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let io = hyper_util::rt::TokioIo::new(JsonErrors::new(stream, move |status| {
                assert_eq!(status, 431);
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }));
            let svc = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(String::from("ok")))
            });
            let _ = builder(Duration::from_secs(20))
                .serve_connection(io, svc)
                .await;
        });
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let big = "x".repeat(MAX_HEAD_BYTES * 2);
        c.write_all(format!("GET /v1/info HTTP/1.1\r\nhost: a\r\nx-big: {big}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
        assert!(
            answer.contains("\"error\":\"headers_too_large\""),
            "{answer}"
        );
        assert_eq!(errors.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
