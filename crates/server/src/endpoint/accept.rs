//! Accepting: each listener's loop, letting a connection in under
//! MaxConcurrentConnections, and starting its task in its span, tracked
//! for graceful shutdown.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kite_connection_middleware::ConnectionPipeline;
use kite_transport_core::{ConnectionExecutor, Listener, MultiplexedListener};

use super::ServeMultiplexed;
use crate::metrics::ConnectionMetrics;
use crate::tracker::Tracker;
use crate::ShutdownHandle;

pub(super) async fn accept_loop(
    mut listener: Box<dyn Listener>,
    pipeline: ConnectionPipeline,
    tracker: Arc<Tracker>,
    limit: ConnectionLimit,
    shutdown: ShutdownHandle,
) {
    let mut backoff = Duration::from_millis(5);
    // The endpoint's metric tags, made once.
    let endpoint_labels = Arc::new(crate::metrics::endpoint_labels(listener.local_endpoint()));
    let serve = |connection: kite_transport_core::Connection| {
        let Some(admitted) = admit(connection.context(), &endpoint_labels, &limit) else {
            drop(connection);
            return;
        };
        // A transport with threads of its own (mio, io_uring) runs the task there.
        let executor = connection.context().features().get::<ConnectionExecutor>().cloned();
        admitted.run(&tracker, executor, pipeline.handle(connection));
    };
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait() => {
                // Connections the transport accepted ahead are served, not
                // dropped: no other listener will ever see them.
                for connection in std::future::poll_fn(|cx| listener.poll_close(cx)).await {
                    serve(connection);
                }
                return;
            }
            accepted = listener.accept() => accepted,
        };
        let connection = match accepted {
            Ok(connection) => {
                backoff = Duration::from_millis(5);
                connection
            }
            Err(e) if is_transient(&e) => {
                tracing::debug!(error = %e, "accept failed for one connection");
                continue;
            }
            Err(e) => {
                // A full file table and the like: back off instead of spinning.
                tracing::error!(error = %e, ?backoff, endpoint = %listener.local_endpoint(), "accept failed; backing off");
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        serve(connection);
    }
}

/// Accepts QUIC connections and serves each with HTTP/3, within the
/// server's connection limit, tracked for graceful shutdown.
pub(super) async fn accept_multiplexed(
    mut listener: Box<dyn MultiplexedListener>,
    serve: ServeMultiplexed,
    tracker: Arc<Tracker>,
    limit: ConnectionLimit,
    shutdown: ShutdownHandle,
) {
    // Kestrel's tags for QUIC: network.transport is udp.
    let mut endpoint_labels = crate::metrics::endpoint_labels(listener.local_endpoint());
    endpoint_labels.retain(|label| label.key() != "network.transport");
    endpoint_labels.push(metrics::Label::new("network.transport", "udp"));
    endpoint_labels.push(metrics::Label::new("network.protocol.version", "3"));
    let endpoint_labels = Arc::new(endpoint_labels);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            accepted = listener.accept() => accepted,
        };
        let connection = match accepted {
            Ok(connection) => connection,
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => return,
            Err(e) => {
                tracing::debug!(error = %e, "a QUIC connection failed before it was accepted");
                continue;
            }
        };
        let Some(admitted) = admit(connection.context(), &endpoint_labels, &limit) else {
            drop(connection);
            continue;
        };
        let serving = serve(connection);
        admitted.run(&tracker, None, async move {
            serving.await;
            Ok::<(), std::convert::Infallible>(())
        });
    }
}

/// An accepted connection let in under MaxConcurrentConnections.
struct Admitted {
    id: kite_transport_core::ConnectionId,
    close: kite_transport_core::CloseSignal,
    span: tracing::Span,
    permit: ConnectionPermit,
    metrics: ConnectionMetrics,
}

/// Lets an accepted connection in: counts it (queued until it starts), and
/// holds it to MaxConcurrentConnections. Past the limit it is refused as
/// Kestrel's ConnectionLimitMiddleware does (a warning and
/// `kite.rejected_connections`), and the caller closes it.
fn admit(
    context: &kite_transport_core::ConnectionContext,
    labels: &Arc<Vec<metrics::Label>>,
    limit: &ConnectionLimit,
) -> Option<Admitted> {
    let id = context.id();
    let metrics = ConnectionMetrics::accepted(Arc::clone(labels), context.close_signal().clone());
    let Some(permit) = limit.try_acquire() else {
        tracing::warn!(
            connection_id = %id,
            limit = limit.max,
            "Connection processing ended abnormally: MaxConcurrentConnections reached; the connection is closed"
        );
        crate::metrics::rejected_connection(labels.to_vec());
        return None;
    };
    let span = tracing::debug_span!("connection", connection_id = %id, remote = %context.remote());
    Some(Admitted { id, close: context.close_signal().clone(), span, permit, metrics })
}

impl Admitted {
    /// Runs `serve` in the connection's span, on `executor` if the
    /// transport names one, tracked for graceful shutdown.
    fn run<F, E>(self, tracker: &Arc<Tracker>, executor: Option<ConnectionExecutor>, serve: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let Admitted { id, close, span, permit, metrics } = self;
        let task = Running { serve, metrics, _permit: permit };
        tracker.spawn(id, close, executor, tracing::Instrument::instrument(task, span));
    }
}

pin_project_lite::pin_project! {
    /// A connection's task while it runs: its place under
    /// MaxConcurrentConnections and its metrics, which count it as started
    /// at its first poll, and its start and end in the debug log. A struct
    /// rather than an `async` block, which would hold the captured future
    /// twice for the connection's whole life.
    struct Running<F> {
        #[pin]
        serve: F,
        metrics: ConnectionMetrics,
        _permit: ConnectionPermit,
    }
}

impl<F, E> Future for Running<F>
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let this = self.project();
        if this.metrics.started() {
            tracing::debug!("connection started");
        }
        match std::task::ready!(this.serve.poll(cx)) {
            Ok(()) => tracing::debug!("connection closed"),
            Err(e) => tracing::debug!(error = %e, "connection ended with an error"),
        }
        std::task::Poll::Ready(())
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted | WouldBlock)
}

/// MaxConcurrentConnections across a server's endpoints. A connection
/// holds its permit for as long as its task runs; an upgraded connection's
/// task ends at the upgrade, so it leaves this count.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionLimit {
    active: Arc<AtomicU64>,
    max: Option<u64>,
}

impl ConnectionLimit {
    pub fn new(max: Option<u64>) -> Self {
        Self { active: Arc::default(), max }
    }

    fn try_acquire(&self) -> Option<ConnectionPermit> {
        let max = self.max.unwrap_or(u64::MAX);
        self.active.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        Some(ConnectionPermit { active: Arc::clone(&self.active) })
    }
}

/// One connection's place in the count.
struct ConnectionPermit {
    active: Arc<AtomicU64>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}
