//! The `kite.*` instruments, read back through a Prometheus recorder
//! installed for this test binary alone.

mod common;

use common::*;
use kite::ServerOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn connections_rejections_and_tls_handshakes_are_measured() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only recorder of this binary");

    // A connection limit of one: the second connection is rejected.
    let mut options = ServerOptions::default();
    options.http.limits.max_concurrent_connections = Some(1);
    let server = start("sockets", options).await;
    let (_, held) = roundtrip(server.addr, b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let mut refused = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let _ = refused.write_all(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let mut nothing = Vec::new();
    let _ = tokio::time::timeout(WAIT, refused.read_to_end(&mut nothing)).await.expect("closed");
    let port = server.addr.port();
    let text = handle.render();
    let labels = format!("server_address=\"127.0.0.1\",server_port=\"{port}\",network_transport=\"tcp\"");
    assert!(text.contains(&format!("kite_rejected_connections{{{labels}}} 1")), "{text}");
    assert!(text.contains(&format!("kite_active_connections{{{labels}}} 1")), "{text}");
    drop(held);
    server.stop().await;

    // One TLS handshake, timed, and none left in progress.
    let (server, _) = start_https("sockets").await;
    if require_tool("curl") {
        let out = tokio::process::Command::new("curl")
            .args(["-sk", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("https://127.0.0.1:{}/plaintext", server.addr.port()))
            .output()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"200");
        let text = handle.render();
        assert!(text.contains("kite_tls_handshake_duration_count 1"), "{text}");
        assert!(text.contains("kite_active_tls_handshakes 0"), "{text}");
        // A failed handshake leaves none in progress and is not timed.
        let mut plain = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        plain.write_all(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
        let mut alert = Vec::new();
        let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut alert)).await.expect("closed");
        let text = handle.render();
        assert!(text.contains("kite_tls_handshake_duration_count 1"), "{text}");
        assert!(text.contains("kite_active_tls_handshakes 0"), "{text}");
    }
    server.stop().await;
}
