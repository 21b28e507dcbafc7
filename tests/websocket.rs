//! Opaque upgrades and WebSockets end to end: tokio-tungstenite over
//! HTTP/1.1 and TLS, h2's client over HTTP/2 extended CONNECT, and the
//! upgraded-connection limit.

mod common;
#[path = "common/h2_tunnel.rs"]
mod h2_tunnel;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use kite::ServerOptions;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
use tokio_tungstenite::WebSocketStream;

/// Sends text, binary and a ping, and checks each comes back; then closes
/// with a code and sees the close answered.
async fn exercise<S>(socket: &mut WebSocketStream<S>, context: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    socket.send(Message::text("hello")).await.unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap(), Message::text("hello"), "{context}");
    let binary = Message::binary(vec![0u8, 1, 2, 255]);
    socket.send(binary.clone()).await.unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap(), binary, "{context}");
    socket.send(Message::Ping(Bytes::from_static(b"are you there"))).await.unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap(), Message::Pong(Bytes::from_static(b"are you there")));
    let big = Message::text("x".repeat(200_000));
    socket.send(big.clone()).await.unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap(), big, "{context}: a message over many frames and reads");
    socket.close(Some(CloseFrame { code: CloseCode::Away, reason: "bye".into() })).await.unwrap();
    match tokio::time::timeout(WAIT, socket.next()).await.expect("close answered") {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away, "{context}"),
        other => panic!("{context}: expected the close echoed, got {other:?}"),
    }
}

#[tokio::test]
async fn websocket_echo_over_http1_on_every_transport() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let url = format!("ws://{}/ws?protocols", server.addr);
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert("sec-websocket-protocol", "other, chat".parse().unwrap());
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let (mut socket, response) = tokio_tungstenite::client_async(request, tcp).await.expect("handshake");
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
        exercise(&mut socket, transport).await;
        server.stop().await;
    }
}

#[tokio::test]
async fn websocket_handshakes_that_fail_get_their_status() {
    let server = start("sockets", ServerOptions::default()).await;
    let (response, _) = roundtrip(server.addr, b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(response.status, 426, "not a WebSocket request");
    assert_eq!(response.header("sec-websocket-version"), Some("13"));

    let old = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    assert_eq!(roundtrip(server.addr, old).await.0.status, 426, "version 8");

    let bad_key = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n";
    assert_eq!(roundtrip(server.addr, bad_key).await.0.status, 400, "bad key");

    let mut request = format!("ws://{}/ws?origin", server.addr).into_client_request().unwrap();
    request.headers_mut().insert("origin", "https://evil.example".parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    match tokio_tungstenite::client_async(request, tcp).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("the origin policy refuses: {other:?}"),
    }
    let mut request = format!("ws://{}/ws?origin", server.addr).into_client_request().unwrap();
    request.headers_mut().insert("origin", "https://good.example".parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio_tungstenite::client_async(request, tcp).await.expect("the good origin is allowed");
    server.stop().await;
}

#[tokio::test]
async fn an_opaque_upgrade_hands_over_the_bytes_sent_with_the_head() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(
            b"GET /raw-upgrade HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\nearly bytes|",
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        let response = read_head_response(&mut tcp, &mut buf).await;
        assert_eq!(response.status, 101, "{transport}");
        assert_eq!(response.header("upgrade"), Some("echo"));
        assert!(response.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("upgrade")));
        tcp.write_all(b"later bytes").await.unwrap();
        let expected = b"early bytes|later bytes";
        while buf.len() < expected.len() {
            let mut chunk = [0u8; 64];
            let n = tokio::time::timeout(WAIT, tcp.read(&mut chunk)).await.unwrap().unwrap();
            assert!(n > 0, "{transport}: closed early after {:?}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(&buf[..], expected, "{transport}");
        server.stop().await;
    }
}

#[tokio::test]
async fn the_upgraded_connection_limit_refuses_the_excess_with_503() {
    let mut options = ServerOptions::default();
    options.http.limits.max_concurrent_upgraded_connections = Some(1);
    let server = start("sockets", options).await;
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        tokio_tungstenite::client_async(format!("ws://{}/ws", server.addr), tcp).await
    };
    let (mut first, _) = connect().await.expect("the first fits");
    first.send(Message::text("one")).await.unwrap();
    assert_eq!(first.next().await.unwrap().unwrap(), Message::text("one"));
    match connect().await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("the second is over the limit: {other:?}"),
    }
    // Ordinary requests are not counted.
    let (response, _) = roundtrip(server.addr, b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(response.status, 200);
    // Closing the first frees its slot, before the server's close reaches
    // the client.
    first.close(None).await.unwrap();
    while let Some(Ok(_)) = tokio::time::timeout(WAIT, first.next()).await.expect("the server closes") {}
    connect().await.expect("the freed slot takes a new WebSocket");
    server.stop().await;
}

#[tokio::test]
async fn websocket_over_tls() {
    let (server, certificate) = start_https("sockets").await;
    let tls = connect_tls(&server, certificate, b"http/1.1").await;
    let url = format!("wss://localhost:{}/ws", server.addr.port());
    let (mut socket, _) = tokio_tungstenite::client_async(url, tls).await.expect("WebSocket handshake over TLS");
    exercise(&mut socket, "tls").await;
    server.stop().await;
}

#[tokio::test]
async fn websocket_over_http2_extended_connect() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let (client, response, stream) = h2_tunnel::open(tcp, &server.url(""), "/ws", &[]).await;
        assert_eq!(response.status, StatusCode::OK, "{transport}");
        let mut socket = WebSocketStream::from_raw_socket(stream, Role::Client, None).await;
        exercise(&mut socket, transport).await;

        // The connection serves ordinary streams beside the WebSocket.
        let request = http::Request::get(server.url("/plaintext")).body(()).unwrap();
        let (response, _) = client.ready().await.unwrap().send_request(request, true).unwrap();
        assert_eq!(response.await.unwrap().status(), StatusCode::OK);
        server.stop().await;
    }
}

#[tokio::test]
async fn a_101_for_a_request_that_cannot_upgrade_becomes_500() {
    let server = start("sockets", ServerOptions::default()).await;
    // No `Connection: upgrade`; and an upgrade request with a body.
    let (response, _) = roundtrip(server.addr, b"GET /raw-upgrade HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\n\r\n").await;
    assert_eq!(response.status, 500);
    let with_body =
        b"POST /raw-upgrade HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\nContent-Length: 2\r\n\r\nhi";
    assert_eq!(roundtrip(server.addr, with_body).await.0.status, 500);
    server.stop().await;
}

#[tokio::test]
async fn an_upgraded_connection_leaves_the_connection_count() {
    let mut options = ServerOptions::default();
    options.http.limits.max_concurrent_connections = Some(1);
    let server = start("sockets", options).await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut socket, _) = tokio_tungstenite::client_async(format!("ws://{}/ws", server.addr), tcp).await.unwrap();
    // The WebSocket counts as upgraded, not as one of the one connection
    // allowed: a plain request gets in beside it. The HTTP side lets go of
    // its place just after the 101, so retry a refused attempt, bounded.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let _ = stream.write_all(b"GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
        if answer.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the upgraded connection still held the only place");
        tokio::task::yield_now().await;
    }
    socket.send(Message::text("still here")).await.unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap(), Message::text("still here"));
    server.stop().await;
}
