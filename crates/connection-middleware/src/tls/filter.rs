//! The TLS filter: allow or refuse connections by their handshake.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use kite_transport_core::tls::{TlsHandshake, TlsVersion};
use kite_transport_core::Connection;

use crate::{ConnectionError, ConnectionMiddleware, Next};

type Policy = Arc<dyn Fn(&TlsHandshake) -> Result<(), String> + Send + Sync>;

/// Allows or refuses connections by the TLS version and cipher suite their
/// handshake negotiated: the Kestrel docs' `UseTlsFilter`. Place it after
/// the TLS middleware; a refused connection is closed and the reason
/// logged at debug level.
///
/// ```
/// use kite_connection_middleware::tls::TlsFilter;
/// use kite_transport_core::tls::TlsVersion;
///
/// let only_tls13 = TlsFilter::versions(&[TlsVersion::Tls13]);
/// let no_cbc = TlsFilter::new(|handshake| !handshake.cipher_suite.contains("CBC"));
/// # let _ = (only_tls13, no_cbc);
/// ```
#[derive(Clone)]
pub struct TlsFilter {
    policy: Policy,
}

impl TlsFilter {
    /// Allows the connections `allow` returns `true` for.
    pub fn new(allow: impl Fn(&TlsHandshake) -> bool + Send + Sync + 'static) -> Self {
        Self {
            policy: Arc::new(move |handshake| {
                if allow(handshake) {
                    Ok(())
                } else {
                    Err(format!("{} with {} is not allowed", handshake.version, handshake.cipher_suite))
                }
            }),
        }
    }

    /// Allows only these protocol versions.
    pub fn versions(allowed: &[TlsVersion]) -> Self {
        let allowed = allowed.to_vec();
        Self {
            policy: Arc::new(move |handshake| {
                if allowed.contains(&handshake.version) {
                    Ok(())
                } else {
                    Err(format!("prohibited protocol version: {}", handshake.version))
                }
            }),
        }
    }

    /// Allows only these cipher suites, by IANA name.
    pub fn cipher_suites<I, S>(allowed: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let allowed: Vec<String> = allowed.into_iter().map(Into::into).collect();
        Self {
            policy: Arc::new(move |handshake| {
                if allowed.contains(&handshake.cipher_suite) {
                    Ok(())
                } else {
                    Err(format!("prohibited cipher suite: {}", handshake.cipher_suite))
                }
            }),
        }
    }
}

impl fmt::Debug for TlsFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsFilter").finish_non_exhaustive()
    }
}

#[async_trait]
impl ConnectionMiddleware for TlsFilter {
    async fn on_connection(&self, connection: Connection, next: Next) -> Result<(), ConnectionError> {
        let verdict = match connection.context().features().get::<TlsHandshake>() {
            Some(handshake) => (self.policy)(handshake),
            None => Err("no TLS handshake: the TLS filter must come after the TLS middleware".into()),
        };
        match verdict {
            Ok(()) => next.run(connection).await,
            Err(reason) => {
                tracing::debug!(connection_id = %connection.context().id(), %reason, "connection refused by the TLS filter");
                connection
                    .context()
                    .close_signal()
                    .set_end_reason(kite_transport_core::ConnectionEndReason::TlsNotAllowed);
                Err(ConnectionError::rejected(reason))
            }
        }
    }
}
