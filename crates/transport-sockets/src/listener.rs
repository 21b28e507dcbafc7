//! TCP and Unix listeners on tokio.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::task::{Context, Poll};

use kite_transport_core::{Connection, ConnectionContext, ConnectionId, Endpoint, Listener};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UnixListener};

use crate::{SocketOptions, SocketStream, TRANSPORT_NAME};

/// A bound TCP or Unix listener of the sockets transport.
///
/// Dropping it stops accepting and removes the Unix socket file it created.
#[derive(Debug)]
pub struct SocketListener {
    kind: Kind,
    local: Endpoint,
    options: SocketOptions,
}

#[derive(Debug)]
enum Kind {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
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
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        if addr.is_ipv6() {
            socket.set_only_v6(!addr.ip().is_unspecified())?;
        }
        socket.set_reuse_address(true)?;
        if options.reuse_port {
            socket.set_reuse_port(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(options.backlog.min(i32::MAX as u32) as i32)?;
        let listener = TcpListener::from_std(socket.into())?;
        let local = Endpoint::Tcp(listener.local_addr()?);
        Ok(Self {
            kind: Kind::Tcp(listener),
            local,
            options: options.clone(),
        })
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
        remove_stale_socket(path)?;
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket.bind(&socket2::SockAddr::unix(path)?)?;
        socket.listen(options.backlog.min(i32::MAX as u32) as i32)?;
        let std_listener: std::os::unix::net::UnixListener = socket.into();
        let listener = UnixListener::from_std(std_listener)?;
        Ok(Self {
            kind: Kind::Unix(listener, path.to_path_buf()),
            local: Endpoint::Unix(path.to_path_buf()),
            options: options.clone(),
        })
    }

    fn configure_tcp(&self, stream: &tokio::net::TcpStream) -> io::Result<()> {
        stream.set_nodelay(self.options.nodelay)?;
        if self.options.recv_buffer_size.is_some() || self.options.send_buffer_size.is_some() {
            let socket = socket2::SockRef::from(stream);
            if let Some(size) = self.options.recv_buffer_size {
                socket.set_recv_buffer_size(size)?;
            }
            if let Some(size) = self.options.send_buffer_size {
                socket.set_send_buffer_size(size)?;
            }
        }
        Ok(())
    }
}

/// Removes `path` if it is a socket that nothing listens on.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another process is listening on {}", path.display()),
        )),
        Err(_) => {
            tracing::info!(path = %path.display(), "removing stale unix socket file");
            std::fs::remove_file(path)
        }
    }
}

impl Listener for SocketListener {
    fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Connection>> {
        let (io, remote) = match &self.kind {
            Kind::Tcp(listener) => {
                let (stream, remote) = std::task::ready!(listener.poll_accept(cx))?;
                if let Err(e) = self.configure_tcp(&stream) {
                    tracing::debug!(error = %e, %remote, "failed to set socket options on accepted connection");
                }
                (SocketStream::Tcp(stream), Endpoint::Tcp(remote))
            }
            Kind::Unix(listener, _) => {
                let (stream, remote) = std::task::ready!(listener.poll_accept(cx))?;
                let remote = match remote.as_pathname() {
                    Some(path) => Endpoint::Unix(path.to_path_buf()),
                    None => Endpoint::Unnamed,
                };
                (SocketStream::Unix(stream), remote)
            }
        };
        let context = ConnectionContext::new(
            ConnectionId::next(),
            self.local.clone(),
            remote,
            TRANSPORT_NAME,
        );
        Poll::Ready(Ok(Connection::new(Box::new(io), context)))
    }
}

impl Drop for SocketListener {
    fn drop(&mut self) {
        if let Kind::Unix(_, path) = &self.kind {
            if let Err(e) = std::fs::remove_file(path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "failed to remove unix socket file");
                }
            }
        }
    }
}
