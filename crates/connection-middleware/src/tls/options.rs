//! How the TLS middleware is configured.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kite_transport_core::tls::{TlsHandshake, TlsVersion};
use kite_transport_core::{ConnectionContext, ConnectionId};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;

use crate::tls::certificates::SniMap;
use crate::tls::Certificate;
use crate::HandshakeError;

/// Whether the server asks for a client certificate (Kestrel's
/// `ClientCertificateMode`). Default: [`NoCertificate`](Self::NoCertificate).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientCertificateMode {
    /// Client certificates are not requested.
    #[default]
    NoCertificate,
    /// A certificate is requested; a client without one is let in, a client
    /// with an invalid one is refused.
    AllowCertificate,
    /// A valid client certificate is required.
    RequireCertificate,
}

/// Chooses the certificate for a connection from its context and the SNI
/// name the client sent; `None` falls back to the configured ones.
pub type CertificateSelector = Arc<dyn Fn(&ConnectionContext, Option<&str>) -> Option<Certificate> + Send + Sync>;

/// Decides whether a client certificate chain (leaf first, DER) is
/// acceptable, after chain validation against the configured roots if any.
pub type ClientCertificateValidator = Arc<dyn Fn(&[CertificateDer<'static>]) -> bool + Send + Sync>;

/// Told of each TCP handshake the TLS middleware runs: when it starts, and
/// how it ended and after how long. The server counts
/// `kite.active_tls_handshakes` and records `kite.tls_handshake.duration`
/// with one; a user's may log or count its own. Called on the
/// connection's task: keep it quick.
pub trait HandshakeObserver: Send + Sync {
    /// A handshake starts (the middleware begins reading the ClientHello).
    fn started(&self, context: &ConnectionContext);
    /// The handshake of connection `id` ended after `elapsed`: `Ok` with
    /// what it negotiated, or the error it failed with (a timeout, or
    /// [`HandshakeError::Aborted`] when the connection was dropped first).
    /// Every `started` gets one `ended`.
    fn ended(&self, id: ConnectionId, elapsed: Duration, outcome: Result<&TlsHandshake, &HandshakeError>);
}

/// Options of the TLS middleware (Kestrel's `HttpsConnectionAdapterOptions`).
///
/// ```no_run
/// use std::time::Duration;
/// use kite_connection_middleware::tls::{Certificate, ClientCertificateMode, TlsOptions};
///
/// # fn build() -> Result<(), kite_connection_middleware::tls::TlsError> {
/// let options = TlsOptions::new()
///     .certificate(Certificate::from_pem_files("cert.pem", "key.pem")?)
///     .sni("api.example.com", Certificate::from_pem_files("api.pem", "api.key.pem")?)
///     .client_certificate_mode(ClientCertificateMode::AllowCertificate)
///     .handshake_timeout(Duration::from_secs(5));
/// # let _ = options; Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsOptions {
    pub(crate) certificate: Option<Certificate>,
    pub(crate) sni: SniMap,
    pub(crate) selector: Option<CertificateSelector>,
    pub(crate) client_mode: ClientCertificateMode,
    pub(crate) client_roots: Option<Arc<RootCertStore>>,
    pub(crate) client_validator: Option<ClientCertificateValidator>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) versions: Vec<TlsVersion>,
    pub(crate) cipher_suites: Option<Vec<String>>,
    pub(crate) alpn: Vec<Vec<u8>>,
    pub(crate) observers: Vec<Arc<dyn HandshakeObserver>>,
    #[cfg(feature = "acme")]
    pub(crate) acme: Option<crate::tls::acme::Acme>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self {
            certificate: None,
            sni: SniMap::default(),
            selector: None,
            client_mode: ClientCertificateMode::NoCertificate,
            client_roots: None,
            client_validator: None,
            handshake_timeout: Duration::from_secs(10),
            versions: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            cipher_suites: None,
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            observers: Vec::new(),
            #[cfg(feature = "acme")]
            acme: None,
        }
    }
}

impl TlsOptions {
    /// Options with no certificate yet and Kestrel's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The certificate served when neither the selector nor the SNI map
    /// gives one. Default: none.
    pub fn certificate(mut self, certificate: Certificate) -> Self {
        self.certificate = Some(certificate);
        self
    }

