//! Kite's event-loop transport on mio: the role Kestrel's libuv transport
//! played.
//!
//! [`MioTransport`] runs N event-loop threads of its own (by default half
//! the cores, at least 1 and at most 16), each owning a `mio::Poll`. A
//! listener takes its readiness from one loop and hands each accepted
//! socket to the next loop in turn; readiness wakes the connection's task
//! through its waker. Each connection carries a
//! [`ConnectionExecutor`] feature
//! for its loop, and a server that honours it runs the connection's task on
//! that loop, so readiness wakes it on the same thread, as in libuv. No
//! tokio reactor is involved; tokio's timers and spawner stay available to
//! the tasks through the runtime the transport was created in. The HTTP
//! core and every middleware run on these streams unchanged.
//!
//! The loop threads stop when the transport and every listener and stream
//! made from it are dropped. A loop that panics is reported with an error
//! event and its sockets fail, rather than hang.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use kite_transport_core::{Endpoint, Transport};
//! use kite_transport_mio::{MioOptions, MioTransport};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let transport = MioTransport::new(MioOptions::default().threads(2)).unwrap();
//! let mut listener = transport.bind(&Endpoint::Tcp("127.0.0.1:0".parse().unwrap())).await.unwrap();
//! let addr = listener.local_endpoint().as_tcp().unwrap();
//!
//! let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
//! let mut connection = listener.accept().await.unwrap();
//! assert_eq!(connection.context().transport(), "mio");
//!
//! client.write_all(b"ping").await.unwrap();
//! let mut buf = [0u8; 4];
//! connection.read_exact(&mut buf).await.unwrap();
//! assert_eq!(&buf, b"ping");
//! # });
//! ```
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod event_loop;
mod listener;
mod registration;
mod stream;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use kite_socket::SocketOptions;
use kite_transport_core::loop_executor::LoopSet;
use kite_transport_core::{Endpoint, Listener, Transport};

use event_loop::LoopHandle;
pub use listener::MioListener;
pub use stream::MioStream;

/// The name this transport gives its connections.
pub const TRANSPORT_NAME: &str = "mio";

/// Options for a [`MioTransport`].
///
/// ```
/// use kite_transport_mio::MioOptions;
///
/// let options = MioOptions::default().threads(4);
/// assert_eq!(options.threads, 4);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MioOptions {
    /// How many event-loop threads to run. Default: half the cores the
    /// process may use, at least 1 and at most 16 (Kestrel's libuv rule).
    /// Zero means one.
    pub threads: usize,
    /// Socket options for listeners and accepted sockets. Default:
    /// [`SocketOptions::default`] (nodelay on, backlog 512).
    pub socket: SocketOptions,
    /// The most connections the transport keeps open at once (see
    /// [`max_connections`](Self::max_connections)). Default: `None`.
    pub max_connections: Option<usize>,
}

impl Default for MioOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self { threads: (cores / 2).clamp(1, 16), socket: SocketOptions::default(), max_connections: None }
    }
}

impl MioOptions {
    /// How many event-loop threads to run. Default: half the cores the
    /// process may use, at least 1 and at most 16 (Kestrel's libuv rule).
    /// Zero means one.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Socket options for listeners and accepted sockets. Default:
    /// [`SocketOptions::default`] (nodelay on, backlog 512).
    pub fn socket(mut self, options: SocketOptions) -> Self {
        self.socket = options;
        self
    }

    /// The most connections the transport keeps open at once. At the limit
    /// its listeners stop accepting, so new connections wait in the
    /// kernel's backlog, and accepting resumes as soon as one closes
    /// (back-pressure, as actix-server's `maxconn`). Default: `None`, no
    /// limit. (The server's `MaxConcurrentConnections`, which refuses the
    /// excess instead, is a separate limit.)
    pub fn max_connections(mut self, max: Option<usize>) -> Self {
        self.max_connections = max;
        self
    }
}

/// The loops of one transport.
pub(crate) type EventLoops = LoopSet<LoopHandle>;

/// The mio transport. Cloning shares the event loops. Its threads are
/// named `kite-mio-{transport}-{loop}`.
#[derive(Clone)]
pub struct MioTransport {
    loops: Arc<EventLoops>,
    options: MioOptions,
    id: usize,
}

impl MioTransport {
    /// Starts the event-loop threads. Call it inside a tokio runtime: the
    /// loops run their tasks in its context, so they can use its timers.
    ///
    /// # Errors
    ///
    /// When the system refuses a poll instance or a thread.
    pub fn new(mut options: MioOptions) -> io::Result<Self> {
        // Zero means one, whatever was written to the field.
        options.threads = options.threads.max(1);
        static TRANSPORTS: AtomicUsize = AtomicUsize::new(0);
        let transport = TRANSPORTS.fetch_add(1, Ordering::Relaxed);
        let runtime = tokio::runtime::Handle::try_current().ok();
        if runtime.is_none() {
            tracing::warn!(
                "the mio transport was created outside a tokio runtime; its connections cannot use tokio timers"
            );
        }
        let loops = (0..options.threads)
            .map(|index| LoopHandle::start(transport, index, runtime.clone()))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self { loops: Arc::new(LoopSet::new(loops, options.max_connections)), options, id: transport })
    }

    /// The number in the names of this transport's threads
    /// (`kite-mio-{id}-{loop}`), unique within the process.
    pub fn id(&self) -> usize {
        self.id
    }

    /// How many connections of this transport are open.
    pub fn live_connections(&self) -> usize {
        self.loops.admission().live()
    }

    /// How many event loops run.
    pub fn threads(&self) -> usize {
        self.loops.len()
    }
}

impl std::fmt::Debug for MioTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MioTransport").field("id", &self.id).field("threads", &self.threads()).finish()
    }
}

#[async_trait]
impl Transport for MioTransport {
    fn name(&self) -> &'static str {
        TRANSPORT_NAME
    }

    async fn bind(&self, endpoint: &Endpoint) -> io::Result<Box<dyn Listener>> {
        Ok(Box::new(MioListener::bind(endpoint, Arc::clone(&self.loops), &self.options.socket)?))
    }
}

#[cfg(test)]
mod tests;
