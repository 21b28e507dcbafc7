//! Per-endpoint options (Kestrel's ListenOptions): protocols, middleware
//! chains, endpoint defaults, Unix socket permissions, and host filtering.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use common::*;
use kite::middleware::{ConnectionError, ConnectionMiddleware, Next};
use kite::transport::Connection;
use kite::{Protocols, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Counts the connections it sees.
struct Counter(Arc<AtomicUsize>);

#[async_trait]
impl ConnectionMiddleware for Counter {
    async fn on_connection(&self, connection: Connection, next: Next) -> Result<(), ConnectionError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        next.run(connection).await
    }
}

/// The bytes a server sends after an HTTP/2 preface, to the close.
async fn answer_to_preface(addr: std::net::SocketAddr) -> Vec<u8> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await.unwrap();
    answer
}

#[tokio::test]
async fn each_endpoint_has_its_own_protocols_and_middleware() {
    let counted = Arc::new(AtomicUsize::new(0));
    let counter = Counter(Arc::clone(&counted));
    let server = start_with("sockets", ServerOptions::default(), move |builder| {
        builder
            .listen_with(([127, 0, 0, 1], 0), |listen| listen.protocols(Protocols::Http1).use_(counter))
            .listen_with(([127, 0, 0, 1], 0), |listen| listen.protocols(Protocols::Http2))
    })
    .await;
    let endpoints = server.addresses.clone();
    let addr = |i: usize| endpoints[i].trim_start_matches("http://").parse::<std::net::SocketAddr>().unwrap();

    // The first speaks HTTP/1.1 only: the preface gets HTTP_1_1_REQUIRED.
    let (response, _) = roundtrip(addr(0), b"GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
    assert_eq!(response.status, 200);
    let answer = answer_to_preface(addr(0)).await;
    assert_eq!(&answer[answer.len() - 4..], &[0, 0, 0, 0x0d], "HTTP_1_1_REQUIRED");
    // The second speaks HTTP/2 only: HTTP/1.1 gets PROTOCOL_ERROR.
    let mut stream = tokio::net::TcpStream::connect(addr(1)).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await.unwrap();
    assert_eq!(&answer[answer.len() - 4..], &[0, 0, 0, 1], "PROTOCOL_ERROR");
    // Only the first endpoint's connections went through its middleware.
    assert_eq!(counted.load(Ordering::SeqCst), 2);
    server.stop().await;
}

#[tokio::test]
async fn endpoint_defaults_apply_to_later_endpoints_and_the_last_call_wins() {
    let server = start_with("sockets", ServerOptions::default(), |builder| {
        builder
            .listen(([127, 0, 0, 1], 0))
            .configure_endpoint_defaults(|listen| listen.protocols(Protocols::Http2))
            .configure_endpoint_defaults(|listen| listen.protocols(Protocols::Http1))
            .listen(([127, 0, 0, 1], 0))
    })
    .await;
    let addr = |i: usize| server.addresses[i].trim_start_matches("http://").parse::<std::net::SocketAddr>().unwrap();
    // Before the defaults: both versions (the preface is served as h2c,
    // whose SETTINGS carry the limits).
    let mut stream = tokio::net::TcpStream::connect(addr(0)).await.unwrap();
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    let mut settings = [0u8; 9];
    tokio::time::timeout(WAIT, stream.read_exact(&mut settings)).await.unwrap().unwrap();
    assert_eq!(settings[3], 4, "a SETTINGS frame");
    assert!(settings[2] > 0, "h2's own SETTINGS, not the empty one before a GOAWAY");
    drop(stream);
    // After: the second call's HTTP/1.1 only.
    let after = answer_to_preface(addr(1)).await;
    assert_eq!(&after[after.len() - 4..], &[0, 0, 0, 0x0d]);
    server.stop().await;
}

#[tokio::test]
async fn a_unix_socket_gets_the_permissions_asked_for() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("kite-perm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kite.sock");
    let socket = path.clone();
    let server = start_with("sockets", ServerOptions::default(), move |builder| {
        builder.listen_address_with(kite::ListenAddress::Unix(socket), |listen| listen.permissions(0o660))
    })
    .await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn allowed_hosts_refuse_other_hosts_with_400() {
    for transport in transports() {
        let server = start_with(transport, ServerOptions::default(), |builder| {
            builder.allowed_hosts(["example.com", "*.contoso.com"])
        })
        .await;
        for (host, status) in [
            ("example.com", 200),
            ("EXAMPLE.COM:8080", 200),
            ("api.contoso.com", 200),
            ("contoso.com", 400),
            ("evil.com", 400),
        ] {
            let request = format!("GET /plaintext HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            let (response, _) = roundtrip(server.addr, request.as_bytes()).await;
            assert_eq!(response.status, status, "{transport}: {host}");
            if status == 400 {
                assert!(String::from_utf8_lossy(&response.body).contains("Invalid Hostname"));
            }
        }
        // An HTTP/1.0 request without Host passes (AllowEmptyHosts).
        let (response, _) = roundtrip(server.addr, b"GET /plaintext HTTP/1.0\r\n\r\n").await;
        assert_eq!(response.status, 200, "{transport}");
        server.stop().await;
    }
}

#[tokio::test]
async fn allowed_hosts_star_turns_filtering_off() {
    let server = start_with("sockets", ServerOptions::default(), |builder| builder.allowed_hosts(["*"])).await;
    let (response, _) =
        roundtrip(server.addr, b"GET /plaintext HTTP/1.1\r\nHost: anything\r\nConnection: close\r\n\r\n").await;
    assert_eq!(response.status, 200);
    server.stop().await;
}