    /// Serves `certificate` to clients asking for `name` by SNI: an exact
    /// name, a `*.example.com` wildcard (one label), or `*` for any name.
    /// Default: no SNI entries.
    pub fn sni(mut self, name: &str, certificate: Certificate) -> Self {
        self.sni.insert(name, certificate);
        self
    }

    /// A callback that chooses the certificate per connection (Kestrel's
    /// `ServerCertificateSelector`); it wins over the SNI map and the fixed
    /// certificate, which serve when it returns `None`. Default: none.
    pub fn certificate_selector(
        mut self,
        selector: impl Fn(&ConnectionContext, Option<&str>) -> Option<Certificate> + Send + Sync + 'static,
    ) -> Self {
        self.selector = Some(Arc::new(selector));
        self
    }

    /// Whether to ask for client certificates. Default:
    /// [`ClientCertificateMode::NoCertificate`].
    pub fn client_certificate_mode(mut self, mode: ClientCertificateMode) -> Self {
        self.client_mode = mode;
        self
    }

    /// The roots client certificate chains are validated against. Without
    /// roots, only the validation callback decides. Default: none.
    pub fn client_certificate_roots(mut self, roots: RootCertStore) -> Self {
        self.client_roots = Some(Arc::new(roots));
        self
    }

    /// A callback with the last word on a client certificate chain
    /// (Kestrel's `ClientCertificateValidation`). Default: none.
    pub fn client_certificate_validation(
        mut self,
        validator: impl Fn(&[CertificateDer<'static>]) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.client_validator = Some(Arc::new(validator));
        self
    }

    /// How long a handshake may take before the connection is closed.
    /// Default: 10 seconds.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The protocol versions offered. Default: TLS 1.2 and TLS 1.3.
    pub fn versions(mut self, versions: &[TlsVersion]) -> Self {
        self.versions = versions.to_vec();
        self
    }

    /// The cipher suites offered, by IANA name
    /// (`TLS13_AES_128_GCM_SHA256`, `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`),
    /// in order of preference: the server's order decides, not the
    /// client's. Default: the crypto provider's suites, TLS 1.3 first and
    /// AES-128-GCM first within each version.
    pub fn cipher_suites<I, S>(mut self, suites: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cipher_suites = Some(suites.into_iter().map(Into::into).collect());
        self
    }

    /// The ALPN protocols offered, most preferred first. Default: `h2`,
    /// `http/1.1` (the server narrows it to what an endpoint speaks).
    pub fn alpn_protocols<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<Vec<u8>>,
    {
        self.alpn = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Adds an observer told of each handshake's start and end; every
    /// observer added is told, in order. Default: none (a server adds its
    /// metrics observer to every HTTPS endpoint).
    pub fn observe(mut self, observer: Arc<dyn HandshakeObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Serves a certificate from an ACME server for `options.domains`
    /// (see [`acme`](crate::tls::acme)): it wins over the SNI map and the
    /// fixed certificate for those names, and serves names it does not
    /// cover when nothing else does. The endpoint answers TLS-ALPN-01
    /// challenges itself. Clones of these options share the one
    /// certificate. Default: none.
    #[cfg(feature = "acme")]
    pub fn acme(self, options: crate::tls::acme::AcmeOptions) -> Self {
        self.acme_shared(crate::tls::acme::Acme::new(options))
    }

    /// [`acme`](Self::acme) with an [`Acme`](crate::tls::acme::Acme)
    /// made before, to share one certificate across endpoints or read its
    /// status. Default: none.
    #[cfg(feature = "acme")]
    pub fn acme_shared(mut self, acme: crate::tls::acme::Acme) -> Self {
        self.acme = Some(acme);
        self
    }

    /// The ACME certificate, if the options have one.
    #[cfg(feature = "acme")]
    pub fn acme_certificate(&self) -> Option<&crate::tls::acme::Acme> {
        self.acme.as_ref()
    }

    /// Whether any certificate source is configured.
    pub fn has_certificate(&self) -> bool {
        #[cfg(feature = "acme")]
        if self.acme.is_some() {
            return true;
        }
        self.certificate.is_some() || !self.sni.is_empty() || self.selector.is_some()
    }
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("certificate", &self.certificate.is_some())
            .field("sni", &!self.sni.is_empty())
            .field("selector", &self.selector.is_some())
            .field("client_mode", &self.client_mode)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("versions", &self.versions)
            .field("cipher_suites", &self.cipher_suites)
            .field("observers", &self.observers.len())
            .finish()
    }
}
