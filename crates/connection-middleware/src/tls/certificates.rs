//! Server certificates: loading, and choosing one by SNI.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::tls::TlsError;

/// A server certificate: its chain and private key, ready for handshakes.
/// Cloning is cheap.
///
/// One loaded with [`from_pem_files`](Self::from_pem_files) watches its
/// files: at most once a second, a handshake looks at their modification
/// times, and a renewed certificate is used from the next handshake on,
/// without a restart. A renewal that cannot be read (a half-written file)
/// keeps the previous certificate and logs a warning.
#[derive(Clone, Debug)]
pub struct Certificate {
    key: Arc<CertifiedKey>,
    files: Option<Arc<WatchedFiles>>,
}

/// The files a certificate came from, and what was last loaded from them.
#[derive(Debug)]
struct WatchedFiles {
    chain: PathBuf,
    key: PathBuf,
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    stamp: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

/// How often the files are looked at, at most.
const CHECK_EVERY: Duration = Duration::from_secs(1);

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl WatchedFiles {
    fn current(&self) -> Arc<CertifiedKey> {
        let mut loaded = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.checked.elapsed() < CHECK_EVERY {
            return Arc::clone(&loaded.key);
        }
        loaded.checked = Instant::now();
        let stamp = (modified(&self.chain), modified(&self.key));
        if stamp != loaded.stamp {
            match Certificate::load_files(&self.chain, &self.key) {
                Ok(renewed) => {
                    tracing::info!(certificate = %self.chain.display(), "certificate files changed; new handshakes use the renewed certificate");
                    loaded.key = renewed;
                    loaded.stamp = stamp;
                }
                Err(error) => {
                    tracing::warn!(%error, "certificate files changed but cannot be loaded; keeping the previous certificate");
                }
            }
        }
        Arc::clone(&loaded.key)
    }
}

impl Certificate {
    /// Loads a PEM certificate chain (leaf first) and a PEM private key
    /// (PKCS#8, PKCS#1 RSA or SEC1 EC; RSA, ECDSA and Ed25519 keys).
    ///
    /// # Errors
    ///
    /// [`TlsError::Read`] when a file cannot be read; [`TlsError::Files`],
    /// naming both files, around the error of [`from_pem`](Self::from_pem)
    /// when they hold no certificate or key, or a key the crypto provider
    /// cannot use.
    pub fn from_pem_files(chain: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, TlsError> {
        let (chain, key) = (chain.as_ref(), key.as_ref());
        let stamp = (modified(chain), modified(key));
        let loaded = Self::load_files(chain, key)?;
        let files = WatchedFiles {
            chain: chain.to_path_buf(),
            key: key.to_path_buf(),
            state: Mutex::new(Loaded { key: Arc::clone(&loaded), stamp, checked: Instant::now() }),
        };
        Ok(Self { key: loaded, files: Some(Arc::new(files)) })
    }

    fn load_files(chain: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| TlsError::Read { path: path.to_path_buf(), source: Arc::new(e) })
        };
        let loaded = Self::from_pem(&read(chain)?, &read(key)?).map_err(|e| TlsError::Files {
            chain: chain.to_path_buf(),
            key: key.to_path_buf(),
            source: Box::new(e),
        })?;
        Ok(loaded.key)
    }

    /// The key to hand out now: a watched certificate's latest.
    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        match &self.files {
            Some(files) => files.current(),
            None => Arc::clone(&self.key),
        }
    }

    /// Reads a PEM certificate chain and a PEM private key from memory.
    ///
    /// # Errors
    ///
    /// [`TlsError::InvalidPem`] or [`TlsError::NoCertificateInPem`] for the
    /// chain; [`TlsError::NoPrivateKey`] or [`TlsError::UnsupportedKey`] for
    /// the key.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let certs = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::InvalidPem(Arc::new(e)))?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificateInPem);
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::NoPrivateKey(Arc::new(e)))?;
        Self::from_der(certs, key)
    }

    /// A certificate from rustls types: the chain (leaf first) and its key.
    ///
    /// # Errors
    ///
    /// [`TlsError::UnsupportedKey`] when the crypto provider cannot use the
    /// key.
    pub fn from_der(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Self, TlsError> {
        let provider = crate::tls::provider();
        let signing_key = provider.key_provider.load_private_key(key).map_err(TlsError::UnsupportedKey)?;
        Ok(Self { key: Arc::new(CertifiedKey::new(chain, signing_key)), files: None })
    }

    /// A certificate already made into a rustls [`CertifiedKey`].
    pub fn from_certified_key(key: Arc<CertifiedKey>) -> Self {
        Self { key, files: None }
    }

    /// The certificate chain, DER, leaf first, as first loaded.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.key.cert
    }
}

