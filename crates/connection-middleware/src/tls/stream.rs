//! The decrypted stream the TLS middleware passes on.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use kite_transport_core::ConnectionIo;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_rustls::server::TlsStream;

/// A connection's plaintext side after the TLS handshake.
pub struct TlsIo {
    inner: TlsStream<Box<dyn ConnectionIo>>,
}

impl TlsIo {
    pub(crate) fn new(inner: TlsStream<Box<dyn ConnectionIo>>) -> Self {
        Self { inner }
    }

    /// The rustls connection, for anything the handshake feature leaves out.
    pub fn connection(&self) -> &rustls::ServerConnection {
        self.inner.get_ref().1
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

kite_transport_core::delegate_async_write!(TlsIo, inner);

impl ConnectionIo for TlsIo {
    /// Ready when rustls already holds plaintext (or the peer's close),
    /// otherwise when the socket below is.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (io, connection) = self.inner.get_mut();
        // `wants_read` is false while plaintext is pending or after close.
        if connection.wants_read() {
            io.poll_read_ready(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }
}
