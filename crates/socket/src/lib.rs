//! Binding operating-system sockets with Kite's socket options: shared by
//! the transports that sit on OS sockets (tokio sockets, mio), and usable
//! by a transport of your own. The transport contracts
//! (`kite-transport-core`) stay free of OS calls; this crate is where
//! `socket2` lives.
//!
//! # Example
//!
//! ```
//! use kite_socket::{bind_tcp, SocketOptions};
//!
//! let listener = bind_tcp("127.0.0.1:0".parse().unwrap(), &SocketOptions::default()).unwrap();
//! assert_ne!(listener.local_addr().unwrap().port(), 0);
//! ```
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::Path;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// Socket options applied to every socket a transport binds or accepts
/// (Kestrel's `SocketTransportOptions`).
///
/// # Examples
///
/// ```
/// use kite_socket::SocketOptions;
///
/// let options = SocketOptions::default().backlog(1024).reuse_port(true);
/// assert_eq!(options.backlog, 1024);
/// assert!(options.nodelay);
/// ```
///
/// Like every options type in Kite: public fields, each with its default,
/// and a builder-style setter of the same name.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SocketOptions {
    /// `TCP_NODELAY` on accepted TCP connections. Default: `true`.
    pub nodelay: bool,
    /// The listen backlog: connections the kernel queues before accept.
    /// Default: 512.
    pub backlog: u32,
    /// `SO_REUSEPORT` on TCP listeners, so several processes can share a
    /// port. Default: `false`.
    pub reuse_port: bool,
    /// `SO_RCVBUF` for accepted connections. Default: `None` (the system's).
    pub recv_buffer_size: Option<usize>,
    /// `SO_SNDBUF` for accepted connections. Default: `None` (the system's).
    pub send_buffer_size: Option<usize>,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self { nodelay: true, backlog: 512, reuse_port: false, recv_buffer_size: None, send_buffer_size: None }
    }
}

impl SocketOptions {
    /// Sets `TCP_NODELAY` on accepted TCP connections. Default: `true`.
    pub fn nodelay(mut self, enabled: bool) -> Self {
        self.nodelay = enabled;
        self
    }

    /// The listen backlog: connections the kernel queues before accept.
    /// Default: 512.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Sets `SO_REUSEPORT` on TCP listeners, so several processes can share
    /// a port. Default: `false`.
    pub fn reuse_port(mut self, enabled: bool) -> Self {
        self.reuse_port = enabled;
        self
    }

    /// `SO_RCVBUF` for accepted connections. Default: `None` (the system's).
    pub fn recv_buffer_size(mut self, size: Option<usize>) -> Self {
        self.recv_buffer_size = size;
        self
    }

    /// `SO_SNDBUF` for accepted connections. Default: `None` (the system's).
    pub fn send_buffer_size(mut self, size: Option<usize>) -> Self {
        self.send_buffer_size = size;
        self
    }

    fn listen_backlog(&self) -> i32 {
        self.backlog.min(i32::MAX as u32) as i32
    }

    /// Applies the per-connection options (nodelay, buffer sizes) to an
    /// accepted TCP socket.
    ///
    /// # Errors
    ///
    /// Whatever the system reports for `setsockopt`.
    pub fn apply_to_stream<'s>(&self, socket: impl Into<SockRef<'s>>) -> io::Result<()> {
        let socket = socket.into();
        socket.set_nodelay(self.nodelay)?;
        if let Some(size) = self.recv_buffer_size {
            socket.set_recv_buffer_size(size)?;
        }
        if let Some(size) = self.send_buffer_size {
            socket.set_send_buffer_size(size)?;
        }
        Ok(())
    }
}

/// Binds a non-blocking TCP listener. An unspecified IPv6 address (`[::]`)
/// is bound dual-stack, so it accepts IPv4 too; any other IPv6 address is
/// IPv6 only.
///
/// # Errors
///
/// [`io::ErrorKind::AddrInUse`] when the port is taken; whatever else the
/// system reports (no IPv6, no permission for a low port).
pub fn bind_tcp(addr: SocketAddr, options: &SocketOptions) -> io::Result<std::net::TcpListener> {
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
    socket.listen(options.listen_backlog())?;
    Ok(socket.into())
}

