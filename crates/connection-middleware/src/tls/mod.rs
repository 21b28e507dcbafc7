//! TLS on rustls: the TLS middleware, its options and certificates, and
//! the TLS filter.
//!
//! The crypto provider is rustls' `ring` provider: it builds with only the
//! Rust toolchain and a C compiler, and is the one Kite measures with.

mod certificates;
mod filter;
mod middleware;
mod options;
mod stream;
mod verifier;

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

pub use certificates::Certificate;
pub use filter::TlsFilter;
pub use kite_transport_core::tls::{TlsHandshake, TlsVersion};
pub use middleware::TlsMiddleware;
pub use options::{CertificateSelector, ClientCertificateMode, ClientCertificateValidator, TlsOptions};
pub use rustls::RootCertStore;
pub use stream::TlsIo;

/// Why TLS could not be set up.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key could not be loaded; the message names the
    /// file or the problem.
    #[error("{0}")]
    Certificate(String),
    /// No certificate, SNI entry or selector was configured.
    #[error("no server certificate is configured")]
    NoCertificate,
    /// The TLS settings cannot work together.
    #[error("invalid TLS settings: {0}")]
    Config(String),
}

/// The crypto provider Kite uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}
