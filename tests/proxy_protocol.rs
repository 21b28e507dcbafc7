//! The PROXY protocol: HAProxy in front (v1 and v2, plain HTTP and TLS
//! passed through), curl's `--haproxy-protocol`, and hand-made headers for
//! every bad case, on each transport.

mod common;
#[path = "common/haproxy.rs"]
mod haproxy;

use std::net::SocketAddr;
use std::time::Duration;

use common::{start_with, TestServer, WAIT};
use haproxy::{free_port, from_127_0_0_2, Haproxy};
use kite::middleware::proxy_protocol::{ProxyMode, ProxyProtocol};
use kite::ServerOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(transport: &str, proxy: ProxyProtocol) -> TestServer {
    start_with(transport, ServerOptions::default(), move |builder| {
        builder.listen_with(([127, 0, 0, 1], 0), move |listen| listen.use_proxy_protocol(proxy))
    })
    .await
}

/// Sends `prefix`, then `GET /proxy`, and returns the body, or `None` when
/// the server closed without a response.
async fn via(addr: SocketAddr, prefix: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(prefix).await.unwrap();
    let _ = stream.write_all(b"GET /proxy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut raw)).await.expect("an answer or a close in time");
    let text = String::from_utf8_lossy(&raw).to_string();
    text.starts_with("HTTP/1.1 200").then(|| text.rsplit("\r\n\r\n").next().unwrap_or_default().to_string())
}

/// A v2 header: PROXY over TCP/IPv4 from `source` to `destination`, with
/// an authority TLV.
fn v2(command: u8, source: SocketAddr, destination: SocketAddr, authority: &str) -> Vec<u8> {
    let (SocketAddr::V4(s), SocketAddr::V4(d)) = (source, destination) else { panic!("IPv4 only") };
    let mut body = Vec::new();
    body.extend_from_slice(&s.ip().octets());
    body.extend_from_slice(&d.ip().octets());
    body.extend_from_slice(&s.port().to_be_bytes());
    body.extend_from_slice(&d.port().to_be_bytes());
    body.push(0x02);
    body.extend_from_slice(&(authority.len() as u16).to_be_bytes());
    body.extend_from_slice(authority.as_bytes());
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.push(0x20 | command);
    header.push(0x11);
    header.extend_from_slice(&(body.len() as u16).to_be_bytes());
    header.extend_from_slice(&body);
    header
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_and_v2_headers_replace_the_client_address() {
    for transport in common::transports() {
        let server = start(transport, ProxyProtocol::new(ProxyMode::Required)).await;
        let v1 = via(server.addr, b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n").await.expect("served");
        assert!(v1.starts_with("client=203.0.113.7:51000 proxy=127.0.0.1:"), "{transport}: {v1}");
        let header = v2(1, "198.51.100.9:40000".parse().unwrap(), "192.0.2.1:443".parse().unwrap(), "example.com");
        let second = via(server.addr, &header).await.expect("served");
        assert!(second.starts_with("client=198.51.100.9:40000 proxy=127.0.0.1:"), "{transport}: {second}");
        assert!(second.ends_with("authority=example.com"), "{transport}: {second}");
        // LOCAL (a health check from the proxy itself) keeps the real peer.
        let local = v2(0, "198.51.100.9:40000".parse().unwrap(), "192.0.2.1:443".parse().unwrap(), "x");
        let local = via(server.addr, &local).await.expect("served");
        assert!(local.starts_with("client=127.0.0.1:") && local.contains("proxy=-"), "{transport}: {local}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_mode_passes_a_connection_without_a_header() {
    let server = start("sockets", ProxyProtocol::new(ProxyMode::Optional)).await;
    let plain = via(server.addr, b"").await.expect("served without a header");
    assert!(plain.starts_with("client=127.0.0.1:") && plain.contains("proxy=-"), "{plain}");
    let proxied = via(server.addr, b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n").await.expect("served");
    assert!(proxied.starts_with("client=203.0.113.7:51000"), "{proxied}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_headers_close_the_connection() {
    for transport in common::transports() {
        let proxy = ProxyProtocol::new(ProxyMode::Required).timeout(Duration::from_millis(300));
        let server = start(transport, proxy).await;
        let mut oversized = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x02\x58".to_vec();
        oversized.resize(16 + 600, 0);
        for (case, prefix) in [
            ("no header where one is required", b"".to_vec()),
            ("a malformed v1 header", b"PROXY TCP4 not-an-address 192.0.2.1 1 2\r\n".to_vec()),
            ("a v1 header over 107 bytes", [&b"PROXY TCP4 "[..], &[b'1'; 120]].concat()),
            ("an unknown v2 version", b"\r\n\r\n\0\r\nQUIT\n\x91\x11\x00\x00".to_vec()),
            ("a v2 header over 536 bytes", oversized),
        ] {
            assert_eq!(via(server.addr, &prefix).await, None, "{transport}: {case}");
        }
        // A truncated header, then silence: closed at the timeout.
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x01").await.unwrap();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await.expect("closed at the timeout");
        assert!(closed.is_err() || rest.is_empty(), "{transport}: nothing but a close");
        // The connection after all that is served.
        assert!(via(server.addr, b"PROXY TCP4 203.0.113.7 192.0.2.1 1 2\r\n").await.is_some(), "{transport}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_from_an_untrusted_peer_closes_the_connection() {
    let proxy = ProxyProtocol::new(ProxyMode::Optional).trusted_proxies(["10.0.0.0/8"]).unwrap();
    let server = start("sockets", proxy).await;
    assert_eq!(via(server.addr, b"PROXY TCP4 203.0.113.7 192.0.2.1 1 2\r\n").await, None, "untrusted");
    assert!(via(server.addr, b"").await.is_some(), "no header from an untrusted peer passes in optional mode");
    let trusted = ProxyProtocol::new(ProxyMode::Required).trusted_proxies(["127.0.0.0/8"]).unwrap();
    let server2 = start("sockets", trusted).await;
    assert!(via(server2.addr, b"PROXY TCP4 203.0.113.7 192.0.2.1 1 2\r\n").await.is_some(), "trusted");
    server.stop().await;
    server2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_haproxy_protocol_v1_is_read() {
    if !common::require_tool("curl") {
        return;
    }
    let server = start("sockets", ProxyProtocol::new(ProxyMode::Required)).await;
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--haproxy-protocol"])
        .arg(server.url("/proxy"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let body = String::from_utf8_lossy(&out.stdout);
    // curl names its own addresses; the proxy feature shows the header was read.
    assert!(body.starts_with("client=127.0.0.1:") && !body.contains("proxy=-"), "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_in_front_shows_the_client_address_over_v1_and_v2() {
    for transport in common::transports() {
        let server = start(transport, ProxyProtocol::new(ProxyMode::Required)).await;
        for send in ["send-proxy", "send-proxy-v2"] {
            let front = free_port();
            let haproxy = match Haproxy::start(front, server.addr.port(), send).await {
                Ok(haproxy) => haproxy,
                Err(message) => {
                    common::missing(&message);
                    return;
                }
            };
            let mut stream = from_127_0_0_2(front).await;
            stream.write_all(b"GET /proxy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
            let mut raw = String::new();
            tokio::time::timeout(WAIT, stream.read_to_string(&mut raw)).await.unwrap().unwrap();
            assert!(raw.starts_with("HTTP/1.1 200"), "{transport} {send}: {raw}");
            assert!(raw.contains("client=127.0.0.2:"), "{transport} {send}: the client's address: {raw}");
            assert!(raw.contains("proxy=127.0.0.1:"), "{transport} {send}: {raw}");
            haproxy.stop().await;
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_passes_tls_through_after_a_v2_header() {
    let (certificate, der) = common::self_signed();
    let server = start_with("sockets", ServerOptions::default(), move |builder| {
        builder.listen_with(([127, 0, 0, 1], 0), move |listen| {
            listen
                .use_proxy_protocol(ProxyProtocol::new(ProxyMode::Required))
                .use_https(kite::tls::TlsOptions::new().certificate(certificate))
        })
    })
    .await;
    let front = free_port();
    let haproxy = match Haproxy::start(front, server.addr.port(), "send-proxy-v2").await {
        Ok(haproxy) => haproxy,
        Err(message) => {
            common::missing(&message);
            return;
        }
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = from_127_0_0_2(front).await;
    let mut tls = connector.connect("localhost".try_into().unwrap(), tcp).await.expect("TLS through haproxy");
    tls.write_all(b"GET /proxy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut raw = String::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_string(&mut raw)).await.unwrap();
    assert!(raw.contains("client=127.0.0.2:"), "{raw}");
    haproxy.stop().await;
    server.stop().await;
}
