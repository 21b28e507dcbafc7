//! Kite's completion-based transport on io_uring.
//!
//! [`UringTransport`] runs N loop threads of its own (by default half the
//! cores, at least 1 and at most 16), each with its own io_uring, its own
//! buffer ring and its own executor, as the mio transport has. A listener
//! accepts with one multishot accept; each accepted socket goes to the next
//! loop in turn, which receives for it with one multishot receive into
//! its provided-buffer ring, so an idle connection holds no buffer at all.
//! Writes are queued and every connection's sends of a loop turn leave
//! with one `io_uring_enter`, which also collects the turn's completions.
//!
//! Each connection carries a [`ConnectionExecutor`] feature for its loop;
//! a server that honours it runs the connection's task on that loop, so a
//! completion wakes its task on the same thread. The HTTP core, TLS and
//! every middleware run on these streams unchanged.
//!
//! The kernel must allow io_uring and have multishot receive (Linux 6.0
//! or later). Where it does not, [`UringTransport::new`] fails with an
//! [`Unavailable`] error that says why; nothing falls back silently.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use kite_transport_core::{Endpoint, Transport};
//! use kite_transport_uring::{UringOptions, UringTransport};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let transport = match UringTransport::new(UringOptions::default().threads(1)) {
//!     Ok(transport) => transport,
//!     // A kernel or sandbox without io_uring: the error says which.
//!     Err(e) => return eprintln!("{e}"),
//! };
//! let mut listener = transport.bind(&Endpoint::Tcp("127.0.0.1:0".parse().unwrap())).await.unwrap();
//! let addr = listener.local_endpoint().as_tcp().unwrap();
//!
//! let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
//! let mut connection = listener.accept().await.unwrap();
//! assert_eq!(connection.context().transport(), "uring");
//!
//! client.write_all(b"ping").await.unwrap();
//! let mut buf = [0u8; 4];
//! connection.read_exact(&mut buf).await.unwrap();
//! assert_eq!(&buf, b"ping");
//! # });
//! ```
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod accept;
mod buffers;
mod conn;
mod driver;
mod handle;
mod listener;
mod ops;
mod send_pool;
mod setup;
mod stream;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kite_socket::SocketOptions;
use kite_transport_core::loop_executor::LoopSet;
use kite_transport_core::{Endpoint, Listener, Transport};

use handle::LoopHandle;
pub use listener::UringListener;
pub use setup::Unavailable;
pub use stream::UringStream;

/// The name this transport gives its connections.
pub const TRANSPORT_NAME: &str = "uring";

/// Options for a [`UringTransport`].
///
/// ```
/// use kite_transport_uring::UringOptions;
///
/// let options = UringOptions::default().threads(2).buffers(1024, 4096);
/// assert_eq!(options.threads, 2);
/// assert_eq!((options.buffer_count, options.buffer_size), (1024, 4096));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct UringOptions {
    /// How many loop threads (each with its own ring) to run. Default:
    /// half the cores the process may use, at least 1 and at most 16.
    /// Zero means one.
    pub threads: usize,
    /// Socket options for listeners and accepted sockets. Default:
    /// [`SocketOptions::default`].
    pub socket: SocketOptions,
    /// The most connections the transport keeps open at once (see
    /// [`max_connections`](Self::max_connections)). Default: `None`.
    pub max_connections: Option<usize>,
    /// Kernel-side submission polling, with its idle time (see
    /// [`sqpoll`](Self::sqpoll)). Default: `None`, off.
    pub sqpoll: Option<Duration>,
    /// Submission queue entries per ring (see
    /// [`ring_entries`](Self::ring_entries)). Default: 1024.
    pub ring_entries: u32,
    /// Receive buffers per loop's buffer ring, a power of two (see
    /// [`buffers`](Self::buffers)). Default: 512.
    pub buffer_count: u16,
    /// Bytes per receive buffer. Default: 4096.
    pub buffer_size: usize,
}

impl Default for UringOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            threads: (cores / 2).clamp(1, 16),
            socket: SocketOptions::default(),
            max_connections: None,
            sqpoll: None,
            ring_entries: 1024,
            buffer_count: 512,
            buffer_size: 4096,
        }
    }
}

impl UringOptions {
    /// How many loop threads (each with its own ring) to run. Default:
    /// half the cores the process may use, at least 1 and at most 16, as
    /// the mio transport. Zero means one.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Socket options for listeners and accepted sockets. Default:
    /// [`SocketOptions::default`] (nodelay on, backlog 512). They are set
    /// on the listening socket, which accepted sockets inherit them from.
    pub fn socket(mut self, options: SocketOptions) -> Self {
        self.socket = options;
        self
    }

