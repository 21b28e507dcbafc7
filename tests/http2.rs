//! HTTP/2 end to end: hyper's HTTP/2 client and curl, over h2c and TLS.

mod common;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use common::*;
use http::{HeaderMap, Request, StatusCode, Version};
use http_body::Frame;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kite::{Protocols, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A prior-knowledge HTTP/2 client connection.
async fn h2c<B>(addr: std::net::SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.expect("h2c handshake");
    tokio::spawn(connection);
    sender
}

#[tokio::test]
async fn h2c_by_prior_knowledge_and_a_hundred_concurrent_streams() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let mut sender = h2c::<Empty<Bytes>>(server.addr).await;
        let response =
            sender.send_request(Request::get(server.url("/plaintext")).body(Empty::new()).unwrap()).await.unwrap();
        assert_eq!(response.version(), Version::HTTP_2);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["server"], "kite");
        assert!(response.headers().get("connection").is_none());
        assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "Hello, World!");

        let requests = (0..100).map(|_| {
            let mut sender = sender.clone();
            let uri = server.url("/remote");
            async move {
                let response = sender.send_request(Request::get(uri).body(Empty::new()).unwrap()).await.unwrap();
                response.into_body().collect().await.unwrap().to_bytes()
            }
        });
        let bodies = tokio::time::timeout(WAIT, futures_join_all(requests)).await.expect("100 streams in time");
        assert_eq!(bodies.len(), 100);
        assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{transport}: all on one connection");
        server.stop().await;
    }
}

/// Runs futures concurrently on this task (no extra dependency).
async fn futures_join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    let mut handles: Vec<_> = handles.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, out) in handles.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *out = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("finished")).collect()
}

/// A request body of two chunks and a trailer.
struct WithTrailers {
    step: u8,
}

impl http_body::Body for WithTrailers {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.step += 1;
        Poll::Ready(match self.step {
            1 => Some(Ok(Frame::data(Bytes::from_static(b"hello ")))),
            2 => Some(Ok(Frame::data(Bytes::from_static(b"trailers")))),
            3 => {
                let mut trailers = HeaderMap::new();
                trailers.insert("x-checksum", "42".parse().unwrap());
                Some(Ok(Frame::trailers(trailers)))
            }
            _ => None,
        })
    }
}

#[tokio::test]
async fn trailers_flow_both_ways() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let mut sender = h2c::<WithTrailers>(server.addr).await;
        let request = Request::post(server.url("/echo")).body(WithTrailers { step: 0 }).unwrap();
        let response = sender.send_request(request).await.unwrap();
        let collected = response.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned().expect("response trailers");
        assert_eq!(trailers["x-checksum"], "42", "{transport}");
        assert_eq!(collected.to_bytes(), "hello trailers");
        server.stop().await;
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_a_stream_in_flight() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let mut sender = h2c::<Empty<Bytes>>(server.addr).await;
        let uri = server.url("/slow");
        let in_flight = tokio::spawn(async move {
            let response = sender.send_request(Request::get(uri).body(Empty::new()).unwrap()).await.unwrap();
            response.into_body().collect().await.unwrap().to_bytes()
        });
        tokio::time::timeout(WAIT, server.gate.entered.notified()).await.expect("the stream reached the app");
        server.shutdown.shutdown();
        server.gate.release.notify_one();
        let body = tokio::time::timeout(WAIT, in_flight).await.unwrap().unwrap();
        assert_eq!(body, "finished");
        tokio::time::timeout(WAIT, server.done).await.expect("server finished").unwrap().unwrap();
    }
}

