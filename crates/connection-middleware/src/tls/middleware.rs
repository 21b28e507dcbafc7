//! The TLS middleware: the handshake, then the plaintext stream.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use kite_transport_core::tls::{TlsHandshake, TlsVersion};
use kite_transport_core::{Connection, ConnectionContext, ConnectionId, ConnectionIo};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, UnbufferedServerConnection};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedProtocolVersion};

use crate::tls::{accept, verifier, Certificate, HandshakeObserver, TlsError, TlsIo, TlsOptions};
use crate::{ConnectionError, ConnectionMiddleware, HandshakeError, Next};

/// Terminates TLS (Kestrel's `UseHttps`): reads the ClientHello, picks the
/// certificate (selector, then SNI map, then the fixed certificate), runs
/// the handshake within the handshake timeout, adds a [`TlsHandshake`]
/// feature and passes the plaintext stream on. A connection that already
/// has a `TlsHandshake` passes through untouched.
///
/// A failed handshake closes the connection with a debug event ("Failed to
/// authenticate HTTPS connection."), a timed-out one with "Authentication
/// of the HTTPS connection timed out."; both are counted in
/// [`failed_handshakes`](Self::failed_handshakes).
#[derive(Clone)]
pub struct TlsMiddleware {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) options: TlsOptions,
    pub(super) provider: Arc<CryptoProvider>,
    pub(super) versions: Vec<&'static SupportedProtocolVersion>,
    pub(super) verifier: Option<Arc<dyn ClientCertVerifier>>,
    /// One server config per certificate in use, keyed by its address.
    configs: Mutex<HashMap<usize, Arc<ServerConfig>>>,
    handshakes: AtomicU64,
    failed: AtomicU64,
}

