//! The error a connection pipeline ends with.

use std::borrow::Cow;
use std::io;
use std::time::Duration;

use crate::tls::TlsError;

pub use kite_transport_core::BoxError;

/// Why a connection ended other than by a clean close.
///
/// The server logs it at the connection's span; nothing is sent to the
/// peer from it (protocol-level answers such as `400` are the HTTP core's).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The stream failed: reset by the peer, a write to a closed socket.
    #[error("connection i/o failed: {0}")]
    Io(#[from] io::Error),
    /// A middleware refused the connection on purpose (a deny list, the TLS
    /// filter); the reason is logged.
    #[error("connection rejected: {reason}")]
    Rejected {
        /// Why, in words for the log.
        reason: Cow<'static, str>,
    },
    /// The TLS handshake failed or timed out.
    #[error("TLS handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// Any other failure of a handler or middleware.
    #[error(transparent)]
    Other(BoxError),
}

/// Why a TLS handshake failed: what the peer sent, the connection, the
/// time, or the server's own certificate choice.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// rustls refused what the peer sent (an alert went back), or could
    /// not go on: a bad ClientHello, no protocol or cipher suite in common,
    /// a client certificate refused.
    #[error("{0}")]
    Tls(#[from] rustls::Error),
    /// Reading or writing the connection failed.
    #[error("connection i/o failed: {0}")]
    Io(#[from] io::Error),
    /// The peer closed the connection, or TLS, before the handshake ended.
    #[error("the peer closed the connection during the handshake")]
    PeerClosed,
    /// The handshake did not end within `TlsOptions::handshake_timeout`.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// No certificate (no SNI entry, no selector's choice and no default)
    /// for the server name the client asked for.
    #[error("no certificate for server name {server_name:?}")]
    NoCertificate {
        /// The server name (SNI), if the client sent one.
        server_name: Option<String>,
    },
    /// The certificate chosen cannot make a TLS configuration with the
    /// endpoint's settings.
    #[error(transparent)]
    Settings(#[from] TlsError),
    /// The connection was dropped before the handshake ended (the server
    /// stopping, say); only a [`HandshakeObserver`](crate::tls::HandshakeObserver)
    /// sees it.
    #[error("the connection was dropped during the handshake")]
    Aborted,
    /// The server name is one of an ACME certificate's domains, and that
    /// certificate has not been issued yet (the first order is pending or
    /// failing; `kite::acme` says why).
    #[error("the ACME certificate for {server_name} is not issued yet")]
    CertificatePending {
        /// The server name.
        server_name: String,
    },
    /// The peer sent more handshake data than a handshake may hold
    /// unprocessed (a 64 KiB message and a record).
    #[error("over {0} bytes of handshake held unprocessed")]
    TooLarge(usize),
}

impl ConnectionError {
    /// Why the connection ended, for the `error.type` tag of
    /// `kite.connection.duration` when no layer recorded a closer reason:
    /// a failed handshake is `tls_handshake_failed`, an I/O failure
    /// `connection_reset`, a middleware's refusal `connection_rejected`,
    /// and anything else `connection_rejected` too.
    pub fn end_reason(&self) -> kite_transport_core::ConnectionEndReason {
        use kite_transport_core::ConnectionEndReason;
        match self {
            ConnectionError::Handshake(_) => ConnectionEndReason::TlsHandshakeFailed,
            ConnectionError::Io(_) => ConnectionEndReason::ConnectionReset,
            ConnectionError::Rejected { .. } | ConnectionError::Other(_) => ConnectionEndReason::ConnectionRejected,
        }
    }

    /// A [`ConnectionError::Rejected`] with `reason`.
    pub fn rejected(reason: impl Into<Cow<'static, str>>) -> Self {
        ConnectionError::Rejected { reason: reason.into() }
    }

    /// Wraps any error as [`ConnectionError::Other`].
    pub fn other(error: impl Into<BoxError>) -> Self {
        ConnectionError::Other(error.into())
    }
}
