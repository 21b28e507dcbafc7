//! A certificate from the ACME server: its chain and key, its validity,
//! and when it is to be renewed; and a TLS-ALPN-01 challenge's.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

use rustls_pki_types::CertificateDer;

use super::error::AcmeError;
use crate::tls::Certificate;

/// A certificate from the ACME server, with its validity and when it is
/// to be renewed.
pub(crate) struct Issued {
    pub certificate: Certificate,
    pub chain_pem: String,
    pub key_pem: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub renew_at: SystemTime,
}

impl Issued {
    /// Reads a chain and key; renewal at two thirds of the lifetime, less
    /// a jitter of up to a twentieth of it.
    pub fn from_pem(chain_pem: String, key_pem: String) -> Result<Issued, AcmeError> {
        let certificate = Certificate::from_pem(chain_pem.as_bytes(), key_pem.as_bytes())
            .map_err(|e| AcmeError::Other(format!("the certificate cannot be read: {e}")))?;
        let leaf = certificate.chain().first().ok_or_else(|| AcmeError::Other("an empty chain".into()))?;
        let (not_before, not_after, _) = validity(leaf)?;
        let lifetime = not_after.duration_since(not_before).unwrap_or_default();
        let jitter = lifetime.mul_f64(random_fraction() / 20.0);
        let renew_at = not_before + lifetime.mul_f64(2.0 / 3.0) - jitter;
        Ok(Issued { certificate, chain_pem, key_pem, not_before, not_after, renew_at })
    }
}

/// A leaf certificate's `notBefore`, `notAfter` and DNS names.
pub(crate) fn validity(leaf: &CertificateDer<'_>) -> Result<(SystemTime, SystemTime, Vec<String>), AcmeError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| AcmeError::Other(format!("the certificate cannot be parsed: {e}")))?;
    let at = |time: x509_parser::time::ASN1Time| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(time.timestamp()).unwrap_or(0))
    };
    let validity = parsed.validity();
    let names = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((at(validity.not_before), at(validity.not_after), names))
}

/// A number from 0 to 1, different each call.
pub(crate) fn random_fraction() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A TLS-ALPN-01 certificate and its key, in PEM.
pub(crate) struct ChallengePem {
    pub certificate: String,
    pub key: String,
}

impl ChallengePem {
    /// The certificate, ready for handshakes.
    pub fn load(&self) -> Option<Certificate> {
        Certificate::from_pem(self.certificate.as_bytes(), self.key.as_bytes()).ok()
    }
}