/// Binds a non-blocking UDP socket (for QUIC), with the same address
/// rules as [`bind_tcp`]: `[::]` is dual-stack, any other IPv6 address is
/// IPv6 only; `SO_REUSEPORT` when the options ask for it, and the buffer
/// sizes they set.
///
/// # Errors
///
/// [`io::ErrorKind::AddrInUse`] when the port is taken; whatever else the
/// system reports.
pub fn bind_udp(addr: SocketAddr, options: &SocketOptions) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(!addr.ip().is_unspecified())?;
    }
    if options.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if let Some(size) = options.recv_buffer_size {
        socket.set_recv_buffer_size(size)?;
    }
    if let Some(size) = options.send_buffer_size {
        socket.set_send_buffer_size(size)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// What [`bind_unix`] found at the path before binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnixPathState {
    /// Nothing was there.
    Free,
    /// A socket file nothing listened on; it was removed.
    StaleRemoved,
}

/// Binds a non-blocking Unix domain socket listener at `path`. A stale
/// socket file (one nothing listens on) is replaced; a live one is
/// [`io::ErrorKind::AddrInUse`].
///
/// Checking for a live socket connects to it once, so a listener there
/// sees one connection that closes at once.
///
/// # Errors
///
/// [`io::ErrorKind::AddrInUse`] when another process listens on `path`, or
/// when `path` exists and is not a socket; whatever else the system reports.
pub fn bind_unix(
    path: &Path,
    options: &SocketOptions,
) -> io::Result<(std::os::unix::net::UnixListener, UnixPathState)> {
    let state = remove_stale_socket(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.bind(&socket2::SockAddr::unix(path)?)?;
    socket.listen(options.listen_backlog())?;
    Ok((socket.into(), state))
}

fn remove_stale_socket(path: &Path) -> io::Result<UnixPathState> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(UnixPathState::Free),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("{} exists and is not a socket", path.display())));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => {
            Err(io::Error::new(io::ErrorKind::AddrInUse, format!("another process is listening on {}", path.display())))
        }
        Err(_) => {
            std::fs::remove_file(path)?;
            Ok(UnixPathState::StaleRemoved)
        }
    }
}

/// Removes the socket file of a Unix listener that is being dropped; a
/// file already gone is not an error.
///
/// # Errors
///
/// Whatever the system reports, other than "not found".
pub fn remove_socket_file(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The socket file of a Unix listener that created it: removed when this
/// is dropped (after the listener it sits beside, if it is declared after
/// it), with a warning if that fails. One home for the cleanup every
/// transport on OS sockets needs.
#[derive(Debug)]
pub struct SocketFile(std::path::PathBuf);

impl SocketFile {
    /// Takes charge of removing `path`.
    pub fn new(path: std::path::PathBuf) -> Self {
        Self(path)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Err(e) = remove_socket_file(&self.0) {
            tracing::warn!(path = %self.0.display(), error = %e, "failed to remove unix socket file");
        }
    }
}

/// A listening socket adopted from an inherited file descriptor.
#[derive(Debug)]
pub enum InheritedListener {
    /// A TCP listener.
    Tcp(std::net::TcpListener),
    /// A Unix listener, with its path if it has one. The path belongs to
    /// whoever created the socket: it is not removed on drop.
    Unix(std::os::unix::net::UnixListener, Option<std::path::PathBuf>),
}

/// Adopts the listening socket `fd` (systemd socket activation or a
/// parent's `listen_fd`), made non-blocking and close-on-exec. It is closed
/// when the listener is dropped, or at once if it is refused.
///
/// # Errors
///
/// [`io::ErrorKind::InvalidInput`] when `fd` is not a stream socket of
/// the TCP or Unix family; whatever the system reports for a closed
/// descriptor.
pub fn adopt_listener(fd: OwnedFd) -> io::Result<InheritedListener> {
    use std::os::fd::AsRawFd;
    let raw = fd.as_raw_fd();
    let socket = Socket::from(fd);
    if socket.r#type()? != Type::STREAM {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("fd {raw} is not a stream socket")));
    }
    let local = socket.local_addr()?;
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    if local.as_socket().is_some() {
        return Ok(InheritedListener::Tcp(socket.into()));
    }
    if local.is_unix() {
        let path = local.as_pathname().map(std::path::Path::to_path_buf);
        return Ok(InheritedListener::Unix(socket.into(), path));
    }
    Err(io::Error::new(io::ErrorKind::InvalidInput, format!("fd {raw} is neither a TCP nor a Unix socket")))
}
