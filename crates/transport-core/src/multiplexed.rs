//! The multiplexed transport contract: Kestrel's
//! `IMultiplexedConnectionListenerFactory`. A listener yields connections;
//! a connection yields streams, bidirectional and unidirectional, each a
//! byte stream of its own. QUIC is the one such transport today
//! (`kite-transport-quic`); HTTP/3 runs on any implementation of these
//! traits, and the HTTP core never names a QUIC crate.
//!
//! Stream errors travel inside [`io::Error`] as a [`StreamError`] (see
//! [`StreamError::of`]), so a reset or a closed connection keeps its
//! application error code through `AsyncRead` and `AsyncWrite`.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{ConnectionContext, Endpoint, Features};

/// Why a stream or its connection stopped, with the peer's or the
/// application's error code where the protocol carries one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamError {
    /// The connection was closed by the application on either side, with
    /// this code (HTTP/3's `H3_NO_ERROR` is `0x100`).
    ApplicationClosed {
        /// The application protocol's error code.
        code: u64,
    },
    /// The peer reset the stream it was sending on (`RESET_STREAM`).
    Reset {
        /// The application protocol's error code.
        code: u64,
    },
    /// The peer asked us to stop sending on this stream (`STOP_SENDING`).
    Stopped {
        /// The application protocol's error code.
        code: u64,
    },
    /// The connection went idle past its timeout.
    TimedOut,
    /// The connection failed for a reason of the transport's own, or was
    /// closed locally.
    Closed(String),
}

impl StreamError {
    /// The `StreamError` inside an [`io::Error`] made by a multiplexed
    /// transport, if there is one.
    pub fn of(error: &io::Error) -> Option<&StreamError> {
        error.get_ref().and_then(|inner| inner.downcast_ref::<StreamError>())
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::ApplicationClosed { code } => write!(f, "the connection was closed with code {code:#x}"),
            StreamError::Reset { code } => write!(f, "the peer reset the stream with code {code:#x}"),
            StreamError::Stopped { code } => write!(f, "the peer stopped the stream with code {code:#x}"),
            StreamError::TimedOut => f.write_str("the connection timed out"),
            StreamError::Closed(reason) => write!(f, "the connection closed: {reason}"),
        }
    }
}

impl std::error::Error for StreamError {}

impl From<StreamError> for io::Error {
    fn from(error: StreamError) -> Self {
        let kind = match error {
            StreamError::TimedOut => io::ErrorKind::TimedOut,
            StreamError::Reset { .. } | StreamError::Stopped { .. } => io::ErrorKind::ConnectionReset,
            _ => io::ErrorKind::ConnectionAborted,
        };
        io::Error::new(kind, error)
    }
}

/// The sending half of a stream. `poll_shutdown` ends the stream cleanly
/// (QUIC's FIN) and completes once the peer has everything sent;
/// [`poll_finish`](Self::poll_finish) ends it without waiting for that;
/// [`reset`](Self::reset) abandons it with a code.
pub trait SendStream: AsyncWrite + Send + Unpin + 'static {
    /// The stream's id on its connection.
    fn id(&self) -> u64;

    /// Ends the stream cleanly, ready once the transport has taken the
    /// end: what was written is still delivered (and resent if lost) as
    /// long as the connection lives, but nothing waits for the peer's
    /// acknowledgement, which costs a wake-up per stream. A caller that
    /// is about to close the connection uses `poll_shutdown` instead.
    /// Default: `poll_shutdown`.
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self).poll_shutdown(cx)
    }

    /// Abandons the stream: the peer sees a reset with `code`.
    fn reset(&mut self, code: u64);
}

/// The receiving half of a stream. A read of 0 bytes is the stream's clean
/// end; a reset is an error carrying [`StreamError::Reset`].
pub trait RecvStream: AsyncRead + Send + Unpin + 'static {
    /// The stream's id on its connection.
    fn id(&self) -> u64;

    /// The next bytes of the stream as one chunk, `None` at its clean end.
    /// A transport that holds received data in reference-counted buffers
    /// hands them over without a copy. Default: reads up to 16 KB through
    /// `AsyncRead` into a new buffer.
    ///
    /// # Errors
    ///
    /// As for `poll_read`: a [`StreamError`] for a reset or a lost
    /// connection.
    fn poll_read_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<bytes::Bytes>>> {
        let mut buf = vec![0; 16 * 1024];
        let mut read = ReadBuf::new(&mut buf);
        std::task::ready!(Pin::new(&mut *self).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        buf.truncate(n);
        Poll::Ready(Ok((n > 0).then(|| bytes::Bytes::from(buf))))
    }

    /// Tells the peer to stop sending, with `code`; what it sent is dropped.
    fn stop_sending(&mut self, code: u64);
}

/// A bidirectional stream: both halves, readable and writable as one, or
/// split.
pub struct BidiStream {
    send: Box<dyn SendStream>,
    recv: Box<dyn RecvStream>,
}

impl BidiStream {
    /// Joins the two halves of one stream.
    pub fn new(send: Box<dyn SendStream>, recv: Box<dyn RecvStream>) -> Self {
        Self { send, recv }
    }

    /// The stream's id on its connection.
    pub fn id(&self) -> u64 {
        self.recv.id()
    }

