//! An HTTP/2 stream as a byte stream (RFC 8441's tunnel), for a
//! WebSocket client over h2's client.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An HTTP/2 stream as a byte stream, for tungstenite on the client side.
pub struct H2Stream {
    pub send: h2::SendStream<Bytes>,
    pub recv: h2::RecvStream,
    pub pending: Bytes,
}

impl AsyncRead for H2Stream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.pending.is_empty() {
            match self.recv.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    self.pending = data;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(std::io::Error::other(e))),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.pending.len().min(buf.remaining());
        let chunk = self.pending.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.send.reserve_capacity(buf.len());
        match self.send.poll_capacity(cx) {
            Poll::Ready(Some(Ok(n))) if n > 0 => {
                let n = n.min(buf.len());
                self.send.send_data(Bytes::copy_from_slice(&buf[..n]), false).map_err(std::io::Error::other)?;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Err(std::io::Error::other(e))),
            Poll::Ready(None) => Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
            _ => Poll::Pending,
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let _ = self.send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}

/// Speaks HTTP/2 on `io` (h2c, or TLS that agreed on h2) to the server at
/// `origin` (`http://ADDR` or `https://localhost:PORT`) and opens a
/// WebSocket tunnel to `path` by extended CONNECT, with `headers` beside
/// `sec-websocket-version: 13`. An ordinary `GET /plaintext` goes first,
/// so the server's SETTINGS (SETTINGS_ENABLE_CONNECT_PROTOCOL) have
/// arrived. Returns the client, for more streams, the response's head,
/// and the tunnel.
pub async fn open<S>(
    io: S,
    origin: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (h2::client::SendRequest<Bytes>, http::response::Parts, H2Stream)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = h2::client::handshake(io).await.unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(format!("{origin}/plaintext")).body(()).unwrap();
    let (response, _) = client.clone().ready().await.unwrap().send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), http::StatusCode::OK);
    let mut client = client.ready().await.unwrap();
    assert!(client.is_extended_connect_protocol_enabled(), "SETTINGS_ENABLE_CONNECT_PROTOCOL");
    let mut request = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("{origin}{path}"))
        .header("sec-websocket-version", "13");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(()).unwrap();
    request.extensions_mut().insert(h2::ext::Protocol::from_static("websocket"));
    let (response, send) = client.send_request(request, false).unwrap();
    let (parts, recv) = tokio::time::timeout(crate::common::WAIT, response).await.unwrap().unwrap().into_parts();
    (client, parts, H2Stream { send, recv, pending: Bytes::new() })
}
