//! The error a connection pipeline ends with.

use std::borrow::Cow;
use std::io;

/// A boxed error from a handler or middleware of a user's own.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    Handshake(String),
    /// Any other failure of a handler or middleware.
    #[error(transparent)]
    Other(BoxError),
}

impl ConnectionError {
    /// A [`ConnectionError::Rejected`] with `reason`.
    pub fn rejected(reason: impl Into<Cow<'static, str>>) -> Self {
        ConnectionError::Rejected { reason: reason.into() }
    }

    /// Wraps any error as [`ConnectionError::Other`].
    pub fn other(error: impl Into<BoxError>) -> Self {
        ConnectionError::Other(error.into())
    }
}
