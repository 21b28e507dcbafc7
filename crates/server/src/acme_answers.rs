//! ACME in the server: the HTTP-01 answers, given before the readiness
//! probe, host filtering and the application, and the `kite.acme.*`
//! metrics of each ACME certificate the endpoints serve.

use bytes::Bytes;

use kite_connection_middleware::tls::TlsMiddleware;

/// The path prefix of HTTP-01 challenges (RFC 8555 §8.3).
const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// The ACME certificates of a server's endpoints, for their HTTP-01
/// answers.
#[derive(Debug, Default)]
pub(crate) struct AcmeAnswers {
    #[cfg(feature = "acme")]
    certificates: Vec<kite_connection_middleware::tls::acme::Acme>,
}

impl AcmeAnswers {
    /// The ACME certificates of the endpoints' TLS middleware, each once;
    /// `None` when none has one. Each gets its metrics.
    pub fn collect<'a>(endpoints: impl Iterator<Item = &'a TlsMiddleware>) -> Option<Self> {
        #[cfg(feature = "acme")]
        {
            let mut certificates: Vec<kite_connection_middleware::tls::acme::Acme> = Vec::new();
            for acme in endpoints.filter_map(TlsMiddleware::acme) {
                if !certificates.iter().any(|known| known.same(acme)) {
                    // Its task starts with the serving, not the binding: a
                    // process that only binds (a workers' supervisor) orders
                    // nothing.
                    acme.start();
                    crate::metrics::observe_acme(acme);
                    certificates.push(acme.clone());
                }
            }
            (!certificates.is_empty()).then_some(Self { certificates })
        }
        #[cfg(not(feature = "acme"))]
        {
            let _ = endpoints;
            None
        }
    }

    /// The body answering `GET path`, if `path` is an open HTTP-01
    /// challenge's.
    pub fn answer(&self, path: &str) -> Option<Bytes> {
        let token = path.strip_prefix(CHALLENGE_PATH)?;
        #[cfg(feature = "acme")]
        for acme in &self.certificates {
            if let Some(answer) = acme.http01_answer(token) {
                tracing::debug!(target: "kite::acme", token, "answered an HTTP-01 challenge");
                return Some(Bytes::from(answer));
            }
        }
        let _ = token;
        None
    }
}
