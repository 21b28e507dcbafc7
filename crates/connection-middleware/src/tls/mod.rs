//! TLS on rustls: the TLS middleware, its options and certificates, and
//! the TLS filter.
//!
//! The crypto provider is aws-lc-rs (feature `aws-lc-rs`, the default) or
//! ring (feature `ring`); with both on, aws-lc-rs is used. Both build with
//! the Rust toolchain and a C compiler; aws-lc-rs was measured the cheaper
//! per full handshake (the README has the figures).

mod accept;
#[cfg(feature = "acme")]
pub mod acme;
mod buffer;
mod certificates;
mod filter;
mod middleware;
mod options;
mod quic;
mod session;
mod stream;
mod verifier;

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem;

pub use certificates::Certificate;
pub use filter::TlsFilter;
pub use kite_transport_core::tls::{TlsHandshake, TlsVersion};
pub use middleware::TlsMiddleware;
pub use options::{
    CertificateSelector, ClientCertificateMode, ClientCertificateValidator, HandshakeObserver, TlsOptions,
};
pub use rustls::RootCertStore;
pub use stream::TlsIo;

/// Why TLS could not be set up: a certificate that cannot be loaded, or
/// settings that cannot work together. Each variant carries the error it
/// comes from, so a caller can match it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: Arc<io::Error>,
    },
    /// The certificate chain is not valid PEM.
    #[error("invalid PEM certificate: {0}")]
    InvalidPem(#[source] Arc<pem::Error>),
    /// The certificate chain's PEM data holds no certificate.
    #[error("no certificate in the PEM data")]
    NoCertificateInPem,
    /// The key's PEM data holds no private key rustls can read (PKCS#8,
    /// PKCS#1 RSA or SEC1 EC).
    #[error("no usable private key in the PEM data: {0}")]
    NoPrivateKey(#[source] Arc<pem::Error>),
    /// The crypto provider cannot sign with the private key.
    #[error("unsupported private key: {0}")]
    UnsupportedKey(#[source] rustls::Error),
    /// Loading a certificate from files failed; which files, and why.
    #[error("{source} (certificate {}, key {})", chain.display(), key.display())]
    Files {
        /// The certificate chain's file.
        chain: PathBuf,
        /// The private key's file.
        key: PathBuf,
        /// What went wrong with them.
        #[source]
        source: Box<TlsError>,
    },
    /// No certificate, SNI entry or selector was configured.
    #[error("no server certificate is configured")]
    NoCertificate,
    /// A cipher suite name the crypto provider does not offer.
    #[error("invalid TLS settings: unknown or unsupported cipher suite '{0}'")]
    UnknownCipherSuite(String),
    /// `versions` enables no version Kite speaks (TLS 1.2 and 1.3).
    #[error("invalid TLS settings: no supported TLS version is enabled (TLS 1.2 and 1.3 are)")]
    NoVersion,
    /// The enabled versions and cipher suites do not fit together (a suite
    /// list with no suite for an enabled version).
    #[error("invalid TLS settings: TLS versions and cipher suites do not fit: {0}")]
    VersionsAndSuites(#[source] rustls::Error),
    /// The client certificate roots cannot make a verifier.
    #[error("invalid TLS settings: client certificate roots: {0}")]
    ClientRoots(#[source] rustls::server::VerifierBuilderError),
    /// HTTP/3 needs TLS 1.3, and the options leave it out, or leave no
    /// TLS 1.3 cipher suite.
    #[error("invalid TLS settings: HTTP/3 needs TLS 1.3 and a TLS 1.3 cipher suite, which the endpoint's TLS options leave out")]
    Http3NeedsTls13,
    /// The ACME options cannot work (no domain, a name that is not a
    /// domain).
    #[error("invalid ACME settings: {0}")]
    Acme(String),
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