impl TlsMiddleware {
    /// Checks `options` and prepares the middleware.
    ///
    /// # Errors
    ///
    /// [`TlsError::NoCertificate`] without any certificate source;
    /// [`TlsError::UnknownCipherSuite`], [`TlsError::NoVersion`],
    /// [`TlsError::VersionsAndSuites`] or [`TlsError::ClientRoots`] for
    /// settings that cannot work.
    pub fn new(options: TlsOptions) -> Result<Self, TlsError> {
        if !options.has_certificate() {
            return Err(TlsError::NoCertificate);
        }
        let base = crate::tls::provider();
        let cipher_suites = match &options.cipher_suites {
            None => preferred_order(&base.cipher_suites),
            Some(names) => names
                .iter()
                .map(|name| {
                    base.cipher_suites
                        .iter()
                        .find(|suite| suite.suite().as_str() == Some(name.as_str()))
                        .copied()
                        .ok_or_else(|| TlsError::UnknownCipherSuite(name.clone()))
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let provider = Arc::new(CryptoProvider { cipher_suites, ..(*base).clone() });
        let versions: Vec<&'static SupportedProtocolVersion> = options
            .versions
            .iter()
            .filter_map(|v| match v {
                TlsVersion::Tls12 => Some(&rustls::version::TLS12),
                TlsVersion::Tls13 => Some(&rustls::version::TLS13),
                _ => None,
            })
            .collect();
        if versions.is_empty() {
            return Err(TlsError::NoVersion);
        }
        let verifier = verifier::build(&options, &provider)?;
        #[cfg(feature = "acme")]
        if let Some(acme) = &options.acme {
            acme.validate()?;
        }
        let middleware = Self {
            inner: Arc::new(Inner {
                options,
                provider,
                versions,
                verifier,
                configs: Mutex::new(HashMap::new()),
                handshakes: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            }),
        };
        // Fail now, not at the first connection, if the settings clash
        // (a suite list with no suite for an enabled version, say).
        if let Some(certificate) = middleware.inner.options.certificate.clone() {
            middleware.config_for(&certificate)?;
        }
        Ok(middleware)
    }

    /// The ACME certificate the endpoint serves, if its options have one.
    #[cfg(feature = "acme")]
    pub fn acme(&self) -> Option<&crate::tls::acme::Acme> {
        self.inner.options.acme.as_ref()
    }

    /// Handshakes completed.
    pub fn handshakes(&self) -> u64 {
        self.inner.handshakes.load(Ordering::Relaxed)
    }

    /// Handshakes that failed or timed out.
    pub fn failed_handshakes(&self) -> u64 {
        self.inner.failed.load(Ordering::Relaxed)
    }

    pub(super) fn choose(&self, context: &ConnectionContext, sni: Option<&str>) -> Option<Certificate> {
        let options = &self.inner.options;
        if let Some(selector) = &options.selector {
            if let Some(certificate) = selector(context, sni) {
                return Some(certificate);
            }
        }
        #[cfg(feature = "acme")]
        if let Some(acme) = &options.acme {
            // A server that never started it (a server of one's own) starts
            // it at the first handshake.
            acme.start();
            // Its own names get its certificate or none (while pending):
            // never another certificate for a name it is ordering.
            if sni.is_some_and(|name| acme.serves(name)) {
                return acme.certificate();
            }
            let fixed = options.sni.get(sni).cloned().or_else(|| options.certificate.clone());
            return fixed.or_else(|| acme.certificate());
        }
        options.sni.get(sni).cloned().or_else(|| options.certificate.clone())
    }

    /// Why no certificate was chosen for `sni`.
    fn no_certificate(&self, sni: Option<&str>) -> HandshakeError {
        #[cfg(feature = "acme")]
        if let (Some(acme), Some(name)) = (&self.inner.options.acme, sni) {
            if acme.serves(name) {
                return HandshakeError::CertificatePending { server_name: name.to_owned() };
            }
        }
        HandshakeError::NoCertificate { server_name: sni.map(str::to_owned) }
    }

    /// The configuration answering a TLS-ALPN-01 challenge for `sni`, if
    /// one is open: the challenge certificate, ALPN `acme-tls/1` only.
    #[cfg(feature = "acme")]
    fn acme_challenge_config(&self, sni: Option<&str>) -> Option<Result<Arc<ServerConfig>, TlsError>> {
        let certificate = self.inner.options.acme.as_ref()?.challenge_certificate(sni)?;
        let inner = &self.inner;
        let config = ServerConfig::builder_with_provider(Arc::clone(&inner.provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::VersionsAndSuites)
            .map(|builder| {
                let mut config =
                    builder.with_no_client_auth().with_cert_resolver(Arc::new(Fixed(certificate.current())));
                config.alpn_protocols = vec![crate::tls::acme::ACME_TLS_ALPN.to_vec()];
                Arc::new(config)
            });
        Some(config)
    }

    fn config_for(&self, certificate: &Certificate) -> Result<Arc<ServerConfig>, TlsError> {
        // A watched certificate's renewal is a new key, and a new config.
        let current = certificate.current();
        let key = Arc::as_ptr(&current) as usize;
        let mut configs = self.inner.configs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(config) = configs.get(&key) {
            return Ok(Arc::clone(config));
        }
        let inner = &self.inner;
        let builder = ServerConfig::builder_with_provider(Arc::clone(&inner.provider))
            .with_protocol_versions(&inner.versions)
            .map_err(TlsError::VersionsAndSuites)?;
        let builder = match &inner.verifier {
            Some(verifier) => builder.with_client_cert_verifier(Arc::clone(verifier)),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(Fixed(current)));
        config.alpn_protocols = inner.options.alpn.clone();
        // The server's order of cipher suites decides, as TlsOptions says.
        config.ignore_client_order = true;
        let config = Arc::new(config);
        // Certificates chosen per connection by a selector may be new each
        // time; keep the cache from growing without bound.
        if configs.len() >= 1024 {
            configs.clear();
        }
        configs.insert(key, Arc::clone(&config));
        Ok(config)
    }

    async fn handshake(
        &self,
        io: Box<dyn ConnectionIo>,
        context: &ConnectionContext,
    ) -> Result<(TlsIo, Option<String>), HandshakeError> {
        accept::accept(io, |sni, acme_tls| {
            #[cfg(feature = "acme")]
            if acme_tls {
                if let Some(config) = self.acme_challenge_config(sni) {
                    return Ok(config?);
                }
            }
            let _ = acme_tls;
            let certificate = self.choose(context, sni).ok_or_else(|| self.no_certificate(sni))?;
            Ok(self.config_for(&certificate)?)
        })
        .await
    }
}

impl fmt::Debug for TlsMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMiddleware").field("options", &self.inner.options).finish()
    }
}

#[async_trait]
impl ConnectionMiddleware for TlsMiddleware {
    async fn on_connection(&self, connection: Connection, next: Next) -> Result<(), ConnectionError> {
        if connection.context().features().get::<TlsHandshake>().is_some() {
            return next.run(connection).await;
        }
        // Boxed: the handshake's state is gone once it completes, and this
        // future, which lives as long as the connection, stays small.
        let connection = Box::pin(self.secure(connection)).await?;
        // A TLS-ALPN-01 validation ends with the handshake: it speaks no HTTP.
        if connection
            .context()
            .features()
            .get::<TlsHandshake>()
            .is_some_and(|tls| tls.alpn.as_deref() == Some(b"acme-tls/1".as_slice()))
        {
            tracing::debug!(connection_id = %connection.context().id(), "answered a TLS-ALPN-01 challenge");
            return Ok(());
        }
        next.run(connection).await
    }
}

impl TlsMiddleware {
    /// Runs the handshake under the handshake timeout; the connection over
    /// the decrypted stream, with its [`TlsHandshake`] feature.
    async fn secure(&self, connection: Connection) -> Result<Connection, ConnectionError> {
        let (io, mut context) = connection.into_parts();
        let id = context.id();
        let timeout = self.inner.options.handshake_timeout;
        let mut observed = Observed::start(&self.inner.options.observers, &context);
        let (stream, sni) = match tokio::time::timeout(timeout, self.handshake(io, &context)).await {
            Ok(Ok(done)) => done,
            Ok(Err(reason)) => {
                self.inner.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(connection_id = %id, %reason, "Failed to authenticate HTTPS connection.");
                observed.end(Err(&reason));
                return Err(ConnectionError::Handshake(reason));
            }
            Err(_) => {
                self.inner.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(connection_id = %id, ?timeout, "Authentication of the HTTPS connection timed out.");
                let error = HandshakeError::Timeout(timeout);
                observed.end(Err(&error));
                return Err(ConnectionError::Handshake(error));
            }
        };
        self.inner.handshakes.fetch_add(1, Ordering::Relaxed);
        let handshake = describe(stream.connection(), sni);
        observed.end(Ok(&handshake));
        tracing::debug!(
            connection_id = %id,
            "Connection {id} established using the following protocol: {}",
            handshake.version
        );
        context.features_mut().insert(handshake);
        Ok(Connection::new(Box::new(stream), context))
    }
}

/// A handshake its observers were told of: they hear of its end once,
/// from [`end`](Self::end), or as [`HandshakeError::Aborted`] if the
/// handshake's future is dropped first.
struct Observed<'a> {
    observers: &'a [Arc<dyn HandshakeObserver>],
    id: ConnectionId,
    /// `None` once the end was told, or with no observer to tell.
    started: Option<Instant>,
}

impl<'a> Observed<'a> {
    fn start(observers: &'a [Arc<dyn HandshakeObserver>], context: &ConnectionContext) -> Self {
        for observer in observers {
            observer.started(context);
        }
        Self { observers, id: context.id(), started: (!observers.is_empty()).then(Instant::now) }
    }