    /// The two halves.
    pub fn split(self) -> (Box<dyn SendStream>, Box<dyn RecvStream>) {
        (self.send, self.recv)
    }

    /// The sending half.
    pub fn send_mut(&mut self) -> &mut dyn SendStream {
        &mut *self.send
    }

    /// The receiving half.
    pub fn recv_mut(&mut self) -> &mut dyn RecvStream {
        &mut *self.recv
    }
}

impl fmt::Debug for BidiStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BidiStream").field("id", &self.id()).finish()
    }
}

impl AsyncRead for BidiStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.recv).poll_read(cx, buf)
    }
}

impl AsyncWrite for BidiStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.send).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.send).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.send).poll_shutdown(cx)
    }
}

/// Opens streams on a connection; cheap to clone, so the HTTP/3 control
/// and QPACK streams can be opened beside request handling.
pub trait StreamOpener: Send + Sync + 'static {
    /// Opens a bidirectional stream, waiting while the peer's stream limit
    /// is reached.
    ///
    /// # Errors
    ///
    /// A [`StreamError`] when the connection is gone.
    fn poll_open_bidi(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<BidiStream>>;

    /// Opens a unidirectional stream to the peer.
    ///
    /// # Errors
    ///
    /// A [`StreamError`] when the connection is gone.
    fn poll_open_uni(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Box<dyn SendStream>>>;

    /// Closes the whole connection with an application `code` and reason.
    fn close(&mut self, code: u64, reason: &[u8]);

    /// Another opener for the same connection.
    fn clone_opener(&self) -> Box<dyn StreamOpener>;
}

/// A multiplexed connection's streams: accepts what the peer opens, opens
/// its own.
pub trait MultiplexedIo: StreamOpener {
    /// The next bidirectional stream the peer opened.
    ///
    /// # Errors
    ///
    /// A [`StreamError`] when the connection closed: by the application on
    /// either side ([`StreamError::ApplicationClosed`]), by idleness, or by
    /// the transport.
    fn poll_accept_bidi(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<BidiStream>>;

    /// The next unidirectional stream the peer opened.
    ///
    /// # Errors
    ///
    /// As [`poll_accept_bidi`](Self::poll_accept_bidi).
    fn poll_accept_uni(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Box<dyn RecvStream>>>;
}

/// One multiplexed connection: its streams and its context (id, addresses,
/// TLS handshake and ALPN as features, the close signal).
pub struct MultiplexedConnection {
    io: Box<dyn MultiplexedIo>,
    context: ConnectionContext,
}

impl MultiplexedConnection {
    /// A connection over `io` described by `context`.
    pub fn new(io: Box<dyn MultiplexedIo>, context: ConnectionContext) -> Self {
        Self { io, context }
    }

    /// The connection's context.
    pub fn context(&self) -> &ConnectionContext {
        &self.context
    }

    /// The connection's context, for middleware that adds features.
    pub fn context_mut(&mut self) -> &mut ConnectionContext {
        &mut self.context
    }

    /// The streams and the context, apart.
    pub fn into_parts(self) -> (Box<dyn MultiplexedIo>, ConnectionContext) {
        (self.io, self.context)
    }
}

impl fmt::Debug for MultiplexedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiplexedConnection").field("context", &self.context).finish()
    }
}

/// A transport whose connections carry many streams (QUIC). Kestrel's
/// `IMultiplexedConnectionListenerFactory`.
///
/// `features` carries what binding needs beyond the address, as Kestrel's
/// feature collection does; a QUIC transport reads its TLS configuration
/// from there.
///
/// # Errors
///
/// [`bind`](Self::bind) fails with [`io::ErrorKind::AddrInUse`] when the
/// UDP port is taken, [`io::ErrorKind::InvalidInput`] when a feature it
/// needs is missing or unusable, [`io::ErrorKind::Unsupported`] for an
/// endpoint kind it does not serve.
#[async_trait]
pub trait MultiplexedTransport: Send + Sync + 'static {
    /// A short name for logs: `"quic"`.
    fn name(&self) -> &'static str;

    /// Starts listening on `endpoint`.
    async fn bind(&self, endpoint: &Endpoint, features: &Features) -> io::Result<Box<dyn MultiplexedListener>>;
}

/// A bound multiplexed endpoint. Dropping it stops accepting; connections
/// already accepted live on.
pub trait MultiplexedListener: Send + 'static {
    /// The endpoint actually bound, with port 0 resolved.
    fn local_endpoint(&self) -> &Endpoint;

    /// Polls for the next connection, its handshake done.
    ///
    /// # Errors
    ///
    /// A failed handshake is returned as an error; the listener stays
    /// usable. [`io::ErrorKind::NotConnected`] when the listener is closed.
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<MultiplexedConnection>>;

    /// The listening (UDP) socket, for handing it to another process that
    /// adopts it as an [`Endpoint::Inherited`]. Default: `None`.
    fn listening_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}

impl dyn MultiplexedListener {
    /// Waits for the next connection. See [`MultiplexedListener::poll_accept`].
    pub fn accept(&mut self) -> impl Future<Output = io::Result<MultiplexedConnection>> + Send + '_ {
        poll_fn(move |cx| self.poll_accept(cx))
    }
}

impl fmt::Debug for dyn MultiplexedListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiplexedListener").field("local_endpoint", self.local_endpoint()).finish()
    }
}
