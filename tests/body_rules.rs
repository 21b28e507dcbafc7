//! The body rules hold for a handler that streams the request body back
//! (its response is ready before the body is read): `100 Continue` first,
//! `413` for a declared length over the limit, the body data rate while the
//! response streams; and HTTP/1.x framing that is refused.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kite::{MinDataRate, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// MinRequestBodyDataRate of 1,000 B/s after the shortest grace (1.1 s).
fn strict_body_rate() -> ServerOptions {
    let mut options = ServerOptions::default();
    options.http.limits.min_request_body_data_rate = Some(MinDataRate::new(1_000, Duration::from_millis(1_100)));
    options
}

/// Reads until `buf` holds `len` bytes, or fails after [`WAIT`].
async fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    tokio::time::timeout(WAIT, stream.read_exact(&mut buf)).await.expect("bytes in time").expect("read");
    buf
}

#[tokio::test]
async fn a_streaming_handler_sends_100_continue_before_its_response() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            .await
            .unwrap();
        // Nothing of the body is sent before the interim response.
        let interim = read_exactly(&mut stream, 25).await;
        assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n", "{transport}");
        stream.write_all(b"hello").await.unwrap();
        let mut buf = Vec::new();
        let response = read_response(&mut stream, &mut buf).await;
        assert_eq!(response.status, 200, "{transport}");
        assert_eq!(response.body, b"hello", "{transport}");
        assert_eq!(response.header("connection"), None, "{transport}: the connection stays open");
        // And it is reused.
        stream.write_all(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
        assert_eq!(read_response(&mut stream, &mut buf).await.body, b"Hello, World!", "{transport}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_declared_length_over_the_limit_gets_413_from_a_streaming_handler() {
    for transport in transports() {
        let mut options = ServerOptions::default();
        options.http.limits.max_request_body_size = Some(10);
        let server = start(transport, options).await;
        for expect in ["", "Expect: 100-continue\r\n"] {
            let request = format!("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n{expect}\r\n");
            let (response, mut stream) = roundtrip(server.addr, request.as_bytes()).await;
            assert_eq!(response.status, 413, "{transport} {expect:?}: no 100 Continue, no 200 first");
            assert_eq!(response.header("connection"), Some("close"), "{transport}");
            assert_closed(&mut stream).await;
        }
        // Within the limit, the echo answers.
        let (response, _) =
            roundtrip(server.addr, b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789").await;
        assert_eq!((response.status, &response.body[..]), (200, &b"0123456789"[..]), "{transport}");

        // HTTP/2: the same 413, on its stream.
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
        tokio::spawn(connection);
        for (body, status) in [("0123456789x", StatusCode::PAYLOAD_TOO_LARGE), ("0123456789", StatusCode::OK)] {
            let request = Request::post(server.url("/echo")).body(Full::new(Bytes::from(body))).unwrap();
            let response = tokio::time::timeout(WAIT, sender.send_request(request)).await.unwrap().unwrap();
            assert_eq!(response.status(), status, "{transport} h2c {body}");
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let expected = if status == StatusCode::OK { body } else { "" };
            assert_eq!(bytes, expected, "{transport} h2c");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn a_slow_upload_to_a_streaming_handler_is_cut_off() {
    for transport in transports() {
        let server = start(transport, strict_body_rate()).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n").await.unwrap();
        // 10 bytes every 100 ms: 100 B/s, a tenth of the minimum. Sending
        // all of it would take 10 s; the server must end it long before.
        let started = Instant::now();
        let mut echoed = Vec::new();
        let mut closed = false;
        for _ in 0..100 {
            if stream.write_all(b"0123456789").await.is_err() {
                closed = true;
                break;
            }
            // Read the echo for the rest of this 100 ms.
            let next = tokio::time::Instant::now() + Duration::from_millis(100);
            let mut chunk = [0u8; 4096];
            while let Ok(read) = tokio::time::timeout_at(next, stream.read(&mut chunk)).await {
                match read {
                    Ok(0) | Err(_) => closed = true,
                    Ok(n) => echoed.extend_from_slice(&chunk[..n]),
                }
                if closed {
                    break;
                }
            }
            if closed {
                break;
            }
        }
        assert!(closed, "{transport}: a 100 B/s upload outlived a 1,000 B/s minimum");
        assert!(started.elapsed() < Duration::from_secs(6), "{transport}: cut off after {:?}", started.elapsed());
        // The response had started streaming: its head, then the echo.
        assert!(echoed.starts_with(b"HTTP/1.1 200 OK\r\n"), "{transport}: {:?}", String::from_utf8_lossy(&echoed));
        server.stop().await;
    }
}

#[tokio::test]
async fn a_slow_upload_gets_408_while_the_head_waits() {
    for transport in transports() {
        let server = start(transport, strict_body_rate()).await;
        // Expect: 100-continue, then nothing: the echo has no first frame
        // to send, so its head is still held when the rate cuts in.
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_exactly(&mut stream, 25).await, b"HTTP/1.1 100 Continue\r\n\r\n", "{transport}");
        let mut buf = Vec::new();
        let response = read_response(&mut stream, &mut buf).await;
        assert_eq!(response.status, 408, "{transport}");
        assert_eq!(response.header("connection"), Some("close"), "{transport}");
        server.stop().await;
    }
}

#[tokio::test]
async fn transfer_encoding_on_http_1_0_and_bare_line_feeds_are_refused() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        for request in [
            &b"POST /ignore HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
            b"POST /ignore HTTP/1.0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST /ignore HTTP/1.1\r\nHost: a\r\nX: y\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET /plaintext HTTP/1.1\nHost: a\n\n",
        ] {
            let shown = String::from_utf8_lossy(request);
            let (response, mut stream) = roundtrip(server.addr, request).await;
            assert_eq!(response.status, 400, "{transport}: {shown:?}");
            assert_eq!(response.header("connection"), Some("close"), "{transport}: {shown:?}");
            assert_closed(&mut stream).await;
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn an_http2_upload_that_never_comes_gets_408_while_the_head_waits() {
    // A body that sends nothing: the echo has no first frame, so its head
    // is still held when the rate cuts in, on h2c and h2 over TLS.
    let silent = || {
        http_body_util::StreamBody::new(futures_util::stream::pending::<Result<http_body::Frame<Bytes>, BoxError>>())
    };
    for transport in transports() {
        let plain = start(transport, strict_body_rate()).await;
        let tcp = TcpStream::connect(plain.addr).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
        tokio::spawn(connection);
        let request = Request::post(plain.url("/echo")).body(silent()).unwrap();
        let response = tokio::time::timeout(WAIT, sender.send_request(request)).await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT, "{transport} h2c");
        plain.stop().await;

        let (tls, certificate) = start_https_with(transport, strict_body_rate()).await;
        let stream = connect_tls(&tls, certificate, b"h2").await;
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        let uri = format!("https://localhost:{}/echo", tls.addr.port());
        let request = Request::post(uri).body(silent()).unwrap();
        let response = tokio::time::timeout(WAIT, sender.send_request(request)).await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT, "{transport} h2 over TLS");
        tls.stop().await;
    }
}
