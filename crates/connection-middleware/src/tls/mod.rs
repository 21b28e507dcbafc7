//! TLS on rustls: the TLS middleware, its options and certificates, and
//! the TLS filter.
//!
//! The crypto provider is aws-lc-rs (feature `aws-lc-rs`, the default) or
//! ring (feature `ring`); with both on, aws-lc-rs is used. Both build with
//! the Rust toolchain and a C compiler; aws-lc-rs was measured the cheaper
//! per full handshake (the README has the figures).

mod accept;
mod buffer;
mod certificates;
mod filter;
mod middleware;
mod options;
mod quic;
mod session;
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

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!("kite-connection-middleware needs a TLS crypto provider: enable the `aws-lc-rs` or the `ring` feature");

/// The crypto provider Kite uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| {
        #[cfg(feature = "aws-lc-rs")]
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
        let provider = rustls::crypto::ring::default_provider();
        Arc::new(provider)
    }))
}

#[cfg(test)]
mod tests {
    /// HTTP/2 forbids TLS below 1.2 and the cipher suites of RFC 9113
    /// Appendix A (INADEQUATE_SECURITY). rustls offers neither: TLS 1.3
    /// suites, and TLS 1.2 suites that are ECDHE with an AEAD cipher. This
    /// holds for every suite the provider has, so a TLS connection that
    /// negotiated `h2` never needs that error.
    #[test]
    fn every_suite_is_allowed_for_http2() {
        for suite in &super::provider().cipher_suites {
            let name = format!("{:?}", suite.suite());
            let tls13 = suite.version().version == rustls::ProtocolVersion::TLSv1_3;
            let aead = ["GCM", "CHACHA20_POLY1305"].iter().any(|cipher| name.contains(cipher));
            assert!(tls13 || (name.starts_with("TLS_ECDHE_") && aead), "{name} is on HTTP/2's block list");
        }
    }
}