/// Certificates by server name: exact names, `*.example.com` wildcards
/// (one label, as in Kestrel's SNI configuration), and a `*` fallback.
#[derive(Clone, Debug, Default)]
pub(crate) struct SniMap {
    exact: HashMap<String, Certificate>,
    wildcard: HashMap<String, Certificate>,
    fallback: Option<Certificate>,
}

impl SniMap {
    pub fn insert(&mut self, name: &str, certificate: Certificate) {
        let name = name.to_ascii_lowercase();
        if name == "*" {
            self.fallback = Some(certificate);
        } else if let Some(parent) = name.strip_prefix("*.") {
            self.wildcard.insert(parent.to_string(), certificate);
        } else {
            self.exact.insert(name, certificate);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.fallback.is_none()
    }

    /// The certificate for `sni`: exact name, then wildcard, then `*`.
    pub fn get(&self, sni: Option<&str>) -> Option<&Certificate> {
        if let Some(sni) = sni {
            let sni = sni.to_ascii_lowercase();
            if let Some(certificate) = self.exact.get(&sni) {
                return Some(certificate);
            }
            if let Some((_, parent)) = sni.split_once('.') {
                if let Some(certificate) = self.wildcard.get(parent) {
                    return Some(certificate);
                }
            }
        }
        self.fallback.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(name: &str) -> Certificate {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        Certificate::from_pem(cert.cert.pem().as_bytes(), cert.signing_key.serialize_pem().as_bytes()).unwrap()
    }

    #[test]
    fn sni_prefers_exact_then_wildcard_then_fallback() {
        let mut map = SniMap::default();
        let (exact, wild, any) = (certificate("a.example.com"), certificate("*.example.com"), certificate("other"));
        map.insert("a.example.com", exact.clone());
        map.insert("*.example.com", wild.clone());
        map.insert("*", any.clone());
        let leaf = |c: Option<&Certificate>| c.unwrap().chain()[0].clone();
        assert_eq!(leaf(map.get(Some("A.Example.com"))), exact.chain()[0]);
        assert_eq!(leaf(map.get(Some("b.example.com"))), wild.chain()[0]);
        assert_eq!(leaf(map.get(Some("x.b.example.com"))), any.chain()[0], "a wildcard covers one label");
        assert_eq!(leaf(map.get(Some("example.com"))), any.chain()[0]);
        assert_eq!(leaf(map.get(None)), any.chain()[0]);
    }

    #[test]
    fn pem_errors_name_the_problem() {
        let err = Certificate::from_pem(b"not pem", b"").unwrap_err().to_string();
        assert!(err.contains("no certificate"), "{err}");
        let cert = rcgen::generate_simple_self_signed(vec!["a".to_string()]).unwrap();
        let err = Certificate::from_pem(cert.cert.pem().as_bytes(), b"").unwrap_err().to_string();
        assert!(err.contains("private key"), "{err}");
        let err = Certificate::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem").unwrap_err().to_string();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    }

    #[test]
    fn rsa_ecdsa_and_ed25519_keys_load() {
        // ring cannot generate RSA keys, so that one is a fixture: PKCS#8 for
        // rcgen to sign with, PKCS#1 for Kite to load.
        let rsa = rcgen::KeyPair::from_pem(include_str!("../../tests/fixtures/rsa-2048.pkcs8.pem")).unwrap();
        let ecdsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let ed25519 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        for (alg, key) in [("rsa", rsa), ("ecdsa", ecdsa), ("ed25519", ed25519)] {
            let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
            let cert = params.self_signed(&key).unwrap();
            let key_pem = if alg == "rsa" {
                include_str!("../../tests/fixtures/rsa-2048.pkcs1.pem").to_string()
            } else {
                key.serialize_pem()
            };
            let loaded = Certificate::from_pem(cert.pem().as_bytes(), key_pem.as_bytes());
            assert!(loaded.is_ok(), "{alg}: {loaded:?}");
        }
    }
}
