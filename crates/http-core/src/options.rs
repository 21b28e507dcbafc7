//! Limits and options of the HTTP core.

use std::time::Duration;

pub use crate::options_error::OptionsError;
use crate::timing::heartbeat::Heartbeat;
use crate::upgrade::UpgradeCounter;

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
    /// The most connections upgraded at once (WebSockets and other opaque
    /// upgrades) across the server, `None` for no limit. An upgraded
    /// connection leaves `max_concurrent_connections` for this count; a
    /// switch past it is answered `503` and its
    /// [`OnUpgrade`](crate::upgrade::OnUpgrade) fails with
    /// [`LimitReached`](crate::upgrade::UpgradeError::LimitReached).
    /// Default: `None`.
    pub max_concurrent_upgraded_connections: Option<u64>,
    /// The most connections open at once per server, `None` for no limit.
    /// A connection over it is closed at once, with a warning, and counted
    /// as rejected; an upgraded connection leaves this count for
    /// `max_concurrent_upgraded_connections`. Default: `None`.
    pub max_concurrent_connections: Option<u64>,
    /// The slowest a request body may arrive, measured over the time the
    /// server waits for it after a grace period; slower gets `408` and the
    /// connection closes. A request may change or turn off its own rate
    /// through the [`MinDataRates`](crate::MinDataRates) extension.
    /// `None` turns it off. Default: 240 bytes/s after 5 s.
    pub min_request_body_data_rate: Option<MinDataRate>,
    /// The slowest a client may read a response: each write that cannot
    /// finish at once must finish within max(grace period, bytes / rate),
    /// or the connection is aborted. `None` turns it off.
    /// Default: 240 bytes/s after 5 s.
    pub min_response_data_rate: Option<MinDataRate>,
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
            max_concurrent_upgraded_connections: None,
            max_concurrent_connections: None,
            min_request_body_data_rate: Some(MinDataRate::DEFAULT),
            min_response_data_rate: Some(MinDataRate::DEFAULT),
        }
    }
}

impl Limits {
    /// Checks the values that can be wrong: a data rate needs a rate above
    /// zero and a grace period over one second, as in Kestrel.
    ///
    /// # Errors
    ///
    /// [`OptionsError::ZeroRate`] or [`OptionsError::GracePeriod`], naming
    /// the limit.
    pub fn validate(&self) -> Result<(), OptionsError> {
        for (name, rate) in [
            ("MinRequestBodyDataRate", &self.min_request_body_data_rate),
            ("MinResponseDataRate", &self.min_response_data_rate),
        ] {
            if let Some(rate) = rate {
                if rate.bytes_per_second == 0 {
                    return Err(OptionsError::ZeroRate { option: name });
                }
                if rate.grace_period <= Duration::from_secs(1) {
                    return Err(OptionsError::GracePeriod { option: name, grace_period: rate.grace_period });
                }
            }
        }
        Ok(())
    }
}

/// A minimum data rate with its grace period (Kestrel's `MinDataRate`).
///
/// ```
/// use std::time::Duration;
/// use kite_http_core::{Limits, MinDataRate};
///
/// let mut limits = Limits::default();
/// limits.min_request_body_data_rate = Some(MinDataRate::new(100, Duration::from_secs(10)));
/// assert!(limits.validate().is_ok());
/// limits.min_response_data_rate = Some(MinDataRate::new(240, Duration::from_secs(1)));
/// assert!(limits.validate().is_err(), "the grace period must be over 1 s");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinDataRate {
    /// Bytes per second.
    pub bytes_per_second: u64,
    /// How long the rate is not enforced at first.
    pub grace_period: Duration,
}

impl MinDataRate {
    /// Kestrel's default: 240 bytes/s after 5 s.
    pub const DEFAULT: MinDataRate = MinDataRate { bytes_per_second: 240, grace_period: Duration::from_secs(5) };

    /// A rate of `bytes_per_second` after `grace_period`.
    pub const fn new(bytes_per_second: u64, grace_period: Duration) -> Self {
        Self { bytes_per_second, grace_period }
    }
}

