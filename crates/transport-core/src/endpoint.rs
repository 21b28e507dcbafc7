//! Where a listener is bound or a peer is connected from.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// An address a [`Transport`](crate::Transport) binds to, and the address a
/// connection's local or remote side has.
///
/// Kestrel's `EndPoint` types map onto the variants: `IPEndPoint` is
/// [`Endpoint::Tcp`], `UnixDomainSocketEndPoint` is [`Endpoint::Unix`].
///
/// # Examples
///
/// ```
/// use kite_transport_core::Endpoint;
///
/// let tcp: Endpoint = "127.0.0.1:5000".parse::<std::net::SocketAddr>().unwrap().into();
/// assert_eq!(tcp.to_string(), "127.0.0.1:5000");
/// let unix = Endpoint::Unix("/tmp/kite.sock".into());
/// assert_eq!(unix.to_string(), "unix:/tmp/kite.sock");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// A TCP address, IPv4 or IPv6. Port 0 asks the system for a free port;
    /// a bound listener reports the real one.
    Tcp(SocketAddr),
    /// A Unix domain socket at a filesystem path.
    Unix(PathBuf),
    /// A listening socket inherited as an open file descriptor: from
    /// systemd socket activation (`LISTEN_FDS`) or a parent process. Binding
    /// it adopts the socket, TCP or Unix; the bound listener reports its
    /// real address.
    Inherited(InheritedFd),
    /// A peer with no address: an unnamed Unix socket client, or one end of
    /// an in-memory pipe.
    Unnamed,
}

impl Endpoint {
    /// The TCP address, if this is a TCP endpoint.
    pub fn as_tcp(&self) -> Option<SocketAddr> {
        match self {
            Endpoint::Tcp(addr) => Some(*addr),
            _ => None,
        }
    }

    /// The socket path, if this is a Unix endpoint.
    pub fn as_unix(&self) -> Option<&std::path::Path> {
        match self {
            Endpoint::Unix(path) => Some(path),
            _ => None,
        }
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        Endpoint::Tcp(addr)
    }
}

impl fmt::Display for Endpoint {
    /// TCP addresses print as `127.0.0.1:5000` or `[::1]:5000`, Unix paths
    /// as `unix:/path`, and an unnamed peer as `unnamed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "{addr}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Inherited(fd) => write!(f, "fd:{}", fd.raw),
            Endpoint::Unnamed => f.write_str("unnamed"),
        }
    }
}

/// An inherited listening socket, owned: the [`OwnedFd`] it was made from
/// is handed to the first listener bound on it, and closed with that
/// listener (or with the last clone, if none was bound).
///
/// Clones share the one descriptor, so an [`Endpoint`] stays `Clone`;
/// only one of them can be adopted. Equality and hashing go by descriptor
/// number.
///
/// # Examples
///
/// ```
/// use kite_transport_core::InheritedFd;
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let inherited = InheritedFd::new(listener.into());
/// assert!(inherited.take().is_ok());
/// assert!(inherited.take().is_err(), "a descriptor is adopted once");
/// ```
#[derive(Clone)]
pub struct InheritedFd {
    raw: RawFd,
    owned: Arc<Mutex<Option<OwnedFd>>>,
}

impl InheritedFd {
    /// Wraps an owned descriptor. A raw one from a parent process becomes
    /// an [`OwnedFd`] through the unsafe `OwnedFd::from_raw_fd`, whose
    /// caller vouches that it is open and used by nothing else.
    pub fn new(fd: OwnedFd) -> Self {
        Self { raw: fd.as_raw_fd(), owned: Arc::new(Mutex::new(Some(fd))) }
    }

    /// The descriptor's number.
    pub fn as_raw_fd(&self) -> RawFd {
        self.raw
    }

    /// Takes the descriptor, for the listener that adopts it.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::AlreadyExists`] once it has been taken.
    pub fn take(&self) -> io::Result<OwnedFd> {
        let mut owned = self.owned.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        owned.take().ok_or_else(|| {
            io::Error::new(io::ErrorKind::AlreadyExists, format!("fd {} is already adopted by a listener", self.raw))
        })
    }
}

impl fmt::Debug for InheritedFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("InheritedFd").field(&self.raw).finish()
    }
}

impl PartialEq for InheritedFd {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for InheritedFd {}

impl Hash for InheritedFd {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}
