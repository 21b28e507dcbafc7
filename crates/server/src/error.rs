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
    /// An HTTPS endpoint cannot be set up: no certificate, or TLS settings
    /// that do not work.
    #[error("{endpoint}: {source}; {}", tls_fix(source))]
    Tls {
        /// The endpoint, as a URL.
        endpoint: String,
        /// What is wrong with its TLS.
        #[source]
        source: kite_connection_middleware::tls::TlsError,
    },
    /// The configuration has a value that cannot be used; the message
    /// names the file, the key and the fix.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// An option is out of its range; the error names it and the range.
    #[error("invalid server options: {0}")]
    InvalidOptions(#[from] kite_http_core::OptionsError),
    /// No transport was compiled in or configured.
    #[error("no transport: enable the `sockets` feature or call ServerBuilder::transport")]
    NoTransport,
}

/// How to fix a TLS setup error, for the message.
fn tls_fix(error: &kite_connection_middleware::tls::TlsError) -> &'static str {
    match error {
        kite_connection_middleware::tls::TlsError::NoCertificate => {
            "give it one with ServerBuilder::https_defaults or listen_tls, or run kite with --certificate and --certificate-key, or create a development certificate with `kite dev-certs`"
        }
        _ => "check the certificate files and TLS settings",
    }
}