    /// The most connections the transport keeps open at once. At the limit
    /// its listeners cancel their accepts, so new connections wait in the
    /// kernel's backlog, and accepting resumes when one closes
    /// (back-pressure, as actix-server's `maxconn`). Default: `None`, no
    /// limit.
    pub fn max_connections(mut self, max: Option<usize>) -> Self {
        self.max_connections = max;
        self
    }

    /// Runs a kernel thread per ring that polls for submissions
    /// (`IORING_SETUP_SQPOLL`), sleeping after `idle` without work: fewer
    /// system calls for a core of its own. Default: `None`, off (it costs
    /// a core while busy, and on a small machine that core is the
    /// server's).
    pub fn sqpoll(mut self, idle: Option<Duration>) -> Self {
        self.sqpoll = idle;
        self
    }

    /// The submission queue's size per ring (the completion queue is 8
    /// times as large). Default: 1024. Rounded up to a power of two by the
    /// kernel.
    pub fn ring_entries(mut self, entries: u32) -> Self {
        self.ring_entries = entries.max(8);
        self
    }

    /// The receive buffers of each loop: `count` buffers (a power of two,
    /// at most 32,768; rounded up) of `size` bytes. When all are in use,
    /// connections wait, with their data in the kernel's socket buffers,
    /// until readers give some back. Default: 512 of 4 KiB, 2 MiB per loop.
    pub fn buffers(mut self, count: u16, size: usize) -> Self {
        self.buffer_count = count.clamp(2, 32768).next_power_of_two();
        self.buffer_size = size.clamp(64, 1 << 20);
        self
    }

    /// The options with each value in the range its setter keeps it in,
    /// whatever was written to the fields.
    fn normalised(mut self) -> Self {
        self.threads = self.threads.max(1);
        self.ring_entries = self.ring_entries.max(8);
        self.buffer_count = self.buffer_count.clamp(2, 32768).next_power_of_two();
        self.buffer_size = self.buffer_size.clamp(64, 1 << 20);
        self
    }
}

/// The loops of one transport.
pub(crate) type RingLoops = LoopSet<LoopHandle>;

/// The io_uring transport. Cloning shares the loops. Its threads are
/// named `kite-uring-{transport}-{loop}`.
#[derive(Clone)]
pub struct UringTransport {
    loops: Arc<RingLoops>,
    options: UringOptions,
    id: usize,
}

impl UringTransport {
    /// Checks that the kernel offers what the transport needs, then starts
    /// the loop threads. Call it inside a tokio runtime: the loops run
    /// their tasks in its context, so they can use its timers.
    ///
    /// # Errors
    ///
    /// An error of kind [`io::ErrorKind::Unsupported`] holding an
    /// [`Unavailable`] when io_uring is refused or too old here; any other
    /// error the system reports for a ring, a mapping or a thread.
    pub fn new(options: UringOptions) -> io::Result<Self> {
        let options = options.normalised();
        setup::check_kernel()?;
        static TRANSPORTS: AtomicUsize = AtomicUsize::new(0);
        let transport = TRANSPORTS.fetch_add(1, Ordering::Relaxed);
        let runtime = tokio::runtime::Handle::try_current().ok();
        if runtime.is_none() {
            tracing::warn!(
                "the io_uring transport was created outside a tokio runtime; its connections cannot use tokio timers"
            );
        }
        let loops = (0..options.threads)
            .map(|index| setup::spawn_loop(transport, index, &options, runtime.clone()))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self { loops: Arc::new(LoopSet::new(loops, options.max_connections)), options, id: transport })
    }

    /// The number in the names of this transport's threads
    /// (`kite-uring-{id}-{loop}`), unique within the process.
    pub fn id(&self) -> usize {
        self.id
    }

    /// How many connections of this transport are open.
    pub fn live_connections(&self) -> usize {
        self.loops.admission().live()
    }

    /// How many loops run.
    pub fn threads(&self) -> usize {
        self.loops.len()
    }
}

impl std::fmt::Debug for UringTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringTransport").field("id", &self.id).field("threads", &self.threads()).finish()
    }
}

#[async_trait]
impl Transport for UringTransport {
    fn name(&self) -> &'static str {
        TRANSPORT_NAME
    }

    async fn bind(&self, endpoint: &Endpoint) -> io::Result<Box<dyn Listener>> {
        Ok(Box::new(UringListener::bind(endpoint, Arc::clone(&self.loops), &self.options.socket)?))
    }
}

#[cfg(test)]
mod tests;
