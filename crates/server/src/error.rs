//! The server's errors.

use std::io;

/// Why a server could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A URL given to [`urls`](crate::ServerBuilder::urls) cannot be bound.
    #[error("invalid url '{url}': {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it, and how to fix it.
        reason: String,
    },
    /// An address could not be bound (Kestrel's wording).
    #[error("Failed to bind to address {address}: {source}")]
    Bind {
        /// The URL of the address.
        address: String,
        /// The system's error; [`io::ErrorKind::AddrInUse`] when the port is
        /// taken.
        #[source]
        source: io::Error,
    },
    /// No transport was compiled in or configured.
    #[error("no transport: enable the `sockets` feature or call ServerBuilder::transport")]
    NoTransport,
}
