//! Kestrel's instruments under `kite.*`, through the `metrics` facade: an
//! application (or the `kite` binary's `--metrics-addr`) installs a
//! recorder, and these become counters, gauges and histograms. With no
//! recorder installed each call is a no-op.
//!
//! | name | kind | what |
//! |---|---|---|
//! | `kite.active_connections` | gauge | connections being served |
//! | `kite.connection.duration` | histogram, seconds | how long each connection lasted |
//! | `kite.rejected_connections` | counter | connections closed at once by MaxConcurrentConnections |
//! | `kite.queued_connections` | gauge | connections accepted but not yet started |
//! | `kite.upgraded_connections` | gauge | connections upgraded (WebSockets and others) |
//! | `kite.tls_handshake.duration` | histogram, seconds | completed TLS handshakes |
//! | `kite.active_tls_handshakes` | gauge | TLS handshakes in progress |

use std::time::Instant;

use kite_connection_middleware::{ConnectionError, ConnectionMiddleware, Next};
use kite_transport_core::{Connection, Endpoint};
use metrics::Label;

/// Describes the instruments to the installed recorder (units and help).
pub fn describe() {
    metrics::describe_gauge!("kite.active_connections", "Connections being served");
    metrics::describe_histogram!("kite.connection.duration", metrics::Unit::Seconds, "How long connections lasted");
    metrics::describe_counter!("kite.rejected_connections", "Connections closed by MaxConcurrentConnections");
    metrics::describe_gauge!("kite.queued_connections", "Connections accepted but not yet started");
    metrics::describe_gauge!("kite.upgraded_connections", "Connections upgraded to another protocol");
    metrics::describe_histogram!("kite.tls_handshake.duration", metrics::Unit::Seconds, "TLS handshake times");
    metrics::describe_gauge!("kite.active_tls_handshakes", "TLS handshakes in progress");
}

pub(crate) fn rejected_connection(labels: Vec<Label>) {
    metrics::counter!("kite.rejected_connections", labels).increment(1);
}

/// Kestrel's tags for an endpoint: `server.address`, `server.port` and
/// `network.transport` (`tcp` or `unix`).
pub(crate) fn endpoint_labels(endpoint: &Endpoint) -> Vec<Label> {
    match endpoint {
        Endpoint::Tcp(addr) => vec![
            Label::new("server.address", addr.ip().to_string()),
            Label::new("server.port", addr.port().to_string()),
            Label::new("network.transport", "tcp"),
        ],
        Endpoint::Unix(path) => {
            vec![Label::new("server.address", path.display().to_string()), Label::new("network.transport", "unix")]
        }
        _ => vec![Label::new("server.address", endpoint.to_string())],
    }
}

/// A connection from accept to its end: queued until it starts, then
/// active; its duration is recorded when it is dropped.
pub(crate) struct ConnectionMetrics {
    accepted: Instant,
    started: bool,
    labels: Vec<Label>,
}

impl ConnectionMetrics {
    pub fn accepted(labels: Vec<Label>) -> Self {
        metrics::gauge!("kite.queued_connections", labels.clone()).increment(1.0);
        Self { accepted: Instant::now(), started: false, labels }
    }

    pub fn started(&mut self) {
        if !self.started {
            self.started = true;
            metrics::gauge!("kite.queued_connections", self.labels.clone()).decrement(1.0);
            metrics::gauge!("kite.active_connections", self.labels.clone()).increment(1.0);
        }
    }
}

impl Drop for ConnectionMetrics {
    fn drop(&mut self) {
        let labels = std::mem::take(&mut self.labels);
        if self.started {
            metrics::gauge!("kite.active_connections", labels.clone()).decrement(1.0);
            metrics::histogram!("kite.connection.duration", labels).record(self.accepted.elapsed().as_secs_f64());
        } else {
            metrics::gauge!("kite.queued_connections", labels).decrement(1.0);
        }
    }
}

/// A TLS handshake in progress, carried in the connection's features
/// between the two handshake middlewares; dropping it ends the gauge.
struct Handshake {
    started: Instant,
}

impl Drop for Handshake {
    fn drop(&mut self) {
        metrics::gauge!("kite.active_tls_handshakes").decrement(1.0);
    }
}

/// Placed just before TLS: the handshake starts.
pub(crate) struct HandshakeStarted;

#[async_trait::async_trait]
impl ConnectionMiddleware for HandshakeStarted {
    async fn on_connection(&self, mut connection: Connection, next: Next) -> Result<(), ConnectionError> {
        metrics::gauge!("kite.active_tls_handshakes").increment(1.0);
        connection.context_mut().features_mut().insert(Handshake { started: Instant::now() });
        next.run(connection).await
    }
}

/// Placed just after TLS: the handshake completed.
pub(crate) struct HandshakeCompleted;

#[async_trait::async_trait]
impl ConnectionMiddleware for HandshakeCompleted {
    async fn on_connection(&self, mut connection: Connection, next: Next) -> Result<(), ConnectionError> {
        if let Some(handshake) = connection.context_mut().features_mut().remove::<Handshake>() {
            metrics::histogram!("kite.tls_handshake.duration").record(handshake.started.elapsed().as_secs_f64());
        }
        next.run(connection).await
    }
}