    fn end(&mut self, outcome: Result<&TlsHandshake, &HandshakeError>) {
        if let Some(started) = self.started.take() {
            for observer in self.observers {
                observer.ended(self.id, started.elapsed(), outcome);
            }
        }
    }
}

impl Drop for Observed<'_> {
    fn drop(&mut self) {
        self.end(Err(&HandshakeError::Aborted));
    }
}

/// The provider's cipher suites, TLS 1.3 first and AES-128-GCM first
/// within each version. A client's own order often puts AES-256-GCM first
/// (rustls's does), whose TLS 1.3 suite runs the handshake's key schedule
/// on SHA-384: a third of a full handshake's instructions, against a few
/// percent for SHA-256 with the SHA extensions most x86-64 and ARMv8 CPUs
/// have; and AES-128 encrypts records in 10 rounds instead of 14. Browsers
/// offer AES-128-GCM first already.
pub(super) fn preferred_order(suites: &[rustls::SupportedCipherSuite]) -> Vec<rustls::SupportedCipherSuite> {
    let mut suites = suites.to_vec();
    suites.sort_by_key(|suite| {
        let tls12 = suite.version().version != rustls::ProtocolVersion::TLSv1_3;
        let aes128 = suite.suite().as_str().is_some_and(|name| name.contains("AES_128"));
        (tls12, !aes128)
    });
    suites
}

fn describe(connection: &UnbufferedServerConnection, sni: Option<String>) -> TlsHandshake {
    let version = match connection.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_2) => TlsVersion::Tls12,
        Some(rustls::ProtocolVersion::TLSv1_3) => TlsVersion::Tls13,
        Some(other) => TlsVersion::Other(u16::from(other)),
        None => TlsVersion::Other(0),
    };
    let cipher_suite = connection
        .negotiated_cipher_suite()
        .map(|suite| suite.suite().as_str().map_or_else(|| format!("{:?}", suite.suite()), str::to_owned))
        .unwrap_or_default();
    TlsHandshake {
        version,
        cipher_suite,
        sni,
        alpn: connection.alpn_protocol().map(<[u8]>::to_vec),
        peer_certificates: connection
            .peer_certificates()
            .map(|chain| chain.iter().map(|c| c.as_ref().to_vec()).collect())
            .unwrap_or_default(),
    }
}

/// Serves one certificate whatever the ClientHello says; the choice was
/// made before the handshake started.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}
