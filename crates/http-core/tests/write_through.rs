//! A large response body chunk leaves from the application's own buffer
//! (behind the gathered head, in one vectored write) instead of being
//! copied into the connection's write buffer; and the bytes on the wire
//! are the same whether the stream takes vectored writes or not, with a
//! length or chunked.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use kite_http_core::{serve_connection, HttpOptions, RequestBody};
use kite_transport_core::{Connection, ConnectionContext, ConnectionId, ConnectionIo, Endpoint};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

static LARGE: [u8; 100_000] = {
    let mut bytes = [0u8; 100_000];
    let mut i = 0;
    while i < bytes.len() {
        bytes[i] = b'a' + (i % 26) as u8;
        i += 1;
    }
    bytes
};

/// A stream that notes where every byte it was asked to write lives.
struct Recording {
    inner: DuplexStream,
    vectored: bool,
    from_large: Arc<Mutex<usize>>,
}

impl Recording {
    fn note(&self, slice: &[u8], written: usize) {
        let range = LARGE.as_ptr_range();
        if range.contains(&slice.as_ptr()) {
            *self.from_large.lock().unwrap() += written.min(slice.len());
        }
    }
}

impl AsyncRead for Recording {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Recording {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.note(buf, n);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        assert!(self.vectored, "a vectored write to a stream that said it takes none");
        // Write the slices one after another, as far as the pipe takes them.
        let mut total = 0;
        for slice in bufs {
            match Pin::new(&mut self.inner).poll_write(cx, slice) {
                Poll::Ready(Ok(n)) => {
                    self.note(slice, n);
                    total += n;
                    if n < slice.len() {
                        break;
                    }
                }
                Poll::Ready(Err(e)) if total == 0 => return Poll::Ready(Err(e)),
                Poll::Pending if total == 0 => return Poll::Pending,
                _ => break,
            }
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        self.vectored
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl ConnectionIo for Recording {}

/// Answers with `LARGE` as one chunk (a length) or as chunks (no length:
/// chunked): two large ones around a small one.
#[derive(Clone)]
struct Large {
    chunked: bool,
}

impl tower_service::Service<Request<RequestBody>> for Large {
    type Response = Response<http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<RequestBody>) -> Self::Future {
        let body = if self.chunked {
            let parts = [&LARGE[..40_000], &LARGE[40_000..40_010], &LARGE[40_010..]];
            Frames(parts.map(Bytes::from_static).into()).boxed_unsync()
        } else {
            Full::new(Bytes::from_static(&LARGE)).boxed_unsync()
        };
        std::future::ready(Ok(Response::new(body)))
    }
}

/// Serves one request over a `Recording` stream and returns what the
/// client received and how many bytes were written from `LARGE` itself.
async fn exchange(chunked: bool, vectored: bool) -> (Vec<u8>, usize) {
    let (server, mut client) = tokio::io::duplex(16 * 1024);
    let from_large = Arc::new(Mutex::new(0));
    let io = Recording { inner: server, vectored, from_large: from_large.clone() };
    let context = ConnectionContext::new(ConnectionId::next(), Endpoint::Unnamed, Endpoint::Unnamed, "memory");
    let serving = tokio::spawn(async move {
        let options = HttpOptions::default();
        serve_connection(Connection::new(Box::new(io), context), Large { chunked }, &options).await
    });
    client.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut received = Vec::new();
    client.read_to_end(&mut received).await.unwrap();
    serving.await.unwrap().expect("the connection ends cleanly");
    let from_large = *from_large.lock().unwrap();
    (received, from_large)
}

/// The body of an HTTP/1.1 response, decoding the chunked coding.
fn body_of(response: &[u8]) -> Vec<u8> {
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    let head = std::str::from_utf8(&response[..split]).unwrap().to_ascii_lowercase();
    let mut rest = &response[split..];
    if !head.contains("transfer-encoding: chunked") {
        assert!(head.contains(&format!("content-length: {}", rest.len())), "{head}");
        return rest.to_vec();
    }
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            assert_eq!(rest, b"\r\n");
            return body;
        }
        body.extend_from_slice(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n");
        rest = &rest[size + 2..];
    }
}

#[tokio::test]
async fn a_large_body_is_written_from_the_application_buffer() {
    for chunked in [false, true] {
        for vectored in [true, false] {
            let (response, from_large) = exchange(chunked, vectored).await;
            assert_eq!(body_of(&response), LARGE, "chunked {chunked}, vectored {vectored}");
            // The 10-byte chunk is small enough to be copied.
            let expected = if chunked { LARGE.len() - 10 } else { LARGE.len() };
            assert_eq!(from_large, expected, "chunked {chunked}, vectored {vectored}: bytes written in place");
        }
    }
}

/// A body of data frames and no length: sent chunked.
struct Frames(VecDeque<Bytes>);

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|data| Ok(http_body::Frame::data(data))))
    }
}
