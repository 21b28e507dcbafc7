//! TCP and Unix listeners on tokio.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::task::{Context, Poll};

use kite_socket::{self as socket, SocketOptions, UnixPathState};
use kite_transport_core::{Connection, ConnectionContext, ConnectionId, Endpoint, Listener};
use tokio::net::{TcpListener, UnixListener};

use crate::{SocketStream, TRANSPORT_NAME};

/// A bound TCP or Unix listener of the sockets transport.
///
/// Dropping it stops accepting and removes the Unix socket file it created.
#[derive(Debug)]
pub struct SocketListener {
    kind: Kind,
    local: Endpoint,
    options: SocketOptions,
    /// The Unix socket file this listener created, removed after it closes.
    _file: Option<socket::SocketFile>,
}

#[derive(Debug)]
enum Kind {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl SocketListener {
    /// Binds a TCP listener. An unspecified IPv6 address (`[::]`) is bound
    /// dual-stack, so it accepts IPv4 too.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::AddrInUse`] when the port is taken; whatever else
    /// the system reports (no IPv6, no permission for a low port).
    pub fn bind_tcp(addr: SocketAddr, options: &SocketOptions) -> io::Result<Self> {
        let listener = TcpListener::from_std(socket::bind_tcp(addr, options)?)?;
        let local = Endpoint::Tcp(listener.local_addr()?);
        Ok(Self { kind: Kind::Tcp(listener), local, options: options.clone(), _file: None })
    }

    /// Binds a Unix domain socket at `path`. A stale socket file (one that
    /// nothing listens on) is replaced; a live one is
    /// [`io::ErrorKind::AddrInUse`].
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::AddrInUse`] when another process listens on `path`,
    /// or when `path` exists and is not a socket; whatever else the system
    /// reports.
    pub fn bind_unix(path: &Path, options: &SocketOptions) -> io::Result<Self> {
        let (std_listener, state) = socket::bind_unix(path, options)?;
        if state == UnixPathState::StaleRemoved {
            tracing::info!(path = %path.display(), "replaced a stale unix socket file");
        }
        let listener = UnixListener::from_std(std_listener)?;
        Ok(Self {
            kind: Kind::Unix(listener),
            _file: Some(socket::SocketFile::new(path.to_path_buf())),
            local: Endpoint::Unix(path.to_path_buf()),
            options: options.clone(),
        })
    }
}

impl SocketListener {
    /// Adopts an inherited listening socket (systemd socket activation or
    /// a parent's descriptor), TCP or Unix. An inherited Unix socket's file
    /// is left in place on drop: it belongs to whoever created it.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] when `fd` is not a TCP or Unix
    /// stream socket; whatever the system reports.
    pub fn adopt(fd: std::os::fd::OwnedFd, options: &SocketOptions) -> io::Result<Self> {
        match socket::adopt_listener(fd)? {
            socket::InheritedListener::Tcp(std_listener) => {
                let listener = TcpListener::from_std(std_listener)?;
                let local = Endpoint::Tcp(listener.local_addr()?);
                Ok(Self { kind: Kind::Tcp(listener), local, options: options.clone(), _file: None })
            }
            socket::InheritedListener::Unix(std_listener, path) => {
                let local = path.clone().map_or(Endpoint::Unnamed, Endpoint::Unix);
                let listener = UnixListener::from_std(std_listener)?;
                Ok(Self { kind: Kind::Unix(listener), local, options: options.clone(), _file: None })
            }
        }
    }
}

impl Listener for SocketListener {
    fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }

    fn listening_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(match &self.kind {
            Kind::Tcp(listener) => listener.as_fd(),
            Kind::Unix(listener) => listener.as_fd(),
        })
    }

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Connection>> {
        let (io, remote) = match &self.kind {
            Kind::Tcp(listener) => {
                let (stream, remote) = std::task::ready!(listener.poll_accept(cx))?;
                if let Err(e) = self.options.apply_to_stream(&stream) {
                    tracing::debug!(error = %e, %remote, "failed to set socket options on accepted connection");
                }
                (SocketStream::Tcp(stream), Endpoint::Tcp(remote))
            }
            Kind::Unix(listener) => {
                let (stream, remote) = std::task::ready!(listener.poll_accept(cx))?;
                let remote = match remote.as_pathname() {
                    Some(path) => Endpoint::Unix(path.to_path_buf()),
                    None => Endpoint::Unnamed,
                };
                (SocketStream::Unix(stream), remote)
            }
        };
        let context = ConnectionContext::new(ConnectionId::next(), self.local.clone(), remote, TRANSPORT_NAME);
        Poll::Ready(Ok(Connection::new(Box::new(io), context)))
    }
}
