//! Let's Encrypt's test ACME server, pebble, and its DNS,
//! pebble-challtestsrv (Debian's `pebble` package), started on loopback
//! with a configuration the test writes: every name resolves to
//! 127.0.0.1, challenges are validated at once, and pebble validates
//! HTTP-01 and TLS-ALPN-01 on the ports the test gives. Shared by the
//! facade's tests and the binary's.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(10);

/// The domain the tests ask certificates for.
pub const DOMAIN: &str = "kite.test";

/// A free TCP port on 127.0.0.1 (taken, then let go).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running pebble and its DNS.
pub struct Pebble {
    pebble: Option<Child>,
    dns: Child,
    pub dir: PathBuf,
    /// pebble's ACME API.
    pub api: SocketAddr,
    /// pebble's management API (its issuing roots).
    pub management: SocketAddr,
    /// The root of pebble's own TLS certificate: `--acme-root`.
    pub api_root: PathBuf,
    dns_port: u16,
    config: PathBuf,
}

/// pebble's binaries, or the missing-tool message.
pub fn binaries() -> Result<(), String> {
    let found = |b: &str| Command::new(b).arg("-h").output().is_ok();
    if found("pebble") && found("pebble-challtestsrv") {
        Ok(())
    } else {
        Err("pebble and pebble-challtestsrv are required by this test but are not installed; run scripts/test.sh (the README's test command), which installs Debian's pebble".into())
    }
}

impl Pebble {
    /// Starts pebble validating HTTP-01 on `http_port` and TLS-ALPN-01 on
    /// `tls_port` of 127.0.0.1, issuing certificates valid for `validity`.
    pub async fn start(http_port: u16, tls_port: u16, validity: Duration) -> Pebble {
        let dir = std::env::temp_dir().join(format!("kite-pebble-{}-{tls_port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // pebble's API certificate, from a CA of the test's.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, "pebble test API root");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        leaf.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let leaf = leaf.signed_by(&key, &issuer).unwrap();
        let api_root = dir.join("pebble.minica.pem");
        std::fs::write(&api_root, ca_cert.pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();

        let (api_port, management_port, dns_port) = (free_port(), free_port(), free_port());
        let config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{api_port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": dir.join("cert.pem"),
            "privateKey": dir.join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity.as_secs(),
        }});
        let config_path = dir.join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let dns = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv starts");
        let mut pebble = Pebble {
            pebble: None,
            dns,
            dir,
            api: SocketAddr::from(([127, 0, 0, 1], api_port)),
            management: SocketAddr::from(([127, 0, 0, 1], management_port)),
            api_root,
            dns_port,
            config: config_path,
        };
        pebble.resume().await;
        pebble
    }

    /// pebble's directory URL.
    pub fn directory(&self) -> String {
        format!("https://{}/dir", self.api)
    }

    /// Starts pebble (again, after [`pause`](Self::pause)): a new pebble,
    /// with a new issuing root and no accounts, as after a restart.
    pub async fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.join("pebble.log")).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&self.config)
            .args(["-dnsserver", &format!("127.0.0.1:{}", self.dns_port)])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("pebble starts");
        self.pebble = Some(child);
        // Wait on its bound address.
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(self.api).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "pebble listens in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops pebble (its DNS stays).
    pub fn pause(&mut self) {
        if let Some(mut child) = self.pebble.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// pebble's issuing root now, from its management API: what a client
    /// trusts to verify the certificates it issues.
    pub async fn issuing_root(&self) -> rustls::pki_types::CertificateDer<'static> {
        let pem = self.issuing_root_pem().await;
        rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes()).expect("a PEM root")
    }

    /// [`issuing_root`](Self::issuing_root) as PEM, for curl's `--cacert`.
    pub async fn issuing_root_pem(&self) -> String {
        https_get(self.management, &self.api_root, "/roots/0").await
    }

    /// pebble's log so far, for a failure message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pebble.log")).unwrap_or_default()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.pause();
        let _ = self.dns.kill();
        let _ = self.dns.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A rustls client configuration trusting `root`, offering `alpn`.
pub fn client_config(root: rustls::pki_types::CertificateDer<'static>, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// `GET path` over HTTPS from `addr`, trusting the PEM root at `root`;
/// the body.
async fn https_get(addr: SocketAddr, root: &Path, path: &str) -> String {
    let pem = std::fs::read(root).unwrap();
    let root = rustls::pki_types::pem::PemObject::from_pem_slice(&pem).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(root, &[])));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = connector.connect("127.0.0.1".try_into().unwrap(), tcp).await.expect("pebble's management TLS");
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut raw)).await.expect("pebble answers");
    let text = String::from_utf8_lossy(&raw).to_string();
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// A TLS connection to `addr` for [`DOMAIN`], verified against `root`,
/// offering `alpn`; the handshake's error if it fails.
pub async fn connect(
    addr: SocketAddr,
    root: rustls::pki_types::CertificateDer<'static>,
    alpn: &[&[u8]],
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, std::io::Error> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(root, alpn)));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    connector.connect(DOMAIN.try_into().unwrap(), tcp).await
}

/// The leaf certificate a TLS stream's server sent.
pub fn leaf(stream: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default()
}
