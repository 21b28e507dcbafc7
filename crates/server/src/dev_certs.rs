//! The development certificate: a self-signed certificate for localhost,
//! kept in the user's data directory (Kestrel's `dotnet dev-certs`).

use std::io;
use std::path::{Path, PathBuf};

use kite_connection_middleware::tls::{Certificate, TlsError, TlsOptions};

/// The environment variable that overrides where the development
/// certificate is kept.
pub const DIR_VARIABLE: &str = "KITE_DEV_CERTS_DIR";

/// How long a new development certificate is valid: one year, as
/// Kestrel's.
const VALID_DAYS: i64 = 365;

/// The development certificate's files.
///
/// ```no_run
/// use kite_server::dev_certs::DevCertificate;
///
/// let certificate = match DevCertificate::find() {
///     Some(existing) => existing,
///     None => DevCertificate::create().expect("a writable data directory"),
/// };
/// println!("{}", certificate.cert_path().display());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevCertificate {
    dir: PathBuf,
}

impl DevCertificate {
    /// Where the certificate is kept: `$KITE_DEV_CERTS_DIR`, else
    /// `$XDG_DATA_HOME/kite/dev-certs`, else
    /// `$HOME/.local/share/kite/dev-certs`. `None` when none is set.
    pub fn dir() -> Option<PathBuf> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        var(DIR_VARIABLE)
            .or_else(|| var("XDG_DATA_HOME").map(|d| d.join("kite/dev-certs")))
            .or_else(|| var("HOME").map(|h| h.join(".local/share/kite/dev-certs")))
    }

    fn at(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The certificate, if one has been created.
    pub fn find() -> Option<Self> {
        let found = Self::at(Self::dir()?);
        (found.cert_path().is_file() && found.key_path().is_file()).then_some(found)
    }

    /// Creates a new certificate for `localhost`, `127.0.0.1` and `::1`
    /// (ECDSA P-256, server authentication, valid for a year), replacing
    /// any older one. The key file is readable by its owner only.
    ///
    /// # Errors
    ///
    /// When no data directory is known, or it cannot be written.
    pub fn create() -> io::Result<Self> {
        let dir = Self::dir().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no data directory: set HOME or {DIR_VARIABLE}"))
        })?;
        std::fs::create_dir_all(&dir)?;
        let created = Self::at(dir);
        let (cert_pem, key_pem) = generate().map_err(io::Error::other)?;
        std::fs::write(created.cert_path(), cert_pem)?;
        write_private(&created.key_path(), key_pem.as_bytes())?;
        Ok(created)
    }

    /// Removes the certificate. Returns whether there was one.
    ///
    /// # Errors
    ///
    /// When the files exist but cannot be removed.
    pub fn clean() -> io::Result<bool> {
        let Some(found) = Self::find() else {
            return Ok(false);
        };
        std::fs::remove_file(found.cert_path())?;
        std::fs::remove_file(found.key_path())?;
        Ok(true)
    }

    /// The PEM certificate file.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("localhost.pem")
    }

    /// The PEM private key file.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("localhost.key.pem")
    }

    /// TLS options that serve this certificate.
    ///
    /// # Errors
    ///
    /// [`TlsError::Certificate`] when the files cannot be loaded.
    pub fn tls_options(&self) -> Result<TlsOptions, TlsError> {
        Ok(TlsOptions::new().certificate(Certificate::from_pem_files(self.cert_path(), self.key_path())?))
    }
}

fn generate() -> Result<(String, String), rcgen::Error> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    let mut params = rcgen::CertificateParams::new(names)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "Kite development certificate");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(VALID_DAYS);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let certificate = params.self_signed(&key)?;
    Ok((certificate.pem(), key.serialize_pem()))
}

fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(contents)
}
