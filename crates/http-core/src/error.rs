//! The error a connection ends with.

use std::io;

use kite_transport_core::ConnectionEndReason;

use crate::RequestRejection;

pub use kite_transport_core::BoxError;

/// Why [`serve_connection`](crate::serve_connection) ended other than by a
/// clean close. A clean close is the peer closing between requests, a
/// keep-alive timeout, or a graceful shutdown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing the connection failed.
    #[error("connection i/o failed: {0}")]
    Io(#[from] io::Error),
    /// A request was refused and answered with an error status; the
    /// connection was then closed.
    #[error("bad request: {0}")]
    Rejected(RequestRejection),
    /// The connection closed in the middle of a request's headers.
    #[error("connection closed before the request headers were complete")]
    IncompleteHead,
    /// A response body failed after its head was sent; the connection was
    /// aborted so the client sees an incomplete response.
    #[error("response body failed: {0}")]
    ResponseBody(BoxError),
    /// The HTTP/2 connection failed (a protocol error, a bad preface).
    #[error("HTTP/2 connection failed: {0}")]
    Http2(BoxError),
    /// The HTTP/3 connection failed (a protocol error, a lost QUIC
    /// connection).
    #[error("HTTP/3 connection failed: {0}")]
    Http3(BoxError),
    /// The service failed to become ready.
    #[error("service failed: {0}")]
    Service(BoxError),
}

impl Error {
    /// Why the connection ended, as the `error.type` of
    /// `kite.connection.duration`: an I/O failure is the peer going away
    /// (`connection_reset`), a rejection its own reason, an HTTP/2 or
    /// HTTP/3 failure `protocol_error`.
    pub fn end_reason(&self) -> ConnectionEndReason {
        match self {
            Error::Io(_) | Error::IncompleteHead => ConnectionEndReason::ConnectionReset,
            Error::Rejected(rejection) => rejection.end_reason(),
            Error::ResponseBody(_) => ConnectionEndReason::ResponseBodyFailed,
            Error::Http2(_) | Error::Http3(_) => ConnectionEndReason::ProtocolError,
            Error::Service(_) => ConnectionEndReason::ServiceFailed,
        }
    }
}
