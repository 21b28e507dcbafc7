//! Automatic HTTPS: certificates from an ACME server (RFC 8555), issued at
//! the first start and renewed while serving, on the `instant-acme` client.
//!
//! An [`Acme`] holds one certificate for its domains. Given to an endpoint
//! with [`TlsOptions::acme`](crate::tls::TlsOptions::acme), it serves that
//! certificate to clients asking for one of the domains, answers
//! TLS-ALPN-01 challenges (RFC 8737) on the endpoint itself, and hands the
//! server its HTTP-01 answers ([`Acme::http01_answer`]) for the server's
//! http endpoints. Its task, started with the server, keeps the certificate:
//!
//! - at start it reads the cache directory (the account, the certificate
//!   and its key, the key readable by the owner only) and serves a cached
//!   certificate that is still good, without a new order;
//! - otherwise it orders one at once; until it arrives, handshakes for the
//!   domains fail with [`HandshakeError::CertificatePending`](crate::HandshakeError::CertificatePending)
//!   and the server listens and serves everything else;
//! - it renews at two thirds of the certificate's lifetime (or when the
//!   server's renewal information, RFC 9773, says, where offered), less a
//!   random jitter of up to a twentieth of the lifetime; the new
//!   certificate serves from the next handshake, and connections already
//!   open keep theirs;
//! - a failed order keeps the current certificate serving and is retried
//!   with exponential backoff, each failure logged once under the target
//!   `kite::acme` with what to fix.

mod cache;
mod certificate;
mod error;
mod issue;
mod state;

use std::path::PathBuf;
use std::time::Duration;

pub use error::AcmeError;
pub use state::{Acme, AcmeStatus};

/// Let's Encrypt's production directory, the default.
pub const LETS_ENCRYPT_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Let's Encrypt's staging directory: certificates no browser trusts,
/// under generous rate limits; for trying a setup out.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The `tracing` target of every ACME event.
pub const LOG_TARGET: &str = "kite::acme";

/// Which challenge proves control of a domain. Default:
/// [`Auto`](Self::Auto).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Challenge {
    /// TLS-ALPN-01 when the ACME server offers it, answered by the https
    /// endpoint itself (which the validation reaches on port 443); else
    /// HTTP-01, answered by the server's http endpoints.
    #[default]
    Auto,
    /// TLS-ALPN-01 only (RFC 8737).
    TlsAlpn01,
    /// HTTP-01 only: `/.well-known/acme-challenge/{token}` on port 80.
    Http01,
}

/// What to ask an ACME server for, and where to keep it.
///
/// ```
/// use kite_connection_middleware::tls::acme::{AcmeOptions, LETS_ENCRYPT_STAGING};
///
/// let options = AcmeOptions::new(["example.com", "www.example.com"])
///     .directory(LETS_ENCRYPT_STAGING.to_string())
///     .contact(vec!["mailto:admin@example.com".to_string()])
///     .cache_dir("/var/lib/kite/acme".into());
/// assert_eq!(options.domains.len(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct AcmeOptions {
    /// The domains of the certificate (one order, one certificate with each
    /// as a subject alternative name). Default: none; at least one is
    /// needed.
    pub domains: Vec<String>,
    /// The ACME server's directory URL. Default:
    /// [`LETS_ENCRYPT_PRODUCTION`].
    pub directory: String,
    /// The account's contact URLs (`mailto:admin@example.com`). Default:
    /// none.
    pub contact: Vec<String>,
    /// Where the account, the certificate and its key are kept between
    /// runs. Default: `$XDG_DATA_HOME/kite/acme`, else
    /// `$HOME/.local/share/kite/acme`, else `kite-acme` in the working
    /// directory.
    pub cache_dir: PathBuf,
    /// The challenge used. Default: [`Challenge::Auto`].
    pub challenge: Challenge,
    /// A PEM file of an extra root to trust for the ACME server's own API
    /// (a private ACME server, or pebble's test CA). Default: none (the
    /// system's roots).
    pub root: Option<PathBuf>,
    /// The first wait before a failed order is tried again; it doubles at
    /// each failure. Default: 30 seconds.
    pub retry_initial: Duration,
    /// The longest wait between tries. Default: 1 hour.
    pub retry_max: Duration,
}

impl AcmeOptions {
    /// Options for `domains`, with the defaults.
    pub fn new<I, S>(domains: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self { domains: domains.into_iter().map(|d| d.into().to_ascii_lowercase()).collect(), ..Self::default() }
    }
}

impl Default for AcmeOptions {
    fn default() -> Self {
        Self {
            domains: Vec::new(),
            directory: LETS_ENCRYPT_PRODUCTION.to_string(),
            contact: Vec::new(),
            cache_dir: default_cache_dir(),
            challenge: Challenge::Auto,
            root: None,
            retry_initial: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
        }
    }
}

kite_transport_core::option_setters!(AcmeOptions {
    domains: Vec<String>,
    directory: String,
    contact: Vec<String>,
    cache_dir: PathBuf,
    challenge: Challenge,
    root: Option<PathBuf>,
    retry_initial: Duration,
    retry_max: Duration,
});

fn default_cache_dir() -> PathBuf {
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(data).join("kite/acme");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home).join(".local/share/kite/acme");
    }
    PathBuf::from("kite-acme")
}

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737).
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
