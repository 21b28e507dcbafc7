//! Limits and options of the HTTP core.

use std::time::Duration;

/// Kestrel's server limits, with Kestrel's defaults (`KestrelServerLimits`).
///
/// Set fields on a default value:
///
/// ```
/// use std::time::Duration;
/// use kite_http_core::Limits;
///
/// let mut limits = Limits::default();
/// limits.max_request_body_size = Some(1_000_000);
/// limits.request_headers_timeout = Duration::from_secs(10);
/// assert_eq!(limits.max_request_header_count, 100);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The longest request line (method, target, version) in bytes. Longer
    /// gets `414 URI Too Long`. Default: 8,192.
    pub max_request_line_size: usize,
    /// The most bytes of header fields a request may send, not counting the
    /// request line. More gets `431 Request Header Fields Too Large`.
    /// Default: 32,768.
    pub max_request_headers_total_size: usize,
    /// The most header fields a request may send. More gets `431`.
    /// Default: 100.
    pub max_request_header_count: usize,
    /// The largest request body in bytes, `None` for no limit. Larger gets
    /// `413 Payload Too Large`. A request may change its own limit through
    /// the [`MaxRequestBodySize`](crate::MaxRequestBodySize) extension until
    /// its body is read. Default: `Some(30_000_000)`.
    pub max_request_body_size: Option<u64>,
    /// How long the server keeps an idle connection open between requests.
    /// Default: 130 seconds.
    pub keep_alive_timeout: Duration,
    /// How long the server waits for a request's headers: from accept for a
    /// connection's first request, from its first byte for later ones. Past
    /// it, a partly received request gets `408 Request Timeout`.
    /// Default: 30 seconds.
    pub request_headers_timeout: Duration,
    /// How many response bytes are gathered before they are written to the
    /// connection; small responses of pipelined requests leave together.
    /// Default: 65,536.
    pub max_response_buffer_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_line_size: 8 * 1024,
            max_request_headers_total_size: 32 * 1024,
            max_request_header_count: 100,
            max_request_body_size: Some(30_000_000),
            keep_alive_timeout: Duration::from_secs(130),
            request_headers_timeout: Duration::from_secs(30),
            max_response_buffer_size: 64 * 1024,
        }
    }
}

/// Options for [`serve_connection`](crate::serve_connection).
///
/// ```
/// use kite_http_core::HttpOptions;
///
/// let options = HttpOptions::default().add_server_header(false);
/// assert!(!options.server_header());
/// ```
#[derive(Clone, Debug)]
pub struct HttpOptions {
    pub(crate) limits: Limits,
    pub(crate) add_server_header: bool,
    pub(crate) drain_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self { limits: Limits::default(), add_server_header: true, drain_timeout: Duration::from_secs(5) }
    }
}

impl HttpOptions {
    /// Options with default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the limits. Default: [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether responses carry `Server: kite`. Default: `true`.
    pub fn add_server_header(mut self, enabled: bool) -> Self {
        self.add_server_header = enabled;
        self
    }

    /// How long an unread request body is drained after its response before
    /// the connection is closed instead of kept alive. Kestrel fixes this at
    /// 5 seconds; it is settable here for tests. Default: 5 seconds.
    pub fn request_drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The limits in force.
    pub fn get_limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the `Server` header is added.
    pub fn server_header(&self) -> bool {
        self.add_server_header
    }
}
