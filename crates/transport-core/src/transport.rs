//! The transport and listener contracts.

use std::future::{poll_fn, Future};
use std::io;
use std::task::{Context, Poll};

use async_trait::async_trait;

use crate::{Connection, Endpoint};

/// A way to accept connections: tokio sockets, an event loop on mio, an
/// in-memory pipe. Kestrel's `IConnectionListenerFactory`.
///
/// A server holds transports as `Arc<dyn Transport>`, so one server can mix
/// them. A transport knows nothing of HTTP.
///
/// # Errors
///
/// [`bind`](Self::bind) fails with [`io::ErrorKind::AddrInUse`] when the
/// address is taken, [`io::ErrorKind::Unsupported`] for an endpoint kind the
/// transport does not serve, and any other error the system reports.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// A short name for logs and for applications: `"sockets"`, `"mio"`.
    fn name(&self) -> &'static str;

    /// Whether this transport can bind `endpoint`. Default: TCP and Unix.
    fn can_bind(&self, endpoint: &Endpoint) -> bool {
        matches!(endpoint, Endpoint::Tcp(_) | Endpoint::Unix(_))
    }

    /// Starts listening on `endpoint`. The listener's
    /// [`local_endpoint`](Listener::local_endpoint) is the address actually
    /// bound (port 0 resolved).
    async fn bind(&self, endpoint: &Endpoint) -> io::Result<Box<dyn Listener>>;
}

/// A bound endpoint that yields connections. Kestrel's
/// `IConnectionListener`. Dropping it stops accepting (and removes a Unix
/// socket file it created); connections already accepted live on.
pub trait Listener: Send + 'static {
    /// The endpoint actually bound, with port 0 resolved.
    fn local_endpoint(&self) -> &Endpoint;

    /// Polls for the next connection.
    ///
    /// # Errors
    ///
    /// Accept errors are returned as they come (a full file table, a peer
    /// that reset before accept); the listener stays usable and the caller
    /// decides whether to back off.
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Connection>>;

    /// Stops accepting, and returns the connections the transport accepted
    /// already and has not handed out: what a server should still serve
    /// when it stops (graceful shutdown, or a successor taking its
    /// sockets), since no other listener will see them.
    ///
    /// Once this is ready, the listener accepts nothing more; drop it to
    /// close its socket. Default: ready at once with nothing, for a
    /// listener whose unaccepted connections wait in the kernel's backlog
    /// (tokio's and mio's sockets). A completion-based transport that
    /// accepts ahead of its caller (io_uring's multishot accept) returns
    /// what it holds.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Vec<Connection>> {
        let _ = cx;
        Poll::Ready(Vec::new())
    }

    /// The listening socket, for handing it to another process (a
    /// zero-downtime upgrade) that adopts it as an
    /// [`Endpoint::Inherited`]. Default: `None` (a listener with no OS
    /// socket, such as an in-memory one).
    fn listening_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}

impl dyn Listener {
    /// Waits for the next connection. See [`Listener::poll_accept`].
    pub fn accept(&mut self) -> impl Future<Output = io::Result<Connection>> + Send + '_ {
        poll_fn(move |cx| self.poll_accept(cx))
    }
}

impl std::fmt::Debug for dyn Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("local_endpoint", self.local_endpoint()).finish()
    }
}
