//! Why a connection ended other than cleanly: the `error.type` tag of
//! `kite.connection.duration`.

use std::fmt;

/// Why a connection ended other than by a clean close (Kestrel's
/// `ConnectionEndReason`, the `error.type` tag of its
/// `kestrel.connection.duration` since .NET 9).
///
/// The layer that ends a connection records its reason on the
/// connection's [`CloseSignal`](crate::CloseSignal) with
/// [`set_end_reason`](crate::CloseSignal::set_end_reason); the first reason
/// recorded is kept. A connection that ends cleanly (the peer closing
/// between requests, a graceful shutdown, a `Connection: close` response)
/// records none.
///
/// # Examples
///
/// ```
/// use kite_transport_core::{CloseSignal, ConnectionEndReason};
///
/// let signal = CloseSignal::new();
/// assert_eq!(signal.end_reason(), None);
/// signal.set_end_reason(ConnectionEndReason::KeepAliveTimeout);
/// signal.set_end_reason(ConnectionEndReason::ConnectionReset); // the first is kept
/// assert_eq!(signal.end_reason().map(|r| r.as_str()), Some("keep_alive_timeout"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum ConnectionEndReason {
    /// `tls_handshake_failed`: the TLS handshake failed or timed out (no
    /// protocol or cipher in common, not TLS at all, no certificate for the
    /// name asked for).
    TlsHandshakeFailed = 1,
    /// `tls_not_allowed`: the handshake completed but the TLS filter
    /// refused its protocol version or cipher suite.
    TlsNotAllowed,
    /// `client_hello_refused`: the ClientHello middleware refused the
    /// client's hello (a fingerprint on a deny list, a hello too large).
    ClientHelloRefused,
    /// `proxy_protocol_invalid`: the PROXY protocol header was missing,
    /// malformed, late, or came from an untrusted proxy.
    ProxyProtocolInvalid,
    /// `connection_rejected`: another connection middleware refused the
    /// connection.
    ConnectionRejected,
    /// `request_headers_timeout`: a request's headers did not arrive within
    /// `RequestHeadersTimeout` (HTTP/1.1 answers 408).
    RequestHeadersTimeout,
    /// `keep_alive_timeout`: the connection sat idle between requests for
    /// `KeepAliveTimeout`.
    KeepAliveTimeout,
    /// `min_request_body_data_rate`: a request body arrived slower than
    /// `MinRequestBodyDataRate` (HTTP/1.1 answers 408).
    MinRequestBodyDataRate,
    /// `min_response_data_rate`: the client read the response slower than
    /// `MinResponseDataRate`; the connection was aborted.
    MinResponseDataRate,
    /// `max_request_body_size`: a request body was larger than
    /// `MaxRequestBodySize` (HTTP/1.1 answers 413 and closes).
    MaxRequestBodySize,
    /// `max_request_headers_size`: a request's header fields were larger
    /// or more numerous than their limits (431), or its request line
    /// longer than its limit (414).
    MaxRequestHeadersSize,
    /// `invalid_request_line`: an HTTP/1.x request line, target or version
    /// was malformed.
    InvalidRequestLine,
    /// `invalid_request_headers`: an HTTP/1.x request's header fields or
    /// framing were malformed or contradictory (400), including `Host`.
    InvalidRequestHeaders,
    /// `invalid_request_body`: a chunked request body was malformed.
    InvalidRequestBody,
    /// `unexpected_end_of_request_content`: the peer closed the connection
    /// before a request body was complete.
    UnexpectedEndOfRequestContent,
    /// `connection_reset`: reading or writing failed: the peer reset or
    /// closed the connection in the middle of a request or response.
    ConnectionReset,
    /// `protocol_error`: an HTTP/2 or HTTP/3 connection error (a GOAWAY or
    /// CONNECTION_CLOSE with an error code, a broken preface).
    ProtocolError,
    /// `response_body_failed`: the application's response body failed
    /// after the head was sent; the connection was aborted.
    ResponseBodyFailed,
    /// `service_failed`: the application's service failed to become ready.
    ServiceFailed,
    /// `app_shutdown_timeout`: the server's shutdown timeout ran out and
    /// the connection was aborted.
    AppShutdownTimeout,
}

impl ConnectionEndReason {
    /// Every reason, in declaration order.
    pub const ALL: [ConnectionEndReason; 20] = {
        use ConnectionEndReason::*;
        [
            TlsHandshakeFailed,
            TlsNotAllowed,
            ClientHelloRefused,
            ProxyProtocolInvalid,
            ConnectionRejected,
            RequestHeadersTimeout,
            KeepAliveTimeout,
            MinRequestBodyDataRate,
            MinResponseDataRate,
            MaxRequestBodySize,
            MaxRequestHeadersSize,
            InvalidRequestLine,
            InvalidRequestHeaders,
            InvalidRequestBody,
            UnexpectedEndOfRequestContent,
            ConnectionReset,
            ProtocolError,
            ResponseBodyFailed,
            ServiceFailed,
            AppShutdownTimeout,
        ]
    };

    /// The tag value: lower-case words joined by `_`, as Kestrel's.
    pub fn as_str(self) -> &'static str {
        use ConnectionEndReason::*;
        match self {
            TlsHandshakeFailed => "tls_handshake_failed",
            TlsNotAllowed => "tls_not_allowed",
            ClientHelloRefused => "client_hello_refused",
            ProxyProtocolInvalid => "proxy_protocol_invalid",
            ConnectionRejected => "connection_rejected",
            RequestHeadersTimeout => "request_headers_timeout",
            KeepAliveTimeout => "keep_alive_timeout",
            MinRequestBodyDataRate => "min_request_body_data_rate",
            MinResponseDataRate => "min_response_data_rate",
            MaxRequestBodySize => "max_request_body_size",
            MaxRequestHeadersSize => "max_request_headers_size",
            InvalidRequestLine => "invalid_request_line",
            InvalidRequestHeaders => "invalid_request_headers",
            InvalidRequestBody => "invalid_request_body",
            UnexpectedEndOfRequestContent => "unexpected_end_of_request_content",
            ConnectionReset => "connection_reset",
            ProtocolError => "protocol_error",
            ResponseBodyFailed => "response_body_failed",
            ServiceFailed => "service_failed",
            AppShutdownTimeout => "app_shutdown_timeout",
        }
    }

    /// The reason stored as `code` (`self as u8`), if any.
    pub(crate) fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }

    /// Whether an I/O error is the peer going away (reset, broken pipe, an
    /// early end), as opposed to a local failure.
    pub fn is_reset(error: &std::io::Error) -> bool {
        use std::io::ErrorKind::*;
        matches!(error.kind(), ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected)
    }
}

impl fmt::Display for ConnectionEndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ConnectionEndReason;

    #[test]
    fn every_reason_round_trips_through_its_code() {
        for (i, reason) in ConnectionEndReason::ALL.into_iter().enumerate() {
            assert_eq!(reason as u8 as usize, i + 1, "{reason} is out of order in ALL");
            assert_eq!(ConnectionEndReason::from_code(reason as u8), Some(reason));
        }
        assert_eq!(ConnectionEndReason::from_code(0), None);
        assert_eq!(ConnectionEndReason::from_code(ConnectionEndReason::ALL.len() as u8 + 1), None);
    }
}