/// Which HTTP versions an endpoint speaks (Kestrel's `HttpProtocols`).
/// Default: [`Http1AndHttp2`](Self::Http1AndHttp2).
///
/// Over TLS, ALPN decides: `h2` is HTTP/2, anything else HTTP/1.1. In
/// cleartext, [`Http2`](Self::Http2) means prior-knowledge h2c, and
/// [`Http1AndHttp2`](Self::Http1AndHttp2) reads the first bytes: the HTTP/2
/// preface is h2c, anything else HTTP/1.1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocols {
    /// HTTP/1.x only; an HTTP/2 preface gets GOAWAY(HTTP_1_1_REQUIRED).
    Http1,
    /// HTTP/2 only.
    Http2,
    /// Both.
    #[default]
    Http1AndHttp2,
    /// HTTP/3 only, over QUIC: the endpoint binds no TCP listener. Needs
    /// TLS.
    Http3,
    /// HTTP/1.1 and HTTP/2 over TCP, and HTTP/3 over QUIC on the same port
    /// (Kestrel's `Http1AndHttp2AndHttp3`). Needs TLS.
    Http1AndHttp2AndHttp3,
}

impl Protocols {
    /// Whether HTTP/2 is allowed.
    pub fn http2(self) -> bool {
        matches!(self, Protocols::Http2 | Protocols::Http1AndHttp2 | Protocols::Http1AndHttp2AndHttp3)
    }

    /// Whether HTTP/1.x is allowed.
    pub fn http1(self) -> bool {
        matches!(self, Protocols::Http1 | Protocols::Http1AndHttp2 | Protocols::Http1AndHttp2AndHttp3)
    }

    /// Whether HTTP/3 is allowed.
    pub fn http3(self) -> bool {
        matches!(self, Protocols::Http3 | Protocols::Http1AndHttp2AndHttp3)
    }

    /// Whether the endpoint listens on TCP (HTTP/1.x or HTTP/2).
    pub fn tcp(self) -> bool {
        self.http1() || self.http2()
    }
}

impl std::str::FromStr for Protocols {
    type Err = OptionsError;

    /// Kestrel's names, any case: `Http1`, `Http2`, `Http1AndHttp2`,
    /// `Http3`, `Http1AndHttp2AndHttp3`; [`OptionsError::UnknownProtocols`]
    /// for anything else.
    fn from_str(text: &str) -> Result<Self, OptionsError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "http1" => Ok(Protocols::Http1),
            "http2" => Ok(Protocols::Http2),
            "http1andhttp2" => Ok(Protocols::Http1AndHttp2),
            "http3" => Ok(Protocols::Http3),
            "http1andhttp2andhttp3" => Ok(Protocols::Http1AndHttp2AndHttp3),
            _ => Err(OptionsError::UnknownProtocols(text.to_owned())),
        }
    }
}

/// Kestrel's HTTP/2 limits, with the documented defaults
/// (`Http2Limits`). [`validate`](Self::validate) checks the ranges; the
/// server calls it at startup.
///
/// ```
/// use kite_http_core::Http2Limits;
///
/// let mut limits = Http2Limits::default();
/// assert_eq!(limits.max_streams_per_connection, 100);
/// limits.max_frame_size = 1 << 24;
/// assert!(limits.validate().is_err(), "above 2^24-1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Http2Limits {
    /// Concurrent streams per connection; more are refused with
    /// REFUSED_STREAM. Default: 100.
    pub max_streams_per_connection: u32,
    /// The HPACK dynamic table size. Default: 4,096.
    pub header_table_size: u32,
    /// The largest frame payload the server accepts, 2^14 to 2^24-1.
    /// Default: 16,384.
    pub max_frame_size: u32,
    /// The largest single request header field (name and value) in bytes;
    /// larger gets `431`. Default: 8,192.
    pub max_request_header_field_size: u32,
    /// The connection-level receive window. Default: 131,072.
    pub initial_connection_window_size: u32,
    /// Each stream's receive window. Default: 98,304.
    pub initial_stream_window_size: u32,
    /// How long a connection may be idle before the server pings it;
    /// `None` sends no pings. Default: `None`.
    pub keep_alive_ping_delay: Option<Duration>,
    /// How long a ping may go unanswered before the connection is closed.
    /// Default: 20 seconds.
    pub keep_alive_ping_timeout: Duration,
    /// How long a stream whose response has ended keeps discarding a
    /// request body the application left unread, before it is reset with
    /// `RST_STREAM(NO_ERROR)`; zero resets at once. Kestrel drains an
    /// unread HTTP/1.1 body for as long. Default: 5 seconds.
    pub request_drain_timeout: Duration,
    /// How many bytes of an unread request body a stream discards after
    /// its response, before it is reset with `RST_STREAM(NO_ERROR)`.
    /// Default: 4 MiB (4,194,304).
    pub max_request_drain_size: u64,
}

