//! The server's options.

use std::time::Duration;

use kite_http_core::HttpOptions;

/// Options for a [`Server`](crate::Server) (Kestrel's `KestrelServerOptions`
/// and the host's shutdown timeout): the HTTP settings every endpoint uses,
/// held as one [`HttpOptions`], plus what only a server has.
///
/// ```
/// use std::time::Duration;
/// use kite_server::ServerOptions;
///
/// let mut options = ServerOptions::default();
/// options.shutdown_timeout = Duration::from_secs(5);
/// options.http.limits.max_request_body_size = None;
/// assert!(options.http.add_server_header);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Limits, timeouts, HTTP/2 limits, protocols and the `Server` header,
    /// for every endpoint (an endpoint may narrow its protocols). Default:
    /// [`HttpOptions::default`].
    pub http: HttpOptions,
    /// How long graceful shutdown waits for in-flight requests before it
    /// aborts the connections left. Default: 30 seconds.
    pub shutdown_timeout: Duration,
    /// Whether SIGINT and SIGTERM start a graceful shutdown. Default: `true`.
    pub handle_signals: bool,
    /// The readiness probe's path (`/healthz`, say): the server answers it
    /// itself, `200 Healthy` while it accepts connections and
    /// `503 Draining` from the moment a graceful shutdown starts (not a
    /// hand-over to a successor, [`ShutdownHandle::hand_over`](crate::ShutdownHandle::hand_over),
    /// after which the host is still healthy).
    /// Default: `None` (no probe).
    pub health_path: Option<String>,
    /// How long the server goes on accepting after a graceful shutdown
    /// starts, with the probe already answering `503`, so a load balancer
    /// that polls it stops sending work first. Not applied to a hand-over,
    /// where the successor accepts. Default: zero.
    pub drain_delay: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            http: HttpOptions::default(),
            shutdown_timeout: Duration::from_secs(30),
            handle_signals: true,
            health_path: None,
            drain_delay: Duration::ZERO,
        }
    }
}

kite_transport_core::option_setters!(ServerOptions {
    http: HttpOptions,
    shutdown_timeout: Duration,
    handle_signals: bool,
    health_path: Option<String>,
    drain_delay: Duration,
});
