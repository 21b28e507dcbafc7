//! Kestrel's defenses, each with a shortened limit so the test is quick:
//! slowloris, slow uploads and slow readers, header floods, the connection
//! limit, smuggling spellings, panics and disconnects.

mod common;

use std::time::Duration;

use common::*;
use kite::{MinDataRate, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Options with the data rates off, so that only the defense under test
/// acts.
fn quiet_options() -> ServerOptions {
    let mut options = ServerOptions::default();
    options.http.limits.min_request_body_data_rate = None;
    options.http.limits.min_response_data_rate = None;
    options
}

#[tokio::test]
async fn slowloris_is_cut_by_the_request_headers_timeout() {
    for transport in transports() {
        let mut options = quiet_options();
        options.http.limits.request_headers_timeout = Duration::from_millis(300);
        let server = start(transport, options).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let head = b"GET /plaintext HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        // One byte every 50 ms: the head would take 4 s.
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut sent = 0;
        for byte in head {
            tick.tick().await;
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            sent += 1;
        }
        assert!(sent < head.len(), "{transport}: the server stopped the trickle");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await.expect("closed");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408 Request Timeout"), "{transport}: {answer}");
        server.stop().await;
    }
}

#[tokio::test]
async fn an_upload_below_the_minimum_rate_gets_408() {
    for transport in transports() {
        let mut options = quiet_options();
        options.http.limits.min_request_body_data_rate = Some(MinDataRate::new(1_000, Duration::from_millis(1_100)));
        let server = start(transport, options).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(b"POST /count HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n").await.unwrap();
        // 10 bytes every 50 ms is 200 bytes/s, a fifth of the minimum.
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut answer = Vec::new();
        let started = tokio::time::Instant::now();
        loop {
            tick.tick().await;
            assert!(started.elapsed() < WAIT, "{transport}: the slow upload was never cut");
            if stream.write_all(&[b'x'; 10]).await.is_err() {
                break;
            }
            let mut chunk = [0u8; 512];
            match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => {
                    answer.extend_from_slice(&chunk[..n]);
                    break;
                }
                Err(_) => {}
            }
        }
        let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await.expect("closed");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408 Request Timeout"), "{transport}: {answer}");
        assert!(answer.contains("connection: close"), "{transport}: {answer}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_request_can_turn_its_body_rate_off() {
    let mut options = quiet_options();
    options.http.limits.min_request_body_data_rate = Some(MinDataRate::new(1_000_000, Duration::from_millis(1_100)));
    let server = start("sockets", options).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // `/relaxed` turns the rate off, then reads: 40 bytes over 1.6 s pass.
    stream.write_all(b"POST /relaxed HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\n").await.unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    for _ in 0..8 {
        tick.tick().await;
        stream.write_all(&[b'x'; 5]).await.unwrap();
    }
    let response = read_response(&mut stream, &mut Vec::new()).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"40");
    server.stop().await;
}

#[tokio::test]
async fn a_reader_too_slow_for_a_large_response_is_aborted() {
    for transport in transports() {
        let mut options = quiet_options();
        options.http.limits.min_response_data_rate = Some(MinDataRate::new(1_000_000, Duration::from_millis(1_100)));
        let server = start(transport, options).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(b"GET /forever HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
        // Read nothing: the server's writes stall, and past the grace
        // period the connection is aborted and the body dropped.
        tokio::time::timeout(WAIT, server.gate.cancelled.notified()).await.expect("the response was aborted");
        let mut sink = vec![0u8; 1 << 16];
        let drained = tokio::time::timeout(WAIT, async {
            loop {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(drained.is_ok(), "{transport}: the connection ends after what was buffered");
        server.stop().await;
    }
}

#[tokio::test]
async fn ten_thousand_headers_and_a_megabyte_header_line_get_431() {
    let server = start("sockets", quiet_options()).await;
    let many: String = (0..10_000).map(|i| format!("X-{i}: v\r\n")).collect();
    let (response, _) = roundtrip(server.addr, format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n").as_bytes()).await;
    assert_eq!(response.status, 431);
    let long = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Long: {}\r\n\r\n", "v".repeat(1 << 20));
    let (response, _) = roundtrip(server.addr, long.as_bytes()).await;
    assert_eq!(response.status, 431);
    server.stop().await;
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_and_the_rest_served() {
    for transport in transports() {
        let mut options = quiet_options();
        options.http.limits.max_concurrent_connections = Some(4);
        let server = start(transport, options).await;
        // Four connections hold the four places.
        let mut held = Vec::new();
        for _ in 0..4 {
            let (response, stream) = roundtrip(server.addr, b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n").await;
            assert_eq!(response.status, 200, "{transport}");
            held.push(stream);
        }
        // Four more, twice the limit in all, are closed without an answer.
        for _ in 0..4 {
            let mut stream = TcpStream::connect(server.addr).await.unwrap();
            let _ = stream.write_all(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n").await;
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await.expect("closed in time");
            assert!(answer.is_empty(), "{transport}: {}", String::from_utf8_lossy(&answer));
        }
        // The held ones are still served.
        for stream in &mut held {
            stream.write_all(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
            assert_eq!(read_response(stream, &mut Vec::new()).await.status, 200, "{transport}");
        }
        // One leaves; once the server has seen it go, a newcomer is served.
        let mut leaving = held.pop().unwrap();
        leaving.write_all(b"GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, leaving.read_to_end(&mut rest)).await.unwrap().unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mut stream = TcpStream::connect(server.addr).await.unwrap();
            let _ = stream.write_all(b"GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
            if answer.starts_with(b"HTTP/1.1 200") {
                break;
            }
            // The server closes its side before its task ends and frees
            // the place; a refused attempt is retried until then.
            assert!(tokio::time::Instant::now() < deadline, "{transport}: the place was never freed");
            tokio::task::yield_now().await;
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn odd_transfer_encodings_are_refused_and_the_connection_closed() {
    let server = start("sockets", quiet_options()).await;
    for odd in ["Chunked", "chunked, chunked", "xchunked", " chunked", "chunked\t"] {
        let request = format!("POST /count HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {odd}\r\n\r\n0\r\n\r\n");
        let (response, mut stream) = roundtrip(server.addr, request.as_bytes()).await;
        assert_eq!(response.status, 400, "{odd:?}");
        assert_eq!(response.header("connection"), Some("close"), "{odd:?}");
        assert_closed(&mut stream).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_mid_body_or_mid_response_is_seen_by_the_app() {
    for transport in transports() {
        let server = start(transport, quiet_options()).await;
        // Mid-body: the app's body read fails.
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(b"POST /count HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nhalf").await.unwrap();
        drop(stream);
        tokio::time::timeout(WAIT, server.gate.body_failed.notified()).await.expect("the app saw the body fail");
        let seen = server.gate.body_error.lock().unwrap().take().unwrap();
        assert!(seen.contains("Unexpected end of request content"), "{transport}: {seen}");
        // Mid-response: the response body is dropped.
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(b"GET /forever HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
        let mut some = [0u8; 1024];
        assert!(stream.read(&mut some).await.unwrap() > 0);
        drop(stream);
        tokio::time::timeout(WAIT, server.gate.cancelled.notified()).await.expect("the response body was dropped");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_grace_period_of_a_second_or_less_fails_at_startup() {
    let mut options = ServerOptions::default();
    options.http.limits.min_request_body_data_rate = Some(MinDataRate::new(240, Duration::from_secs(1)));
    let error = builder_on("sockets").urls(["http://127.0.0.1:0"]).options(options).bind().await.unwrap_err();
    assert!(error.to_string().contains("MinRequestBodyDataRate.GracePeriod"), "{error}");
}

#[tokio::test]
async fn an_http2_upload_below_the_minimum_rate_gets_408_on_its_stream() {
    let mut options = quiet_options();
    options.http.limits.min_request_body_data_rate = Some(MinDataRate::new(1_000, Duration::from_millis(1_100)));
    let server = start("sockets", options).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let request = http::Request::post(server.url("/count")).body(()).unwrap();
    let (response, mut upload) = client.send_request(request, false).unwrap();
    let trickle = tokio::spawn(async move {
        // 10 bytes every 50 ms: 200 bytes/s, a fifth of the minimum.
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        for _ in 0..200 {
            tick.tick().await;
            if upload.send_data(bytes::Bytes::from_static(&[b'x'; 10]), false).is_err() {
                return;
            }
        }
    });
    let response = tokio::time::timeout(WAIT, response).await.expect("answered in time").unwrap();
    assert_eq!(response.status(), http::StatusCode::REQUEST_TIMEOUT);
    trickle.abort();
    // The connection serves on.
    let request = http::Request::get(server.url("/plaintext")).body(()).unwrap();
    let (response, _) = client.ready().await.unwrap().send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), http::StatusCode::OK);
    server.stop().await;
}
