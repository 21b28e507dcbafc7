//! Why a request was refused before it reached the application.

use std::fmt;

use http::StatusCode;
use kite_transport_core::ConnectionEndReason;

use crate::ConnectionInfo;

/// Why the HTTP core refused a request (Kestrel's `RequestRejectionReason`).
///
/// A rejected request never reaches the application: the client gets
/// [`status`](Self::status) with an empty body and `Connection: close`, and
/// a `tracing` event under the target `kite::bad_requests` names the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestRejection {
    /// The request line is not `METHOD SP target SP version`.
    InvalidRequestLine,
    /// The request target is not a valid origin, absolute, authority or
    /// asterisk form.
    InvalidRequestTarget,
    /// A header field is malformed.
    InvalidRequestHeader,
    /// The version is well formed but not HTTP/1.0 or HTTP/1.1 (`505`).
    UnrecognizedHttpVersion,
    /// The request line is longer than the limit (`414`).
    RequestLineTooLong,
    /// The header fields are larger than the limit (`431`).
    HeadersExceedMaxTotalSize,
    /// There are more header fields than the limit (`431`).
    TooManyHeaders,
    /// An HTTP/1.1 request has no `Host`.
    MissingHostHeader,
    /// A request has more than one `Host`.
    MultipleHostHeaders,
    /// `Host` is not a valid host, or does not match an absolute target.
    InvalidHostHeader,
    /// `Content-Length` is not a decimal number.
    InvalidContentLength,
    /// A request has more than one `Content-Length`.
    MultipleContentLengths,
    /// `Transfer-Encoding`'s last coding is not `chunked`.
    FinalTransferCodingNotChunked,
    /// `Transfer-Encoding` is spelled oddly: more than one field, a coding
    /// that is not a lowercase token, parameters, stray whitespace, or
    /// `chunked` twice. Refused as a request smuggling attempt.
    InvalidTransferEncoding,
    /// An HTTP/1.0 `POST` or `PUT` has no `Content-Length`.
    LengthRequiredHttp10,
    /// An HTTP/1.0 request carries `Transfer-Encoding`, which HTTP/1.0 does
    /// not have: its framing is faulty (RFC 9112 §6.1).
    TransferEncodingHttp10,
    /// An HTTP/1.1 request carries both `Transfer-Encoding` and
    /// `Content-Length`. RFC 9112 §6.3 lets a server refuse it; Kite does,
    /// since two framings are how request smuggling (CL.TE) starts.
    TransferEncodingWithContentLength,
    /// A line of the request head ends in a bare LF instead of CRLF.
    /// Refused so that a proxy splitting lines only on CRLF cannot see
    /// other headers than Kite does.
    BareLineFeed,
    /// The asterisk target `*` with a method other than `OPTIONS` (`405`).
    OptionsMethodRequired,
    /// An authority target with a method other than `CONNECT` (`405`).
    ConnectMethodRequired,
    /// The headers did not arrive within `RequestHeadersTimeout` (`408`).
    RequestHeadersTimeout,
    /// The body is larger than its limit (`413`).
    RequestBodyTooLarge,
    /// The body arrived slower than MinRequestBodyDataRate (`408`).
    RequestBodyTimeout,
    /// A chunk size line is malformed.
    BadChunkSizeData,
    /// A chunk is not followed by CRLF.
    BadChunkSuffix,
    /// The trailer section of a chunked body is malformed or too large.
    BadChunkTrailers,
    /// The connection closed before the body was complete.
    UnexpectedEndOfRequestContent,
}

