//! permessage-deflate end to end, with a client written apart from Kite's
//! codec: frames made and read by hand, compressed and inflated with
//! flate2, over HTTP/1.1 on each transport, TLS, and HTTP/2 extended
//! CONNECT. The Autobahn cases 12.* and 13.* (crates/cli/tests) cover the
//! rest of RFC 7692.

mod common;
#[path = "common/h2_tunnel.rs"]
mod h2_tunnel;

use common::*;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use http::StatusCode;
use kite::ServerOptions;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Opens a WebSocket on HTTP/1.1 by hand, offering `extensions`; returns
/// the stream and the `Sec-WebSocket-Extensions` answered, if any.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, path: &str, extensions: &str) -> Option<String> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: {extensions}\r\n\r\n"
    );
    io.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(io.read_u8().await.expect("the handshake's answer"));
    }
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    response.parse(&head).unwrap();
    assert_eq!(response.code, Some(101));
    response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|h| String::from_utf8(h.value.to_vec()).unwrap())
}

/// Writes one masked client frame.
async fn write_frame<S: AsyncWrite + Unpin>(io: &mut S, opcode: u8, fin: bool, rsv1: bool, payload: &[u8]) {
    let mask = [0xa1, 0xb2, 0xc3, 0xd4];
    let mut frame = vec![opcode | if fin { 0x80 } else { 0 } | if rsv1 { 0x40 } else { 0 }];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n < 65536 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    io.write_all(&frame).await.unwrap();
}

/// Reads one server frame: (FIN, RSV1, opcode, payload); `None` once the
/// server has closed the stream.
async fn read_frame<S: AsyncRead + Unpin>(io: &mut S) -> Option<(bool, bool, u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    tokio::time::timeout(WAIT, io.read_exact(&mut head)).await.expect("a frame or the close").ok()?;
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let length = match head[1] & 0x7f {
        126 => io.read_u16().await.ok()? as usize,
        127 => io.read_u64().await.ok()? as usize,
        n => n as usize,
    };
    let mut payload = vec![0; length];
    io.read_exact(&mut payload).await.ok()?;
    Some((head[0] & 0x80 != 0, head[0] & 0x40 != 0, head[0] & 0x0f, payload))
}

/// A message compressed as RFC 7692 §7.2.1 says: sync flush, tail off.
fn deflate(compress: &mut Compress, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    compress.compress_vec(message, &mut out, FlushCompress::Sync).unwrap();
    out.truncate(out.len() - TAIL.len());
    out
}

fn inflate(decompress: &mut Decompress, payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&TAIL);
    let mut out = Vec::with_capacity(1 << 20);
    decompress.decompress_vec(&input, &mut out, FlushDecompress::Sync).unwrap();
    out
}

/// Sends compressed messages (whole, fragmented around a ping, empty)
/// and checks each echo comes back compressed and whole; `carried` says
/// whether the server keeps its context, which makes the second of two
/// equal messages smaller. With `client_no_context_takeover` agreed the
/// client starts each message afresh, as RFC 7692 §7.1.1.2 requires.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, context: &str, carried: bool) {
    exchange_with(io, context, carried, false).await
}

