//! A connection: a byte stream and its context.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::ConnectionContext;

/// The byte stream of a connection, as transports and middleware provide it.
///
/// It is tokio's [`AsyncRead`] + [`AsyncWrite`] plus one optional method,
/// [`poll_read_ready`](Self::poll_read_ready), which lets the HTTP core wait
/// for data on an idle connection without holding a read buffer (Kestrel's
/// `WaitForDataBeforeAllocatingBuffer`).
pub trait ConnectionIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// Waits until a read would not block, without reading.
    ///
    /// The default is ready at once, which makes callers allocate their read
    /// buffer before waiting: always correct, only less frugal. Sockets
    /// implement it with the reactor's readiness; wrappers that buffer (TLS)
    /// must report ready when they hold buffered plaintext.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = cx;
        Poll::Ready(Ok(()))
    }
}

impl ConnectionIo for Box<dyn ConnectionIo> {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (**self).poll_read_ready(cx)
    }
}

/// Adapts any tokio stream to [`ConnectionIo`] with the default readiness:
/// for in-memory pipes, tests and user transports.
///
/// # Examples
///
/// ```
/// use kite_transport_core::{ConnectionIo, PlainIo};
///
/// let (a, _b) = tokio::io::duplex(64);
/// let io: Box<dyn ConnectionIo> = Box::new(PlainIo(a));
/// # drop(io);
/// ```
#[derive(Debug)]
pub struct PlainIo<T>(pub T);

impl<T: AsyncRead + Unpin> AsyncRead for PlainIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

crate::delegate_async_write!([T: AsyncWrite + Unpin] PlainIo<T>, 0);

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ConnectionIo for PlainIo<T> {}

/// An accepted connection: its byte stream and its [`ConnectionContext`].
///
/// This is what a [`Listener`](crate::Listener) yields, what each
/// connection middleware receives and passes on (perhaps with the stream
/// wrapped, as TLS does, or features added), and what the HTTP core serves.
/// It reads and writes through its stream.
pub struct Connection {
    io: Box<dyn ConnectionIo>,
    /// Boxed: a connection is moved through every middleware, and each
    /// one's future keeps room for it as long as the connection lives.
    context: Box<ConnectionContext>,
}

impl Connection {
    /// A connection over `io` with `context`.
    pub fn new(io: Box<dyn ConnectionIo>, context: ConnectionContext) -> Self {
        Self { io, context: Box::new(context) }
    }

    /// The connection's context.
    pub fn context(&self) -> &ConnectionContext {
        &self.context
    }

    /// The connection's context, to add features.
    pub fn context_mut(&mut self) -> &mut ConnectionContext {
        &mut self.context
    }

    /// Splits the connection into its stream and context.
    pub fn into_parts(self) -> (Box<dyn ConnectionIo>, ConnectionContext) {
        (self.io, *self.context)
    }

    /// Replaces the stream with what `wrap` makes of it, keeping the
    /// context: how a middleware puts TLS or logging around the stream.
    pub fn map_io<F>(self, wrap: F) -> Self
    where
        F: FnOnce(Box<dyn ConnectionIo>) -> Box<dyn ConnectionIo>,
    {
        Self { io: wrap(self.io), context: self.context }
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection").field("context", &self.context).finish_non_exhaustive()
    }
}

impl AsyncRead for Connection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

crate::delegate_async_write!(Connection, io);

impl ConnectionIo for Connection {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_read_ready(cx)
    }
}
