//! ACME in the server: the HTTP-01 answers, given before the readiness
//! probe, host filtering and the application, and the `kite.acme.*`
//! metrics of each ACME certificate the endpoints serve.

use bytes::Bytes;

use kite_connection_middleware::tls::TlsMiddleware;

/// The path prefix of HTTP-01 challenges (RFC 8555 §8.3).
const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// The ACME certificates of a server's endpoints, for their HTTP-01
/// answers. Endpoints join when they are launched, at startup or by a
/// configuration reload.
#[derive(Debug, Default)]
pub(crate) struct AcmeAnswers {
    #[cfg(feature = "acme")]
    certificates: std::sync::RwLock<Vec<kite_connection_middleware::tls::acme::Acme>>,
}

impl AcmeAnswers {
    /// The answers of a server whose endpoints are `endpoints`' TLS, and
    /// that reloads its configuration if `reloads`: `None` when no endpoint
    /// can ever serve an ACME certificate, so requests skip the check.
    pub fn for_server<'a>(
        mut endpoints: impl Iterator<Item = &'a TlsMiddleware>,
        reloads: bool,
    ) -> Option<std::sync::Arc<Self>> {
        #[cfg(feature = "acme")]
        if reloads || endpoints.any(|tls| tls.acme().is_some()) {
            return Some(std::sync::Arc::default());
        }
        let _ = (endpoints.next(), reloads);
        None
    }

    /// Takes in the ACME certificate of an endpoint being launched, once
    /// per certificate: its task starts with the serving, not the binding
    /// (a process that only binds, a workers' supervisor, orders nothing),
    /// it gets its metrics, and its HTTP-01 challenges are answered.
    pub fn register(&self, tls: &TlsMiddleware) {
        #[cfg(feature = "acme")]
        if let Some(acme) = tls.acme() {
            let mut certificates = self.certificates.write().unwrap_or_else(|p| p.into_inner());
            if !certificates.iter().any(|known| known.same(acme)) {
                acme.start();
                crate::metrics::observe_acme(acme);
                certificates.push(acme.clone());
            }
        }
        #[cfg(not(feature = "acme"))]
        let _ = tls;
    }

    /// The body answering `GET path`, if `path` is an open HTTP-01
    /// challenge's.
    pub fn answer(&self, path: &str) -> Option<Bytes> {
        let token = path.strip_prefix(CHALLENGE_PATH)?;
        #[cfg(feature = "acme")]
        for acme in self.certificates.read().unwrap_or_else(|p| p.into_inner()).iter() {
            if let Some(answer) = acme.http01_answer(token) {
                tracing::debug!(target: "kite::acme", token, "answered an HTTP-01 challenge");
                return Some(Bytes::from(answer));
            }
        }
        let _ = token;
        None
    }
}
