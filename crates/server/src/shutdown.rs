//! Starting a graceful shutdown from outside the server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

/// Starts a server's graceful shutdown: stop accepting, let in-flight
/// requests finish, close idle keep-alive connections, and abort what is
/// left after the shutdown timeout. Clones share one server.
///
/// ```no_run
/// # async fn run(server: kite_server::Server) {
/// let handle = server.shutdown_handle();
/// tokio::spawn(async move {
///     tokio::time::sleep(std::time::Duration::from_secs(60)).await;
///     handle.shutdown();
/// });
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    sender: watch::Sender<bool>,
    /// The stop is a hand-over to a successor that already serves.
    handing_over: Arc<AtomicBool>,
}

impl ShutdownHandle {
    pub(crate) fn new() -> Self {
        Self { sender: watch::channel(false).0, handing_over: Arc::new(AtomicBool::new(false)) }
    }

    /// Begins the graceful shutdown: the readiness probe answers `503`
    /// at once, the server accepts for `drain_delay` more, then stops.
    /// Idempotent.
    pub fn shutdown(&self) {
        self.sender.send_replace(true);
    }

    /// Begins a graceful stop that hands the host over to a successor
    /// already serving on the same listening sockets (an upgrade): the
    /// server stops accepting at once, since the successor accepts, and
    /// skips the drain delay; what it still answers while its connections
    /// finish, the readiness probe included, says what the host is,
    /// healthy (`200`). A load balancer that polls the probe never sees
    /// the host go down. Idempotent; after [`shutdown`](Self::shutdown)
    /// has begun it changes nothing.
    pub fn hand_over(&self) {
        if !self.is_shutdown() {
            self.handing_over.store(true, Ordering::Release);
        }
        self.sender.send_replace(true);
    }

    /// Whether the stop under way is a [`hand_over`](Self::hand_over).
    pub fn is_handing_over(&self) -> bool {
        self.is_shutdown() && self.handing_over.load(Ordering::Acquire)
    }

    /// Whether shutdown has begun.
    pub fn is_shutdown(&self) -> bool {
        *self.sender.borrow()
    }

    /// Waits until shutdown begins.
    pub async fn wait(&self) {
        let mut receiver = self.sender.subscribe();
        let _ = receiver.wait_for(|begun| *begun).await;
    }
}

/// Waits for SIGINT or SIGTERM.
pub(crate) async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl+C stops the server");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