async fn exchange_with<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    context: &str,
    carried: bool,
    client_reset: bool,
) {
    let mut compress = Compress::new(Compression::default(), false);
    let mut deflate = |message: &[u8]| {
        if client_reset {
            compress.reset();
        }
        deflate(&mut compress, message)
    };
    let mut decompress = Decompress::new(false);
    let text = "Kite compresses WebSocket messages. ".repeat(3000);
    let mut sizes = Vec::new();
    for _ in 0..2 {
        write_frame(io, 0x1, true, true, &deflate(text.as_bytes())).await;
        let (fin, rsv1, opcode, payload) = read_frame(io).await.expect("the echo");
        assert!(fin && rsv1 && opcode == 0x1, "{context}: a compressed text frame");
        assert!(payload.len() < text.len() / 20, "{context}: {} bytes for {}", payload.len(), text.len());
        assert_eq!(inflate(&mut decompress, &payload), text.as_bytes(), "{context}");
        sizes.push(payload.len());
    }
    if carried {
        assert!(sizes[1] < sizes[0], "{context}: the second copy refers back to the first ({sizes:?})");
    } else {
        assert_eq!(sizes[1], sizes[0], "{context}: each message compressed afresh");
    }

    // A fragmented message, a ping between its frames.
    let binary: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let compressed = deflate(&binary);
    let (first, second) = compressed.split_at(compressed.len() / 3);
    write_frame(io, 0x2, false, true, first).await;
    write_frame(io, 0x9, true, false, b"ping").await;
    write_frame(io, 0x0, true, false, second).await;
    let pong = read_frame(io).await.expect("the pong");
    assert_eq!((pong.2, pong.3.as_slice()), (0xa, &b"ping"[..]), "{context}");
    let (_, rsv1, opcode, payload) = read_frame(io).await.expect("the echo");
    assert!(rsv1 && opcode == 0x2, "{context}");
    assert_eq!(inflate(&mut decompress, &payload), binary, "{context}: the fragmented message");

    // An empty message (RFC 7692 §7.2.3.6).
    write_frame(io, 0x2, true, true, &[0x00]).await;
    let (_, _, opcode, payload) = read_frame(io).await.expect("the echo");
    assert_eq!(opcode, 0x2);
    assert!(inflate(&mut decompress, &payload).is_empty(), "{context}: the empty message");

    write_frame(io, 0x8, true, false, &1000u16.to_be_bytes()).await;
    let (_, _, opcode, payload) = read_frame(io).await.expect("the close");
    assert_eq!((opcode, payload.as_slice()), (0x8, &1000u16.to_be_bytes()[..]), "{context}");
}

#[tokio::test]
async fn compressed_messages_over_http1_on_every_transport() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let agreed = handshake(&mut tcp, "/ws", "permessage-deflate; client_max_window_bits").await;
        assert_eq!(agreed.as_deref(), Some("permessage-deflate; server_no_context_takeover"), "{transport}");
        exchange(&mut tcp, transport, false).await;
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let agreed = handshake(&mut tcp, "/ws?context", "permessage-deflate; client_max_window_bits").await;
        assert_eq!(agreed.as_deref(), Some("permessage-deflate"), "{transport}");
        exchange(&mut tcp, transport, true).await;
        server.stop().await;
    }
}

#[tokio::test]
async fn compressed_messages_over_tls() {
    let (server, certificate) = start_https("sockets").await;
    let mut tls = connect_tls(&server, certificate, b"http/1.1").await;
    let agreed = handshake(&mut tls, "/ws?context", "permessage-deflate").await;
    assert_eq!(agreed.as_deref(), Some("permessage-deflate"));
    exchange(&mut tls, "tls", true).await;
    server.stop().await;
}

#[tokio::test]
async fn compressed_messages_over_http2_extended_connect() {
    let extensions = [("sec-websocket-extensions", "permessage-deflate")];
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let (_client, response, mut stream) = h2_tunnel::open(tcp, &server.url(""), "/ws", &extensions).await;
        assert_eq!(response.status, StatusCode::OK, "{transport}");
        assert_eq!(
            response.headers["sec-websocket-extensions"], "permessage-deflate; server_no_context_takeover",
            "{transport}"
        );
        exchange(&mut stream, &format!("h2c on {transport}"), false).await;
        server.stop().await;
    }
    // HTTP/2 over TLS.
    let (server, certificate) = start_https("sockets").await;
    let tls = connect_tls(&server, certificate, b"h2").await;
    let origin = format!("https://localhost:{}", server.addr.port());
    let (_client, response, mut stream) = h2_tunnel::open(tls, &origin, "/ws?context", &extensions).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers["sec-websocket-extensions"], "permessage-deflate");
    exchange(&mut stream, "h2 over TLS", true).await;
    server.stop().await;
}