#[tokio::test]
async fn an_http1_only_endpoint_answers_the_preface_with_goaway_http_1_1_required() {
    let mut options = ServerOptions::default();
    options.http.protocols = Protocols::Http1;
    let server = start("sockets", options).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    // SETTINGS, then GOAWAY whose error code is HTTP_1_1_REQUIRED (0xd).
    assert_eq!(&answer[..9], &[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    assert_eq!(answer[12], 7, "a GOAWAY frame");
    assert_eq!(&answer[answer.len() - 4..], &[0, 0, 0, 0x0d]);
    server.stop().await;
}

#[tokio::test]
async fn curl_speaks_http2_over_tls_and_by_prior_knowledge() {
    if !require_tool("curl") {
        return;
    }
    let server = start("sockets", ServerOptions::default()).await;
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version}"])
        .arg(server.url("/plaintext"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"2");
    server.stop().await;

    let (server, _) = start_https("sockets").await;
    let port = server.addr.port();
    let out = tokio::process::Command::new("curl")
        .args(["-sSk", "--max-time", "10", "--http2", "--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["-o", "/dev/null", "-w", "%{http_version}"])
        .arg(format!("https://localhost:{port}/plaintext"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"2", "ALPN chose h2");
    server.stop().await;
}

/// A prior-knowledge connection of the h2 crate's own client.
async fn h2_client(addr: std::net::SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn the_application_resets_a_stream_before_and_during_its_response() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let mut client = h2_client(server.addr).await;

        let request = Request::get(server.url("/reset?code=7")).body(()).unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        let error = tokio::time::timeout(WAIT, response).await.unwrap().expect_err("reset before the head");
        assert_eq!(error.reason(), Some(h2::Reason::REFUSED_STREAM), "{transport}: {error}");

        let request = Request::get(server.url("/reset-mid-body")).body(()).unwrap();
        let (response, _) = client.clone().ready().await.unwrap().send_request(request, true).unwrap();
        let response = tokio::time::timeout(WAIT, response).await.unwrap().expect("the head was sent");
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        assert_eq!(body.data().await.unwrap().unwrap(), "partial");
        let error = tokio::time::timeout(WAIT, body.data()).await.unwrap().unwrap().expect_err("reset mid-body");
        assert_eq!(error.reason(), Some(h2::Reason::CANCEL), "{transport}: {error}");

        // The connection goes on serving other streams.
        let request = Request::get(server.url("/plaintext")).body(()).unwrap();
        let (response, _) = client.ready().await.unwrap().send_request(request, true).unwrap();
        assert_eq!(tokio::time::timeout(WAIT, response).await.unwrap().unwrap().status(), StatusCode::OK);
        server.stop().await;
    }
}

#[tokio::test]
async fn a_client_reset_ends_the_request_body_with_an_error_and_cancels_a_waiting_request() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let mut client = h2_client(server.addr).await;

        let request = Request::post(server.url("/count")).body(()).unwrap();
        let (_response, mut upload) = client.send_request(request, false).unwrap();
        upload.send_data(Bytes::from_static(b"half a body"), false).unwrap();
        upload.send_reset(h2::Reason::CANCEL);
        tokio::time::timeout(WAIT, server.gate.body_failed.notified()).await.expect("the app saw the reset");
        let seen = server.gate.body_error.lock().unwrap().take().unwrap();
        assert_eq!(seen, "the client reset the stream with error code 0x8", "{transport}");

        // A request the app holds is dropped when the client resets it.
        let request = Request::get(server.url("/slow")).body(()).unwrap();
        let (_response, mut stream) = client.ready().await.unwrap().send_request(request, true).unwrap();
        tokio::time::timeout(WAIT, server.gate.entered.notified()).await.expect("the app got the request");
        stream.send_reset(h2::Reason::CANCEL);
        tokio::time::timeout(WAIT, server.gate.cancelled.notified()).await.expect("the request was cancelled");
        server.stop().await;
    }
}

#[tokio::test]
async fn http1_requests_carry_no_reset_feature() {
    let server = start("sockets", ServerOptions::default()).await;
    let (response, _) = roundtrip(server.addr, b"GET /reset HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(response.body, b"no reset on this protocol");
    server.stop().await;
}

#[tokio::test]
async fn nghttp_fetches_over_h2c_and_tls() {
    if !require_tool("nghttp") {
        return;
    }
    let server = start("sockets", ServerOptions::default()).await;
    let out = tokio::process::Command::new("nghttp")
        .args(["-n", "-v", "-t", "10"])
        .arg(server.url("/plaintext"))
        .output()
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{log}{}", String::from_utf8_lossy(&out.stderr));
    assert!(log.contains(":status: 200"), "{log}");
    assert!(log.contains("server: kite"), "{log}");
    server.stop().await;

    let (server, _) = start_https("sockets").await;
    let out = tokio::process::Command::new("nghttp")
        .args(["-n", "-v", "-t", "10"])
        .arg(format!("https://127.0.0.1:{}/plaintext", server.addr.port()))
        .output()
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{log}{}", String::from_utf8_lossy(&out.stderr));
    assert!(log.contains("negotiated protocol: h2"), "{log}");
    assert!(log.contains(":status: 200"), "{log}");
    server.stop().await;
}

#[tokio::test]
async fn keep_alive_pings_keep_an_idle_answering_client_connected() {
    let mut options = ServerOptions::default();
    options.http.http2.keep_alive_ping_delay = Some(std::time::Duration::from_millis(100));
    options.http.http2.keep_alive_ping_timeout = std::time::Duration::from_millis(200);
    let server = start("sockets", options).await;
    let mut client = h2_client(server.addr).await;
    let request = Request::get(server.url("/plaintext")).body(()).unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), StatusCode::OK);
    // Several ping rounds pass; h2's client answers each, so the
    // connection stays open.
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(100));
    for _ in 0..8 {
        ticks.tick().await;
    }
    let request = Request::get(server.url("/plaintext")).body(()).unwrap();
    let (response, _) = client.ready().await.expect("still connected").send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), StatusCode::OK);
    server.stop().await;
}

