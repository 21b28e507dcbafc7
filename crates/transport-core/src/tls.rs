//! What a TLS handshake established, as a connection feature.

use std::fmt;

/// A TLS protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
    /// Another version, by its wire value.
    Other(u16),
}

impl TlsVersion {
    /// The name applications and logs use: `TLSv1.2`, `TLSv1.3`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
            TlsVersion::Other(_) => "unknown",
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsVersion::Other(v) => write!(f, "TLS(0x{v:04x})"),
            known => f.write_str(known.as_str()),
        }
    }
}

/// A connection feature the TLS middleware adds after a successful
/// handshake (Kestrel's `ITlsHandshakeFeature`): the HTTP core reads the
/// ALPN result from it, the TLS filter checks the version and suite, and
/// applications can read all of it.
///
/// ```
/// use kite_transport_core::tls::{TlsHandshake, TlsVersion};
///
/// let handshake = TlsHandshake {
///     version: TlsVersion::Tls13,
///     cipher_suite: "TLS13_AES_128_GCM_SHA256".into(),
///     sni: Some("localhost".into()),
///     alpn: Some(b"http/1.1".to_vec()),
///     peer_certificates: Vec::new(),
/// };
/// assert_eq!(handshake.alpn_str(), Some("http/1.1"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsHandshake {
    /// The negotiated protocol version.
    pub version: TlsVersion,
    /// The negotiated cipher suite, by its IANA name
    /// (`TLS13_AES_128_GCM_SHA256`).
    pub cipher_suite: String,
    /// The server name the client asked for (SNI), if any.
    pub sni: Option<String>,
    /// The application protocol agreed by ALPN (`h2`, `http/1.1`), if any.
    pub alpn: Option<Vec<u8>>,
    /// The client's certificate chain, DER, leaf first; empty when the
    /// client sent none.
    pub peer_certificates: Vec<Vec<u8>>,
}

impl TlsHandshake {
    /// The ALPN protocol as text, if it is UTF-8.
    pub fn alpn_str(&self) -> Option<&str> {
        self.alpn.as_deref().and_then(|a| std::str::from_utf8(a).ok())
    }
}
