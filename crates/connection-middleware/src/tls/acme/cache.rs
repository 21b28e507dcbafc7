//! The cache directory: the account's credentials, and the certificate
//! with its key, per directory URL. Files holding a key are readable by
//! the owner only.

use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::time::SystemTime;

use instant_acme::AccountCredentials;
use sha2::{Digest, Sha256};

use super::certificate::{validity, ChallengePem, Issued};
use super::AcmeOptions;

/// A short name for the directory URL: staging and production, or two ACME
/// servers, never share an account or a certificate.
fn prefix(options: &AcmeOptions) -> String {
    let digest = Sha256::digest(options.directory.as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

fn account_path(options: &AcmeOptions) -> PathBuf {
    options.cache_dir.join(format!("{}-account.json", prefix(options)))
}

fn certificate_paths(options: &AcmeOptions) -> (PathBuf, PathBuf) {
    let name = options.domains.first().map_or("certificate", String::as_str);
    let base = format!("{}-{name}", prefix(options));
    (options.cache_dir.join(format!("{base}.pem")), options.cache_dir.join(format!("{base}.key.pem")))
}

/// Writes `bytes` to `path` through a new file renamed into place, with
/// `mode`, so a reader never sees half a file.
fn write(path: &PathBuf, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("no directory"))?;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// Waits for, then holds, the cache directory's lock (an exclusive file
/// lock, released when the file is dropped or the process ends).
pub(super) async fn lock(options: &AcmeOptions) -> io::Result<std::fs::File> {
    std::fs::create_dir_all(&options.cache_dir)?;
    std::fs::set_permissions(&options.cache_dir, std::fs::Permissions::from_mode(0o700))?;
    let path = options.cache_dir.join(format!("{}.lock", prefix(options)));
    let file = std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file)).await.map_err(io::Error::other)?
}

/// Where an open challenge's answer is kept for the other processes on
/// the cache; `None` for a name that is not a safe file name.
fn challenge_path(options: &AcmeOptions, kind: &str, name: &str) -> Option<PathBuf> {
    let safe = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    (safe && !name.starts_with('.'))
        .then(|| options.cache_dir.join(format!("{}-{kind}-{name}.challenge", prefix(options))))
}

pub(super) fn write_http_challenge(options: &AcmeOptions, token: &str, answer: &str) -> io::Result<()> {
    let path = challenge_path(options, "http", token).ok_or_else(|| io::Error::other("an odd token"))?;
    write(&path, answer.as_bytes(), 0o600)
}

pub(super) fn read_http_challenge(options: &AcmeOptions, token: &str) -> Option<String> {
    std::fs::read_to_string(challenge_path(options, "http", token)?).ok()
}

pub(super) fn remove_http_challenge(options: &AcmeOptions, token: &str) {
    if let Some(path) = challenge_path(options, "http", token) {
        let _ = std::fs::remove_file(path);
    }
}

pub(super) fn write_alpn_challenge(options: &AcmeOptions, domain: &str, pem: &ChallengePem) -> io::Result<()> {
    let path = challenge_path(options, "alpn", domain).ok_or_else(|| io::Error::other("an odd domain"))?;
    write(&path, format!("{}\n{}", pem.certificate, pem.key).as_bytes(), 0o600)
}

pub(super) fn read_alpn_challenge(options: &AcmeOptions, domain: &str) -> Option<ChallengePem> {
    let both = std::fs::read_to_string(challenge_path(options, "alpn", domain)?).ok()?;
    let split = both.find("-----BEGIN PRIVATE KEY-----")?;
    Some(ChallengePem { certificate: both[..split].to_string(), key: both[split..].to_string() })
}

pub(super) fn remove_alpn_challenge(options: &AcmeOptions, domain: &str) {
    if let Some(path) = challenge_path(options, "alpn", domain) {
        let _ = std::fs::remove_file(path);
    }
}

/// The cached account, if any can be read.
pub(super) fn load_account(options: &AcmeOptions) -> Option<AccountCredentials> {
    let text = std::fs::read_to_string(account_path(options)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Removes the cached account (the ACME server no longer knows it).
pub(super) fn forget_account(options: &AcmeOptions) {
    let _ = std::fs::remove_file(account_path(options));
}

pub(super) fn store_account(options: &AcmeOptions, credentials: &AccountCredentials) -> io::Result<()> {
    let text = serde_json::to_string(credentials).map_err(io::Error::other)?;
    write(&account_path(options), text.as_bytes(), 0o600)
}

/// The cached certificate, if one covers the domains and has not
/// expired (one due for renewal serves while it is renewed): `Ok(None)`
/// when there is none to use.
pub(super) fn load_certificate(options: &AcmeOptions) -> Result<Option<Issued>, String> {
    let (chain, key) = certificate_paths(options);
    let (Ok(chain_pem), Ok(key_pem)) = (std::fs::read_to_string(&chain), std::fs::read_to_string(&key)) else {
        return Ok(None);
    };
    let issued = Issued::from_pem(chain_pem, key_pem).map_err(|e| e.to_string())?;
    let leaf = issued.certificate.chain().first().cloned().ok_or("an empty chain")?;
    let (_, _, names) = validity(&leaf).map_err(|e| e.to_string())?;
    if !options.domains.iter().all(|d| names.contains(d)) {
        return Ok(None);
    }
    if issued.not_after <= SystemTime::now() {
        return Ok(None);
    }
    Ok(Some(issued))
}

pub(super) fn store_certificate(options: &AcmeOptions, issued: &Issued) -> io::Result<()> {
    let (chain, key) = certificate_paths(options);
    write(&key, issued.key_pem.as_bytes(), 0o600)?;
    write(&chain, issued.chain_pem.as_bytes(), 0o644)
}