/// The answer an HTTP/2-only connection gives a client that does not start
/// with the preface: SETTINGS, then GOAWAY(PROTOCOL_ERROR), then close.
fn assert_goaway_protocol_error(answer: &[u8]) {
    assert!(answer.len() >= 26, "{answer:?}");
    assert_eq!(&answer[..9], &[0, 0, 0, 4, 0, 0, 0, 0, 0], "SETTINGS first");
    assert_eq!(answer[12], 7, "a GOAWAY frame");
    assert_eq!(&answer[answer.len() - 4..], &[0, 0, 0, 1], "PROTOCOL_ERROR");
    assert!(!String::from_utf8_lossy(answer).contains("HTTP/1.1"), "never an HTTP/1.1 answer");
}

#[tokio::test]
async fn an_http2_only_connection_answers_http1_with_goaway_protocol_error() {
    // Prior knowledge in cleartext.
    let mut options = ServerOptions::default();
    options.http.protocols = Protocols::Http2;
    let server = start("sockets", options).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    assert_goaway_protocol_error(&answer);
    server.stop().await;

    // ALPN h2 over TLS.
    let (server, certificate) = start_https("sockets").await;
    let mut tls = connect_tls(&server, certificate, b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut answer)).await.unwrap();
    assert_goaway_protocol_error(&answer);
    server.stop().await;
}

#[tokio::test]
async fn a_panicking_handler_gets_500_on_its_stream_only() {
    let server = start("sockets", ServerOptions::default()).await;
    let mut client = h2_client(server.addr).await;
    let (response, _) = client.send_request(Request::get(server.url("/panic")).body(()).unwrap(), true).unwrap();
    assert_eq!(response.await.unwrap().status(), StatusCode::INTERNAL_SERVER_ERROR);
    let request = Request::get(server.url("/plaintext")).body(()).unwrap();
    let (response, _) = client.ready().await.unwrap().send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), StatusCode::OK, "the connection goes on");
    server.stop().await;
}