#[tokio::test]
async fn offers_parameters_and_refusals_are_negotiated() {
    let server = start("sockets", ServerOptions::default()).await;

    // The client asks the server to forget its context and use a 1 KiB
    // window (the server keeping its context otherwise): two equal
    // messages compress to the same bytes.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let offer = "permessage-deflate; server_no_context_takeover; server_max_window_bits=10";
    let agreed = handshake(&mut tcp, "/ws?context", offer).await;
    assert_eq!(agreed.as_deref(), Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=10"));
    let mut compress = Compress::new(Compression::default(), false);
    let text = "abcdefghij".repeat(500);
    let mut echoes = Vec::new();
    for _ in 0..2 {
        write_frame(&mut tcp, 0x1, true, true, &deflate(&mut compress, text.as_bytes())).await;
        echoes.push(read_frame(&mut tcp).await.unwrap().3);
    }
    assert_eq!(echoes[0], echoes[1], "no context carried over");
    let mut decompress = Decompress::new_with_window_bits(false, 10);
    assert_eq!(inflate(&mut decompress, &echoes[0]), text.as_bytes(), "inflates with a 1 KiB window");

    // The server's own settings: a 1 KiB window, and no context
    // takeover announced though the client did not ask.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let agreed = handshake(&mut tcp, "/ws?small", "permessage-deflate; client_no_context_takeover").await;
    assert_eq!(agreed.as_deref(), Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"));
    exchange_with(&mut tcp, "small window", false, true).await;

    // A malformed offer, an unknown extension, or compression turned off:
    // the WebSocket runs uncompressed.
    for (path, offer) in [
        ("/ws", "permessage-deflate; server_max_window_bits=16"),
        ("/ws", "permessage-deflate; no_such_parameter"),
        ("/ws", "x-webkit-deflate-frame"),
        ("/ws?plain", "permessage-deflate"),
    ] {
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        assert_eq!(handshake(&mut tcp, path, offer).await, None, "{path} {offer}");
        write_frame(&mut tcp, 0x1, true, false, b"plain").await;
        assert_eq!(read_frame(&mut tcp).await.unwrap(), (true, false, 0x1, b"plain".to_vec()));
    }
    server.stop().await;
}

/// The server fails the WebSocket: it closes the connection, perhaps
/// after a Close frame, and echoes nothing.
async fn expect_closed(tcp: &mut tokio::net::TcpStream, context: &str) {
    loop {
        match read_frame(tcp).await {
            None => return,
            Some((_, _, 0x8, _)) => continue,
            Some(other) => panic!("{context}: expected the close, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn broken_compressed_data_fails_only_its_connection() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        handshake(&mut tcp, "/ws", "permessage-deflate").await.expect("agreed");
        // 0xff starts a reserved block type: not deflate.
        write_frame(&mut tcp, 0x1, true, true, &[0xff; 40]).await;
        expect_closed(&mut tcp, transport).await;
        // RSV1 on a control frame or on a continuation: a protocol error.
        for (first, second) in [((0x9, true), None), ((0x1, true), Some((0x0, true)))] {
            let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
            handshake(&mut tcp, "/ws", "permessage-deflate").await.expect("agreed");
            write_frame(&mut tcp, first.0, second.is_none(), first.1, &[0x00]).await;
            if let Some((opcode, rsv1)) = second {
                write_frame(&mut tcp, opcode, true, rsv1, &[0x00]).await;
            }
            expect_closed(&mut tcp, transport).await;
        }
        // The server serves on.
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        handshake(&mut tcp, "/ws", "permessage-deflate").await.expect("agreed");
        exchange(&mut tcp, transport, false).await;
        server.stop().await;
    }
}
