//! Zero-downtime upgrades: a running server hands its listening sockets to
//! a new process of the same program, which adopts them instead of binding
//! anew, says when it is ready, and the old one drains and exits. The
//! sockets stay open throughout, so the kernel's accept queues never close
//! and no connection is refused (pingora's `--upgrade`, Cloudflare's
//! tableflip and ecdysis).
//!
//! The sockets travel by inheritance across `exec`: [`spawn_successor`]
//! clears close-on-exec on them for the spawn alone and names them in
//! `KITE_UPGRADE_FDS`; a Unix socket pair (`KITE_UPGRADE_READY`) carries
//! the new process's "ready". [`inherited`] takes them in the new process,
//! and [`ServerBuilder::inherit`](crate::ServerBuilder::inherit) binds each
//! endpoint to the handed socket of the same address.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kite_transport_core::{
    Endpoint, Features, InheritedFd, Listener, MultiplexedListener, MultiplexedTransport, Transport,
};

/// The variable that names the handed sockets: `tcp:ADDR=FD`,
/// `udp:ADDR=FD` or `unix:PATH=FD`, separated by `;`.
pub const FDS_VAR: &str = "KITE_UPGRADE_FDS";
/// The variable that names the new process's end of the ready channel.
pub const READY_VAR: &str = "KITE_UPGRADE_READY";

/// What a handed socket listens on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketAddress {
    /// A TCP listener.
    Tcp(SocketAddr),
    /// A UDP socket (QUIC).
    Udp(SocketAddr),
    /// A Unix socket listener at a path.
    Unix(PathBuf),
}

impl SocketAddress {
    fn encode(&self) -> String {
        match self {
            SocketAddress::Tcp(addr) => format!("tcp:{addr}"),
            SocketAddress::Udp(addr) => format!("udp:{addr}"),
            SocketAddress::Unix(path) => format!("unix:{}", path.display()),
        }
    }

    fn decode(text: &str) -> Option<Self> {
        let (kind, address) = text.split_once(':')?;
        match kind {
            "tcp" => address.parse().ok().map(SocketAddress::Tcp),
            "udp" => address.parse().ok().map(SocketAddress::Udp),
            "unix" => Some(SocketAddress::Unix(PathBuf::from(address))),
            _ => None,
        }
    }
}

/// A listening socket on its way to a successor: a duplicate of the one
/// the server accepts on.
#[derive(Debug)]
pub struct HandedSocket {
    /// What it listens on.
    pub address: SocketAddress,
    /// The duplicate descriptor (close-on-exec, as every Kite descriptor).
    pub fd: OwnedFd,
}

/// Duplicates a stream listener's socket, if it has one. A Unix socket
/// is refused: the process that created its file removes it on exit.
pub(crate) fn hand_stream(listener: &dyn Listener) -> Option<io::Result<HandedSocket>> {
    let fd = listener.listening_fd()?;
    let address = match listener.local_endpoint() {
        Endpoint::Tcp(addr) => SocketAddress::Tcp(*addr),
        Endpoint::Unix(path) => {
            return Some(Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("unix:{} cannot be handed over: its file goes with this process; use TCP", path.display()),
            )))
        }
        _ => return None,
    };
    Some(fd.try_clone_to_owned().map(|fd| HandedSocket { address, fd }))
}

/// Duplicates a multiplexed (QUIC) listener's UDP socket, if it has one.
pub(crate) fn hand_multiplexed(listener: &dyn MultiplexedListener) -> Option<io::Result<HandedSocket>> {
    let fd = listener.listening_fd()?;
    let address = SocketAddress::Udp(listener.local_endpoint().as_tcp()?);
    Some(fd.try_clone_to_owned().map(|fd| HandedSocket { address, fd }))
}

/// A successor process started with the sockets, and the channel on which
/// it says it is ready.
#[derive(Debug)]
pub struct Successor {
    /// The new process.
    pub child: std::process::Child,
    ready: UnixStream,
}

