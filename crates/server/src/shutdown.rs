//! Starting a graceful shutdown from outside the server.

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
}

impl ShutdownHandle {
    pub(crate) fn new() -> Self {
        Self { sender: watch::channel(false).0 }
    }

    /// Begins the graceful shutdown. Idempotent.
    pub fn shutdown(&self) {
        self.sender.send_replace(true);
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
