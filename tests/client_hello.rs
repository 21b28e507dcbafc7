//! The ClientHello listener and JA4: the fingerprints of curl, rustls and
//! Python's ssl, each checked against JA4 computed apart from Kite
//! (`tests/clients/ja4.py`, from FoxIO's specification) on the same
//! ClientHello; a ClientHello split across records; refusals; and bad
//! input.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{start_with, RawHello, TestServer, WAIT};
use kite::middleware::client_hello::{ClientHelloListener, TlsFingerprint};
use kite::ServerOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTPS endpoint whose listener keeps each ClientHello and its JA4.
async fn start(
    transport: &str,
    listener: ClientHelloListener,
) -> (TestServer, rustls::pki_types::CertificateDer<'static>) {
    let (certificate, der) = common::self_signed();
    let server = start_with(transport, ServerOptions::default(), move |builder| {
        builder.listen_with(([127, 0, 0, 1], 0), move |listen| {
            listen.use_(listener).use_https(kite::tls::TlsOptions::new().certificate(certificate))
        })
    })
    .await;
    (server, der)
}

fn keeping() -> ClientHelloListener {
    ClientHelloListener::new(|hello, context| {
        context.features_mut().insert(TlsFingerprint::of(hello));
        context.features_mut().insert(RawHello(hello.raw.clone()));
        Ok(())
    })
}

/// A rustls client configuration trusting `certificate` (or nothing).
fn client_config(certificate: Option<rustls::pki_types::CertificateDer<'static>>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(certificate) = certificate {
        roots.add(certificate).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn connector(certificate: Option<rustls::pki_types::CertificateDer<'static>>) -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(Arc::new(client_config(certificate)))
}

/// JA4 from the independent script, for a ClientHello in hex.
async fn ja4_apart(python: &str, hello_hex: &str) -> String {
    let script = format!("{}/tests/clients/ja4.py", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(python).arg(script).arg(hello_hex).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Checks one `/fingerprint` answer: Kite's JA4 equals the script's.
async fn check(python: &str, client: &str, answer: &str) -> String {
    let (ja4, hello) = answer.trim().split_once(' ').unwrap_or_else(|| panic!("{client}: {answer}"));
    assert!(!hello.is_empty(), "{client}: the ClientHello was kept");
    assert_eq!(ja4, ja4_apart(python, hello).await, "{client}: Kite's JA4 equals the one computed apart");
    assert!(ja4.starts_with("t1"), "{client}: {ja4}");
    ja4.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ja4_of_curl_rustls_and_python_matches_the_specification() {
    let Some(python) = common::python_with("ssl") else { return };
    for transport in common::transports() {
        let (server, der) = start(transport, keeping()).await;
        let port = server.addr.port();
        // curl (OpenSSL), offering h2 and http/1.1.
        if common::require_tool("curl") {
            let out = tokio::process::Command::new("curl")
                .args(["-sSk", "--max-time", "10"])
                .arg(format!("https://localhost:{port}/fingerprint"))
                .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let ja4 = check(&python, "curl", &String::from_utf8_lossy(&out.stdout)).await;
            assert!(ja4.starts_with("t13d") && ja4.contains("h2_"), "curl offers TLS 1.3, SNI and h2: {ja4}");
        }
        // rustls, with ALPN http/1.1.
        let tls = common::connect_tls(&server, der.clone(), b"http/1.1").await;
        let answer = get_over(tls, "/fingerprint").await;
        let ja4 = check(&python, "rustls", &answer).await;
        assert!(ja4.starts_with("t13d") && ja4.contains("h1_"), "rustls: {ja4}");
        // Python's ssl (OpenSSL, no ALPN).
        let answer = common::python_client_text(&python, "tls_get.py", &[&port.to_string(), "/fingerprint"]).await;
        let ja4 = check(&python, "python", &answer).await;
        assert!(ja4.contains("00_"), "Python offers no ALPN: {ja4}");
        server.stop().await;
    }
}

async fn get_over<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut stream: S, path: &str) -> String {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // TLS records still buffered go out now.
    stream.flush().await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut raw)).await.expect("an answer in time");
    let raw = String::from_utf8_lossy(&raw).to_string();
    raw.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
}

/// A stream that writes each buffer in pieces of `size` bytes, flushing
/// between them, so a ClientHello arrives split across reads.
struct Trickle {
    inner: TcpStream,
    size: usize,
}

impl tokio::io::AsyncRead for Trickle {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Trickle {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let n = buf.len().min(self.size);
        std::pin::Pin::new(&mut self.inner).poll_write(cx, &buf[..n])
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Re-frames a ClientHello record into two records of the same type.
fn split_record(record: &[u8]) -> Vec<u8> {
    let payload = &record[5..];
    let (first, second) = payload.split_at(payload.len() / 2);
    let mut out = Vec::new();
    for part in [first, second] {
        out.extend_from_slice(&record[..3]);
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hello_split_across_reads_and_records_is_read_whole() {
    let (server, der) = start("sockets", keeping()).await;
    // Across reads: 7 bytes at a time; the handshake still completes.
    let connector = connector(Some(der));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let tls = connector.connect("localhost".try_into().unwrap(), Trickle { inner: tcp, size: 7 }).await.unwrap();
    let answer = get_over(tls, "/fingerprint").await;
    assert!(answer.starts_with("t13d"), "{answer}");
    // Across records: a ClientHello in two handshake records parses the
    // same, and every byte reaches TLS (its alert or ServerHello comes).
    let mut client =
        rustls::ClientConnection::new(Arc::new(client_config(None)), "localhost".try_into().unwrap()).unwrap();
    let mut record = Vec::new();
    client.write_tls(&mut record).unwrap();
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(&split_record(&record)).await.unwrap();
    let mut reply = [0u8; 1];
    let n = tokio::time::timeout(WAIT, stream.read(&mut reply)).await.expect("TLS answers").unwrap();
    assert!(n == 1 && reply[0] == 0x16, "a ServerHello record comes back: {reply:?}");
    drop(stream);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_and_bad_input_close_the_connection() {
    let refusing = ClientHelloListener::ja4_with(|hello, _| match hello.server_name().as_deref() {
        Some("blocked.example") => Err("a blocked server name".into()),
        _ => Ok(()),
    })
    .timeout(Duration::from_millis(300));
    let (server, der) = start("sockets", refusing).await;
    let connector = connector(Some(der));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let refused = connector.connect("blocked.example".try_into().unwrap(), tcp).await;
    assert!(refused.is_err(), "the callback refused the connection");
    for (case, bytes) in [
        ("a record of another type first", &b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00\x17\x03\x03\x00\x01\x00"[..]),
        ("a record over 18 KB", b"\x16\x03\x01\xff\xff"),
        ("a handshake that is not a ClientHello", b"\x16\x03\x01\x00\x04\x02\x00\x00\x00"),
        ("a ClientHello over 64 KB", b"\x16\x03\x01\x00\x04\x01\x01\x00\x00"),
        ("a truncated record, then silence", b"\x16\x03\x01\x00\x40\x01"),
    ] {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await.expect("closed in time");
        assert!(read.is_err() || rest.is_empty(), "{case}: closed without an answer, got {rest:?}");
    }
    server.stop().await;
}
