//! Kestrel's instruments under `kite.*`, through the `metrics` facade: an
//! application (or the `kite` binary's `--metrics-addr`) installs a
//! recorder, and these become counters, gauges and histograms. With no
//! recorder installed each call is a no-op.
//!
//! | name | kind | what |
//! |---|---|---|
//! | `kite.active_connections` | gauge | connections being served |
//! | `kite.connection.duration` | histogram, seconds | how long each connection lasted; `error.type` says why one ended other than cleanly ([`ConnectionEndReason`](kite_transport_core::ConnectionEndReason)) |
//! | `kite.rejected_connections` | counter | connections closed at once by MaxConcurrentConnections |
//! | `kite.queued_connections` | gauge | connections accepted but not yet started |
//! | `kite.upgraded_connections` | gauge | connections upgraded (WebSockets and others) |
//! | `kite.tls_handshake.duration` | histogram, seconds | completed TLS handshakes |
//! | `kite.active_tls_handshakes` | gauge | TLS handshakes in progress |
//! | `kite.acme.certificate.expiry` | gauge, Unix seconds | an ACME certificate's `notAfter` (tag `domain`; feature `acme`) |
//! | `kite.acme.certificate.renew_at` | gauge, Unix seconds | when it is to be renewed |
//! | `kite.acme.orders_failed` | counter | ACME orders that failed |

use std::sync::Arc;
use std::time::{Duration, Instant};

use kite_connection_middleware::tls::{HandshakeObserver, TlsHandshake};
use kite_connection_middleware::HandshakeError;
use kite_transport_core::{CloseSignal, ConnectionContext, ConnectionId, Endpoint};
use metrics::Label;

/// Describes the instruments to the installed recorder (units and help).
pub fn describe() {
    metrics::describe_gauge!("kite.active_connections", "Connections being served");
    metrics::describe_histogram!(
        "kite.connection.duration",
        metrics::Unit::Seconds,
        "How long connections lasted; error.type says why one ended other than cleanly"
    );
    metrics::describe_counter!("kite.rejected_connections", "Connections closed by MaxConcurrentConnections");
    metrics::describe_gauge!("kite.queued_connections", "Connections accepted but not yet started");
    metrics::describe_gauge!("kite.upgraded_connections", "Connections upgraded to another protocol");
    metrics::describe_histogram!("kite.tls_handshake.duration", metrics::Unit::Seconds, "TLS handshake times");
    metrics::describe_gauge!("kite.active_tls_handshakes", "TLS handshakes in progress");
    metrics::describe_gauge!("kite.acme.certificate.expiry", "When the ACME certificate expires, in Unix seconds");
    metrics::describe_gauge!(
        "kite.acme.certificate.renew_at",
        "When the ACME certificate is to be renewed, in Unix seconds"
    );
    metrics::describe_counter!("kite.acme.orders_failed", "ACME orders that failed");
}

/// Keeps `kite.acme.certificate.expiry` (Unix seconds of `notAfter`) and
/// `kite.acme.certificate.renew_at` for `acme`'s certificate, tagged with
/// its first domain, and `kite.acme.orders_failed`.
#[cfg(feature = "acme")]
pub(crate) fn observe_acme(acme: &kite_connection_middleware::tls::acme::Acme) {
    use kite_connection_middleware::tls::acme::AcmeStatus;
    let record = |status: &AcmeStatus| {
        let domain = status.domains.first().cloned().unwrap_or_default();
        let unix = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        if let Some(not_after) = status.not_after {
            metrics::gauge!("kite.acme.certificate.expiry", "domain" => domain.clone()).set(unix(not_after));
        }
        if let Some(renew_at) = status.renew_at {
            metrics::gauge!("kite.acme.certificate.renew_at", "domain" => domain.clone()).set(unix(renew_at));
        }
        // From the certificate's own count: observing it again (a second
        // server on the same certificate) never counts a failure twice.
        metrics::counter!("kite.acme.orders_failed", "domain" => domain).absolute(status.failed_orders);
    };
    record(&acme.status());
    acme.on_change(record);
}

pub(crate) fn rejected_connection(labels: Vec<Label>) {
    metrics::counter!("kite.rejected_connections", labels).increment(1);
}

/// Kestrel's tags for an endpoint: `server.address`, `server.port` and
/// `network.transport` (`tcp` or `unix`). The values are shared strings,
/// so a connection's copy of the tags allocates no string.
pub(crate) fn endpoint_labels(endpoint: &Endpoint) -> Vec<Label> {
    let shared = |value: String| metrics::SharedString::from(std::sync::Arc::<str>::from(value));
    match endpoint {
        Endpoint::Tcp(addr) => vec![
            Label::new("server.address", shared(addr.ip().to_string())),
            Label::new("server.port", shared(addr.port().to_string())),
            Label::new("network.transport", "tcp"),
        ],
        Endpoint::Unix(path) => {
            vec![
                Label::new("server.address", shared(path.display().to_string())),
                Label::new("network.transport", "unix"),
            ]
        }
        _ => vec![Label::new("server.address", shared(endpoint.to_string()))],
    }
}

/// A connection from accept to its end: queued until it starts, then
/// active; its duration is recorded when it is dropped. It holds the
/// endpoint's tags, shared, rather than a copy (through a thin pointer:
/// this lives in every connection's task), and the connection's close
/// signal, on which the layer that ended it recorded why.
pub(crate) struct ConnectionMetrics {
    accepted: Instant,
    started: bool,
    labels: Arc<Vec<Label>>,
    close: CloseSignal,
}

impl ConnectionMetrics {
    pub fn accepted(labels: Arc<Vec<Label>>, close: CloseSignal) -> Self {
        metrics::gauge!("kite.queued_connections", labels.to_vec()).increment(1.0);
        Self { accepted: Instant::now(), started: false, labels, close }
    }

    /// Counts the connection as started, once; returns whether this call
    /// did.
    pub fn started(&mut self) -> bool {
        if self.started {
            return false;
        }
        self.started = true;
        metrics::gauge!("kite.queued_connections", self.labels.to_vec()).decrement(1.0);
        metrics::gauge!("kite.active_connections", self.labels.to_vec()).increment(1.0);
        true
    }
}

impl Drop for ConnectionMetrics {
    fn drop(&mut self) {
        if self.started {
            metrics::gauge!("kite.active_connections", self.labels.to_vec()).decrement(1.0);
            let mut labels = self.labels.to_vec();
            if let Some(reason) = self.close.end_reason() {
                labels.push(Label::new("error.type", reason.as_str()));
            }
            metrics::histogram!("kite.connection.duration", labels).record(self.accepted.elapsed().as_secs_f64());
        } else {
            metrics::gauge!("kite.queued_connections", self.labels.to_vec()).decrement(1.0);
        }
    }
}

/// Counts TLS handshakes in progress (`kite.active_tls_handshakes`) and
/// records each one's duration (`kite.tls_handshake.duration`, completed
/// handshakes only, as Kestrel's), told by the TLS middleware itself.
pub(crate) struct HandshakeMetrics;

impl HandshakeObserver for HandshakeMetrics {
    fn started(&self, _context: &ConnectionContext) {
        metrics::gauge!("kite.active_tls_handshakes").increment(1.0);
    }

    fn ended(&self, _id: ConnectionId, elapsed: Duration, outcome: Result<&TlsHandshake, &HandshakeError>) {
        metrics::gauge!("kite.active_tls_handshakes").decrement(1.0);
        if outcome.is_ok() {
            metrics::histogram!("kite.tls_handshake.duration").record(elapsed.as_secs_f64());
        }
    }
}