impl Default for Http2Limits {
    fn default() -> Self {
        Self {
            max_streams_per_connection: 100,
            header_table_size: 4096,
            max_frame_size: 16_384,
            max_request_header_field_size: 8_192,
            initial_connection_window_size: 131_072,
            initial_stream_window_size: 98_304,
            keep_alive_ping_delay: None,
            keep_alive_ping_timeout: Duration::from_secs(20),
            request_drain_timeout: Duration::from_secs(5),
            max_request_drain_size: 4 * 1024 * 1024,
        }
    }
}

impl Http2Limits {
    /// Checks every value is in its range.
    ///
    /// # Errors
    ///
    /// [`OptionsError::OutOfRange`] naming the limit, its value and its
    /// range.
    pub fn validate(&self) -> Result<(), OptionsError> {
        const MAX_WINDOW: u64 = (1 << 31) - 1;
        OptionsError::check(
            "Http2.MaxStreamsPerConnection",
            self.max_streams_per_connection.into(),
            1,
            u32::MAX.into(),
        )?;
        OptionsError::check("Http2.MaxFrameSize", self.max_frame_size.into(), 16_384, 16_777_215)?;
        OptionsError::check("Http2.MaxRequestHeaderFieldSize", self.max_request_header_field_size as u64, 1, u64::MAX)?;
        OptionsError::check(
            "Http2.InitialConnectionWindowSize",
            self.initial_connection_window_size.into(),
            65_535,
            MAX_WINDOW,
        )?;
        OptionsError::check("Http2.InitialStreamWindowSize", self.initial_stream_window_size.into(), 65_535, MAX_WINDOW)
    }
}

/// Kestrel's HTTP/3 limits (`Http3Limits`). The QUIC stream limits (100
/// bidirectional, 10 unidirectional) are the QUIC transport's options.
///
/// ```
/// use kite_http_core::Http3Limits;
///
/// let limits = Http3Limits::default();
/// assert_eq!(limits.max_request_header_field_size, 16_384);
/// assert!(limits.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Http3Limits {
    /// The largest request header field section (QPACK-decoded names and
    /// values) the server accepts; it is sent to the client as
    /// `SETTINGS_MAX_FIELD_SECTION_SIZE`. Default: 16,384.
    pub max_request_header_field_size: u32,
}

impl Default for Http3Limits {
    fn default() -> Self {
        Self { max_request_header_field_size: 16_384 }
    }
}

impl Http3Limits {
    /// Checks the values: the field size must be positive.
    ///
    /// # Errors
    ///
    /// [`OptionsError::OutOfRange`] naming the setting and its range.
    pub fn validate(&self) -> Result<(), OptionsError> {
        OptionsError::check(
            "Http3.MaxRequestHeaderFieldSize",
            self.max_request_header_field_size.into(),
            1,
            u32::MAX.into(),
        )
    }
}