impl Successor {
    /// Blocks until the successor says it is ready (`Ok(true)`), or ends
    /// or closes the channel first (`Ok(false)`). Run it off the async
    /// runtime (`spawn_blocking`).
    ///
    /// # Errors
    ///
    /// Reading the channel failed.
    pub fn wait_ready(&mut self) -> io::Result<bool> {
        let mut byte = [0u8; 1];
        match self.ready.read(&mut byte) {
            Ok(1) => Ok(byte[0] == b'R'),
            Ok(_) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Starts `command` (the same program, normally) with `sockets` inherited
/// and named in its environment, and a channel to hear it is ready.
///
/// # Errors
///
/// Whatever spawning or changing the descriptors' flags reports.
pub fn spawn_successor(command: &mut std::process::Command, sockets: &[HandedSocket]) -> io::Result<Successor> {
    let (ready, theirs) = UnixStream::pair()?;
    let names: Vec<String> = sockets.iter().map(|s| format!("{}={}", s.address.encode(), s.fd.as_raw_fd())).collect();
    command.env(FDS_VAR, names.join(";")).env(READY_VAR, theirs.as_raw_fd().to_string());
    // Close-on-exec off for the spawn alone, so these descriptors and no
    // others cross into the new program, under the same numbers.
    let inheritable: Vec<socket2::SockRef<'_>> =
        sockets.iter().map(|s| socket2::SockRef::from(&s.fd)).chain([socket2::SockRef::from(&theirs)]).collect();
    for socket in &inheritable {
        socket.set_cloexec(false)?;
    }
    let spawned = command.spawn();
    for socket in &inheritable {
        socket.set_cloexec(true)?;
    }
    Ok(Successor { child: spawned?, ready })
}

/// The sockets a predecessor handed this process, and its ready channel.
#[derive(Debug, Default)]
pub struct Inherited {
    sockets: Vec<(SocketAddress, OwnedFd)>,
    ready: Option<UnixStream>,
}

/// Whether this process has taken its handed sockets already.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The sockets a predecessor handed this process (see [`spawn_successor`]);
/// empty when it was not started as a successor. They are taken once per
/// process. The environment is left as it is, since changing it while other
/// threads run is unsound: a process should remove [`FDS_VAR`] and
/// [`READY_VAR`] before its first thread, as the `kite` binary does.
pub fn inherited() -> Inherited {
    let Ok(names) = std::env::var(FDS_VAR) else { return Inherited::default() };
    if TAKEN.swap(true, Ordering::AcqRel) {
        return Inherited::default();
    }
    let mut sockets = Vec::new();
    for entry in names.split(';').filter(|e| !e.is_empty()) {
        let Some((address, fd)) = entry.rsplit_once('=') else { continue };
        let (Some(address), Ok(fd)) = (SocketAddress::decode(address), fd.parse::<RawFd>()) else { continue };
        // SAFETY: the predecessor passed this descriptor to this process
        // for it to own and named it here; TAKEN makes this the only place
        // that takes it.
        sockets.push((address, unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    let ready = std::env::var(READY_VAR).ok().and_then(|fd| fd.parse::<RawFd>().ok()).map(|fd| {
        // SAFETY: as above, for the ready channel's descriptor.
        UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) })
    });
    Inherited { sockets, ready }
}

impl Inherited {
    /// Whether a predecessor handed this process anything.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty() && self.ready.is_none()
    }

    /// How many sockets were handed over.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Tells the predecessor this process serves: it may stop accepting
    /// and drain. Call it once the server is bound and serving.
    ///
    /// # Errors
    ///
    /// Writing the channel failed (the predecessor is gone).
    pub fn notify_ready(&mut self) -> io::Result<()> {
        match self.ready.take() {
            Some(mut ready) => ready.write_all(b"R"),
            None => Ok(()),
        }
    }

    /// The sockets, for the builder.
    pub(crate) fn into_pool(self) -> Pool {
        Pool { sockets: Arc::new(Mutex::new(self.sockets.into_iter().map(|(a, fd)| (a, Some(fd))).collect())) }
    }

    /// Splits off the ready channel, leaving the sockets.
    pub fn take_ready(&mut self) -> Inherited {
        Inherited { sockets: Vec::new(), ready: self.ready.take() }
    }
}

/// Handed sockets not yet adopted, shared by the transports that adopt
/// them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pool {
    sockets: Arc<Mutex<Vec<Handed>>>,
}

/// A handed socket, `None` once adopted.
type Handed = (SocketAddress, Option<OwnedFd>);

impl Pool {
    /// The handed socket for `wanted`: the same address, or for port 0
    /// the first of the same kind and IP (the predecessor resolved it).
    fn take(&self, wanted: &SocketAddress) -> Option<OwnedFd> {
        let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        let matches = |have: &SocketAddress| match (have, wanted) {
            (SocketAddress::Tcp(a), SocketAddress::Tcp(b)) | (SocketAddress::Udp(a), SocketAddress::Udp(b)) => {
                a == b || (b.port() == 0 && a.ip() == b.ip())
            }
            (SocketAddress::Unix(a), SocketAddress::Unix(b)) => a == b,
            _ => false,
        };
        sockets.iter_mut().find(|(have, fd)| fd.is_some() && matches(have)).and_then(|(_, fd)| fd.take())
    }

