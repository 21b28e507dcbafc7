//! The byte stream a [`WebSocket`](super::WebSocket) runs on: the
//! upgraded connection, with permessage-deflate's codecs between it and
//! tungstenite when the handshake agreed on it.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use kite_http_core::Upgraded;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::io::poll_read_buf;

use super::deflate::{Agreed, Deflater, Inflater};

/// How much is read from the connection at a time when inflating.
const READ_SIZE: usize = 16 * 1024;

/// Compressed output held before `poll_write` waits for the connection.
const HIGH_WATER: usize = 64 * 1024;

/// An upgraded connection as a WebSocket sees it: the connection itself,
/// or, with permessage-deflate agreed, the connection behind the codecs
/// that inflate what the client sends and compress what the application
/// sends.
pub struct WebSocketIo {
    io: Upgraded,
    deflate: Option<Box<Deflate>>,
}

struct Deflate {
    inflater: Inflater,
    deflater: Deflater,
    /// Bytes read from the connection, not yet through the inflater.
    read: BytesMut,
    /// Frames ready for tungstenite.
    ready: BytesMut,
    /// Frames ready for the connection.
    write: BytesMut,
    eof: bool,
}

impl std::fmt::Debug for WebSocketIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketIo").field("permessage_deflate", &self.deflate.is_some()).finish()
    }
}

impl WebSocketIo {
    pub(crate) fn new(io: Upgraded, agreed: Option<&Agreed>, max_frame_size: Option<usize>) -> Self {
        let deflate = agreed.map(|agreed| {
            Box::new(Deflate {
                inflater: Inflater::new(agreed.client_no_context_takeover, max_frame_size),
                deflater: Deflater::new(agreed),
                read: BytesMut::new(),
                ready: BytesMut::new(),
                write: BytesMut::new(),
                eof: false,
            })
        });
        Self { io, deflate }
    }

    /// Whether permessage-deflate was agreed in the handshake.
    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// The upgraded connection beneath (its addresses and features).
    pub fn get_ref(&self) -> &Upgraded {
        &self.io
    }
}

/// Writes out the compressed frames held; `Pending` until all are written.
fn drain(io: &mut Upgraded, write: &mut BytesMut, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    while !write.is_empty() {
        let n = ready!(Pin::new(&mut *io).poll_write(cx, write))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        write.advance(n);
    }
    Poll::Ready(Ok(()))
}

impl AsyncRead for WebSocketIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let Some(deflate) = this.deflate.as_deref_mut() else {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        };
        loop {
            if !deflate.ready.is_empty() {
                let n = deflate.ready.len().min(buf.remaining());
                buf.put_slice(&deflate.ready[..n]);
                deflate.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if deflate.eof {
                return Poll::Ready(Ok(()));
            }
            match deflate.inflater.process(&mut deflate.read, &mut deflate.ready) {
                Ok(true) => continue,
                Ok(false) => {}
                Err(error) => {
                    tracing::debug!(%error, "WebSocket closed: a compressed message is broken");
                    return Poll::Ready(Err(error));
                }
            }
            deflate.read.reserve(READ_SIZE);
            let filled = ready!(poll_read_buf(Pin::new(&mut this.io), cx, &mut deflate.read))?;
            if filled == 0 {
                // What is left is a cut-off frame: tungstenite reports it.
                deflate.eof = true;
                deflate.ready.extend_from_slice(&deflate.read);
                deflate.read.clear();
            }
        }
    }
}

impl AsyncWrite for WebSocketIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let Some(deflate) = this.deflate.as_deref_mut() else {
            return Pin::new(&mut this.io).poll_write(cx, data);
        };
        if deflate.write.len() >= HIGH_WATER {
            ready!(drain(&mut this.io, &mut deflate.write, cx))?;
        }
        deflate.deflater.write(data, &mut deflate.write)?;
        // Start sending now; what does not fit waits for the next write or
        // the flush, which this poll's waker will prompt.
        if let Poll::Ready(Err(error)) = drain(&mut this.io, &mut deflate.write, cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(deflate) = this.deflate.as_deref_mut() {
            ready!(drain(&mut this.io, &mut deflate.write, cx))?;
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(deflate) = this.deflate.as_deref_mut() {
            ready!(drain(&mut this.io, &mut deflate.write, cx))?;
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