/// Options for [`serve_connection`](crate::serve_connection): the one
/// home of the HTTP settings. A server's options hold one of these
/// (`kite_server::ServerOptions::http`) rather than copies of its fields.
///
/// The settings are public fields, and each has a builder-style setter of
/// the same name (the style of every options type in Kite); the heartbeat
/// and the upgraded-connection count are shared by every clone.
///
/// ```
/// use kite_http_core::HttpOptions;
///
/// let mut options = HttpOptions::default().add_server_header(false);
/// options.limits.max_request_body_size = Some(1_000_000);
/// assert!(!options.server_header());
/// ```
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Limits and timeouts for every connection. Default: [`Limits::default`].
    pub limits: Limits,
    /// HTTP/2 limits. Default: [`Http2Limits::default`].
    pub http2: Http2Limits,
    /// HTTP/3 limits. Default: [`Http3Limits::default`].
    pub http3: Http3Limits,
    /// The HTTP versions spoken. Default: [`Protocols::Http1AndHttp2`].
    pub protocols: Protocols,
    /// Whether responses carry `Server: kite`. Default: `true`.
    pub add_server_header: bool,
    /// How long an unread request body is drained after its response
    /// before the connection is closed instead of kept alive. Kestrel fixes
    /// it at 5 seconds. Default: 5 seconds.
    pub request_drain_timeout: Duration,
    /// Upgraded connections now, shared by every clone of these options.
    pub(crate) upgrades: UpgradeCounter,
    /// The heartbeat every connection served with these options (or a
    /// clone) registers with.
    pub(crate) heartbeat: Heartbeat,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            http2: Http2Limits::default(),
            http3: Http3Limits::default(),
            protocols: Protocols::default(),
            add_server_header: true,
            request_drain_timeout: Duration::from_secs(5),
            upgrades: UpgradeCounter::default(),
            heartbeat: Heartbeat::new(Duration::from_secs(1)),
        }
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

    /// Sets the HTTP/2 limits. Default: [`Http2Limits::default`].
    pub fn http2(mut self, limits: Http2Limits) -> Self {
        self.http2 = limits;
        self
    }

    /// Sets the HTTP/3 limits. Default: [`Http3Limits::default`].
    pub fn http3(mut self, limits: Http3Limits) -> Self {
        self.http3 = limits;
        self
    }

    /// Which HTTP versions to speak. Default: [`Protocols::Http1AndHttp2`].
    pub fn protocols(mut self, protocols: Protocols) -> Self {
        self.protocols = protocols;
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
        self.request_drain_timeout = timeout;
        self
    }

    /// How often the heartbeat checks every connection's timeouts and data
    /// rates and refreshes `Date`. Kestrel fixes it at 1 second; tests
    /// shorten it to keep short timeouts precise. A new value starts a new
    /// heartbeat for these options and their later clones.
    /// Default: 1 second.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat = Heartbeat::new(interval);
        self
    }

    /// The interval of the heartbeat in force (set with
    /// [`heartbeat_interval`](Self::heartbeat_interval)). Default: 1 second.
    pub fn current_heartbeat_interval(&self) -> Duration {
        self.heartbeat.interval()
    }

    /// Whether the `Server` header is added.
    pub fn server_header(&self) -> bool {
        self.add_server_header
    }

    /// How many connections served with these options (or a clone of
    /// them) are upgraded now.
    pub fn upgraded_connections(&self) -> u64 {
        self.upgrades.active()
    }
}

kite_transport_core::option_setters!(Limits {
    max_request_line_size: usize,
    max_request_headers_total_size: usize,
    max_request_header_count: usize,
    max_request_body_size: Option<u64>,
    keep_alive_timeout: Duration,
    request_headers_timeout: Duration,
    max_response_buffer_size: usize,
    max_concurrent_upgraded_connections: Option<u64>,
    max_concurrent_connections: Option<u64>,
    min_request_body_data_rate: Option<MinDataRate>,
    min_response_data_rate: Option<MinDataRate>,
});

kite_transport_core::option_setters!(Http2Limits {
    max_streams_per_connection: u32,
    header_table_size: u32,
    max_frame_size: u32,
    max_request_header_field_size: u32,
    initial_connection_window_size: u32,
    initial_stream_window_size: u32,
    keep_alive_ping_delay: Option<Duration>,
    keep_alive_ping_timeout: Duration,
    request_drain_timeout: Duration,
    max_request_drain_size: u64,
});

kite_transport_core::option_setters!(Http3Limits { max_request_header_field_size: u32 });