    /// Closes what no endpoint adopted, and says what it was.
    pub fn close_unused(&self) -> Vec<SocketAddress> {
        let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        sockets.drain(..).filter(|(_, fd)| fd.is_some()).map(|(a, _)| a).collect()
    }

    /// A transport that adopts handed sockets before binding anew.
    pub fn stream(&self, inner: Arc<dyn Transport>) -> Arc<dyn Transport> {
        Arc::new(Adopting { inner, pool: self.clone() })
    }

    /// The same for the multiplexed transport.
    pub fn multiplexed(&self, inner: Arc<dyn MultiplexedTransport>) -> Arc<dyn MultiplexedTransport> {
        Arc::new(Adopting { inner, pool: self.clone() })
    }
}

/// A transport that binds an endpoint to the handed socket of its address
/// when there is one.
struct Adopting<T: ?Sized> {
    inner: Arc<T>,
    pool: Pool,
}

fn adopt(fd: OwnedFd) -> Endpoint {
    tracing::debug!(fd = fd.as_fd().as_raw_fd(), "adopting a socket handed over by the previous process");
    Endpoint::Inherited(InheritedFd::new(fd))
}

#[async_trait]
impl Transport for Adopting<dyn Transport> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn can_bind(&self, endpoint: &Endpoint) -> bool {
        self.inner.can_bind(endpoint)
    }

    async fn bind(&self, endpoint: &Endpoint) -> io::Result<Box<dyn Listener>> {
        let wanted = match endpoint {
            Endpoint::Tcp(addr) => Some(SocketAddress::Tcp(*addr)),
            Endpoint::Unix(path) => Some(SocketAddress::Unix(path.clone())),
            _ => None,
        };
        match wanted.and_then(|wanted| self.pool.take(&wanted)) {
            Some(fd) => self.inner.bind(&adopt(fd)).await,
            None => self.inner.bind(endpoint).await,
        }
    }
}

#[async_trait]
impl MultiplexedTransport for Adopting<dyn MultiplexedTransport> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn bind(&self, endpoint: &Endpoint, features: &Features) -> io::Result<Box<dyn MultiplexedListener>> {
        let wanted = endpoint.as_tcp().map(SocketAddress::Udp);
        match wanted.and_then(|wanted| self.pool.take(&wanted)) {
            Some(fd) => self.inner.bind(&adopt(fd), features).await,
            None => self.inner.bind(endpoint, features).await,
        }
    }
}
