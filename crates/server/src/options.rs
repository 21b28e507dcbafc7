//! The server's options.

use std::time::Duration;

use kite_http_core::{Http2Limits, HttpOptions, Limits, Protocols};

/// Options for a [`Server`](crate::Server) (Kestrel's `KestrelServerOptions`
/// and the host's shutdown timeout).
///
/// ```
/// use std::time::Duration;
/// use kite_server::ServerOptions;
///
/// let mut options = ServerOptions::default();
/// options.shutdown_timeout = Duration::from_secs(5);
/// options.limits.max_request_body_size = None;
/// assert!(options.add_server_header);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Limits and timeouts for every connection. Default: [`Limits::default`].
    pub limits: Limits,
    /// HTTP/2 limits, checked at bind. Default: [`Http2Limits::default`].
    pub http2: Http2Limits,
    /// The HTTP versions every endpoint speaks. Default:
    /// [`Protocols::Http1AndHttp2`].
    pub protocols: Protocols,
    /// Whether responses carry `Server: kite`. Default: `true`.
    pub add_server_header: bool,
    /// How long graceful shutdown waits for in-flight requests before it
    /// aborts the connections left. Default: 30 seconds.
    pub shutdown_timeout: Duration,
    /// Whether SIGINT and SIGTERM start a graceful shutdown. Default: `true`.
    pub handle_signals: bool,
    /// How long an unread request body is drained after its response.
    /// Kestrel fixes it at 5 seconds. Default: 5 seconds.
    pub request_drain_timeout: Duration,
    /// How often the server's heartbeat checks every connection's
    /// timeouts and data rates and refreshes `Date`. Kestrel fixes it at
    /// 1 second; tests shorten it so short timeouts stay precise.
    /// Default: 1 second.
    pub heartbeat_interval: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            http2: Http2Limits::default(),
            protocols: Protocols::default(),
            add_server_header: true,
            shutdown_timeout: Duration::from_secs(30),
            handle_signals: true,
            request_drain_timeout: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(1),
        }
    }
}

impl ServerOptions {
    /// The HTTP core's options these make.
    pub fn http_options(&self) -> HttpOptions {
        HttpOptions::new()
            .limits(self.limits.clone())
            .http2_limits(self.http2.clone())
            .protocols(self.protocols)
            .add_server_header(self.add_server_header)
            .request_drain_timeout(self.request_drain_timeout)
            .heartbeat_interval(self.heartbeat_interval)
    }
}
