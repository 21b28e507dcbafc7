//! What a connection knows about itself besides its byte stream.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{CloseSignal, Endpoint, Features};

/// A connection's identifier, unique within the process. It appears in every
/// log event and span of the connection and its requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// The next identifier from a process-wide counter. Transports call this
    /// once per accepted connection.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnectionId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// An identifier from a raw value, for transports that number their own.
    pub fn from_u64(value: u64) -> Self {
        ConnectionId(value)
    }

    /// The raw value.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    /// Sixteen upper-case hex digits, e.g. `000000000000002A`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", self.0)
    }
}

/// Everything about a connection except its byte stream: identity,
/// addresses, the transport's name, the graceful-close signal, and a typed
/// map of features that middleware extends (Kestrel's `ConnectionContext`
/// without `Transport`).
///
/// # Examples
///
/// ```
/// use kite_transport_core::{ConnectionContext, ConnectionId, Endpoint};
///
/// let ctx = ConnectionContext::new(
///     ConnectionId::next(),
///     Endpoint::Tcp("127.0.0.1:5000".parse().unwrap()),
///     Endpoint::Tcp("127.0.0.1:40112".parse().unwrap()),
///     "sockets",
/// );
/// assert_eq!(ctx.transport(), "sockets");
/// assert!(!ctx.close_signal().is_requested());
/// ```
#[derive(Debug)]
pub struct ConnectionContext {
    id: ConnectionId,
    local: Endpoint,
    remote: Endpoint,
    transport: &'static str,
    close: CloseSignal,
    features: Features,
}

impl ConnectionContext {
    /// A context with no features and a fresh close signal. `transport` names
    /// the transport that accepted the connection (`"sockets"`, `"mio"`,
    /// `"memory"`); applications can read it.
    pub fn new(id: ConnectionId, local: Endpoint, remote: Endpoint, transport: &'static str) -> Self {
        Self { id, local, remote, transport, close: CloseSignal::new(), features: Features::new() }
    }

    /// The connection's identifier.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// The address the connection was accepted on.
    pub fn local(&self) -> &Endpoint {
        &self.local
    }

    /// The peer's address.
    pub fn remote(&self) -> &Endpoint {
        &self.remote
    }

    /// Replaces the addresses, for middleware that learns the real ones (the
    /// PROXY protocol: the client's address as a proxy in front saw it).
    pub fn set_addresses(&mut self, local: Endpoint, remote: Endpoint) {
        self.local = local;
        self.remote = remote;
    }

    /// The name of the transport that accepted the connection.
    pub fn transport(&self) -> &'static str {
        self.transport
    }

    /// The signal by which the server asks the connection to close
    /// gracefully. Clone it to request close from elsewhere.
    pub fn close_signal(&self) -> &CloseSignal {
        &self.close
    }

    /// Replaces the close signal, so that a server can share one it holds.
    pub fn set_close_signal(&mut self, signal: CloseSignal) {
        self.close = signal;
    }

    /// The connection's features.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// The connection's features, to add or change one.
    pub fn features_mut(&mut self) -> &mut Features {
        &mut self.features
    }
}
