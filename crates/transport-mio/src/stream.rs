//! An accepted connection on the mio transport.

use std::io::{self, Write};
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use kite_transport_core::{Admitted, ConnectionIo};
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::registration::{Registered, Way};

/// A TCP or Unix stream served by a mio event loop. It implements the same
/// async IO traits as the sockets transport's streams, so the HTTP core
/// and every middleware run on it unchanged.
pub struct MioStream {
    kind: Kind,
    /// Counts this stream against the transport's connection limit.
    _admitted: Admitted,
    /// The read-event count when a read last came back short or blocked:
    /// the socket is drained until the count moves.
    drained_at: Option<usize>,
}

enum Kind {
    Tcp(Registered<mio::net::TcpStream>),
    Unix(Registered<mio::net::UnixStream>),
}

impl MioStream {
    pub(crate) fn tcp(io: Registered<mio::net::TcpStream>, admitted: Admitted) -> Self {
        Self { kind: Kind::Tcp(io), _admitted: admitted, drained_at: None }
    }

    pub(crate) fn unix(io: Registered<mio::net::UnixStream>, admitted: Admitted) -> Self {
        Self { kind: Kind::Unix(io), _admitted: admitted, drained_at: None }
    }

    /// Which event loop serves this stream.
    pub fn event_loop(&self) -> usize {
        match &self.kind {
            Kind::Tcp(io) => io.event_loop().index(),
            Kind::Unix(io) => io.event_loop().index(),
        }
    }
}

macro_rules! with_io {
    ($self:expr, $io:ident => $e:expr) => {
        match &$self.kind {
            Kind::Tcp($io) => $e,
            Kind::Unix($io) => $e,
        }
    };
}

impl MioStream {
    fn poll_drained(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(seen) = self.drained_at {
            ready!(with_io!(self, io => io.poll_event_since(cx, Way::Read, seen)));
            self.drained_at = None;
        }
        Poll::Ready(())
    }
}

impl AsyncRead for MioStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drained(cx));
        let this = &mut *self;
        let wanted = buf.remaining();
        let seen = with_io!(this, io => io.events(Way::Read));
        let n = ready!(with_io!(this, io => io.poll_io(cx, Way::Read, |s| {
            // SAFETY: `recv` only writes bytes into the slice, never
            // de-initialises any; those it reports are marked below.
            let unfilled = unsafe { buf.unfilled_mut() };
            SockRef::from(s).recv(unfilled)
        })))?;
        // SAFETY: `recv` initialised the first `n` bytes of the unfilled part.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        if n > 0 && n < wanted {
            // A short read drained the socket: the next read would block,
            // so wait for the next event instead of asking the kernel.
            this.drained_at = Some(seen);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MioStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        with_io!(self, io => io.poll_io(cx, Way::Write, |mut s| s.write(buf)))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        with_io!(self, io => io.poll_io(cx, Way::Write, |mut s| s.write_vectored(bufs)))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = match &self.kind {
            Kind::Tcp(io) => io.io().shutdown(Shutdown::Write),
            Kind::Unix(io) => io.io().shutdown(Shutdown::Write),
        };
        match result {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            other => Poll::Ready(other),
        }
    }
}

impl ConnectionIo for MioStream {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Until a read comes back short or blocked, the socket may hold data.
        self.poll_drained(cx).map(Ok)
    }
}

impl std::fmt::Debug for MioStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::Tcp(_) => "tcp",
            Kind::Unix(_) => "unix",
        };
        f.debug_struct("MioStream").field("kind", &kind).field("event_loop", &self.event_loop()).finish()
    }
}
