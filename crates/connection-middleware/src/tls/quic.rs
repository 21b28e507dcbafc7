//! The TLS configuration an endpoint's QUIC listener uses: the same
//! certificates (selector, SNI map, fixed certificate, renewals followed),
//! the same client-certificate policy and suites, limited to TLS 1.3 as
//! QUIC requires, offering ALPN `h3`.

use std::fmt;
use std::sync::Arc;

use kite_transport_core::{ConnectionContext, ConnectionId, Endpoint};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::tls::{TlsError, TlsMiddleware};

impl TlsMiddleware {
    /// A rustls configuration for QUIC with this middleware's
    /// certificates: TLS 1.3 only, ALPN `h3`. The certificate is chosen per
    /// ClientHello as for TCP; a selector sees a context with unnamed
    /// endpoints, since QUIC chooses before the connection exists.
    ///
    /// # Errors
    ///
    /// [`TlsError::Http3NeedsTls13`] when the options leave out TLS 1.3 or
    /// every TLS 1.3 suite.
    pub fn quic_server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let inner = &self.inner;
        if !inner.versions.contains(&&rustls::version::TLS13) {
            return Err(TlsError::Http3NeedsTls13);
        }
        let builder = ServerConfig::builder_with_provider(Arc::clone(&inner.provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|_| TlsError::Http3NeedsTls13)?;
        let builder = match &inner.verifier {
            Some(verifier) => builder.with_client_cert_verifier(Arc::clone(verifier)),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(Selecting(self.clone())));
        config.alpn_protocols = vec![b"h3".to_vec()];
        config.ignore_client_order = true;
        Ok(Arc::new(config))
    }
}

/// Chooses the certificate from the ClientHello, as the TCP handshake does.
struct Selecting(TlsMiddleware);

impl fmt::Debug for Selecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Selecting")
    }
}

impl ResolvesServerCert for Selecting {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let context = ConnectionContext::new(ConnectionId::next(), Endpoint::Unnamed, Endpoint::Unnamed, "quic");
        self.0.choose(&context, hello.server_name()).map(|certificate| certificate.current())
    }
}