impl RequestRejection {
    /// The status code the client receives.
    pub fn status(self) -> StatusCode {
        use RequestRejection::*;
        match self {
            UnrecognizedHttpVersion => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            RequestLineTooLong => StatusCode::URI_TOO_LONG,
            HeadersExceedMaxTotalSize | TooManyHeaders => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            RequestBodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RequestHeadersTimeout | RequestBodyTimeout => StatusCode::REQUEST_TIMEOUT,
            OptionsMethodRequired | ConnectMethodRequired => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Why the connection ends when HTTP/1.x refuses a request this way
    /// (the `error.type` of `kite.connection.duration`).
    pub fn end_reason(self) -> ConnectionEndReason {
        use RequestRejection::*;
        match self {
            RequestHeadersTimeout => ConnectionEndReason::RequestHeadersTimeout,
            RequestBodyTimeout => ConnectionEndReason::MinRequestBodyDataRate,
            RequestBodyTooLarge => ConnectionEndReason::MaxRequestBodySize,
            RequestLineTooLong | HeadersExceedMaxTotalSize | TooManyHeaders => {
                ConnectionEndReason::MaxRequestHeadersSize
            }
            InvalidRequestLine
            | InvalidRequestTarget
            | UnrecognizedHttpVersion
            | OptionsMethodRequired
            | ConnectMethodRequired => ConnectionEndReason::InvalidRequestLine,
            BadChunkSizeData | BadChunkSuffix | BadChunkTrailers => ConnectionEndReason::InvalidRequestBody,
            UnexpectedEndOfRequestContent => ConnectionEndReason::UnexpectedEndOfRequestContent,
            InvalidRequestHeader
            | MissingHostHeader
            | MultipleHostHeaders
            | InvalidHostHeader
            | InvalidContentLength
            | MultipleContentLengths
            | FinalTransferCodingNotChunked
            | InvalidTransferEncoding
            | LengthRequiredHttp10
            | TransferEncodingHttp10
            | TransferEncodingWithContentLength
            | BareLineFeed => ConnectionEndReason::InvalidRequestHeaders,
        }
    }

    /// Writes the `tracing` event of a refusal under `kite::bad_requests`:
    /// the connection, the status and the reason. The one place a
    /// rejected request is logged, for every protocol.
    pub(crate) fn log(self, info: &ConnectionInfo, protocol: &str) {
        tracing::debug!(
            target: "kite::bad_requests",
            connection_id = %info.id(),
            status = self.status().as_u16(),
            reason = %self,
            "bad {protocol} request rejected"
        );
    }

    /// The `Allow` header value that goes with a `405`, if any.
    pub fn allow(self) -> Option<&'static str> {
        match self {
            RequestRejection::OptionsMethodRequired => Some("OPTIONS"),
            RequestRejection::ConnectMethodRequired => Some("CONNECT"),
            _ => None,
        }
    }
}

impl fmt::Display for RequestRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RequestRejection::*;
        f.write_str(match self {
            InvalidRequestLine => "Invalid request line",
            InvalidRequestTarget => "Invalid request target",
            InvalidRequestHeader => "Invalid request header",
            UnrecognizedHttpVersion => "Unrecognized HTTP version",
            RequestLineTooLong => "Request line too long",
            HeadersExceedMaxTotalSize => "Request headers too long",
            TooManyHeaders => "Request contains too many headers",
            MissingHostHeader => "Request is missing Host header",
            MultipleHostHeaders => "Multiple Host headers",
            InvalidHostHeader => "Invalid Host header",
            InvalidContentLength => "Invalid content length",
            MultipleContentLengths => "Multiple Content-Length headers",
            FinalTransferCodingNotChunked => "The message's final transfer coding is not chunked",
            InvalidTransferEncoding => "Transfer-Encoding is malformed",
            LengthRequiredHttp10 => "An HTTP/1.0 POST or PUT request requires a Content-Length",
            TransferEncodingHttp10 => "Transfer-Encoding is not allowed on an HTTP/1.0 request",
            TransferEncodingWithContentLength => "A request carries both Transfer-Encoding and Content-Length",
            BareLineFeed => "A line of the request head ends in LF without CR",
            OptionsMethodRequired => "Method not allowed: the asterisk target needs OPTIONS",
            ConnectMethodRequired => "Method not allowed: an authority target needs CONNECT",
            RequestHeadersTimeout => "Request headers timed out",
            RequestBodyTooLarge => "Request body too large",
            RequestBodyTimeout => "Request body arrived slower than the minimum data rate",
            BadChunkSizeData => "Bad chunk size data",
            BadChunkSuffix => "Bad chunk suffix",
            BadChunkTrailers => "Bad chunked trailers",
            UnexpectedEndOfRequestContent => "Unexpected end of request content",
        })
    }
}

impl std::error::Error for RequestRejection {}
