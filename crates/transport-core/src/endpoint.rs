//! Where a listener is bound or a peer is connected from.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

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
    Inherited(i32),
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
            Endpoint::Inherited(fd) => write!(f, "fd:{fd}"),
            Endpoint::Unnamed => f.write_str("unnamed"),
        }
    }
}
