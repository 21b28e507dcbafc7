//! HTTP/1.1 end to end: real sockets, hyper's client and raw clients.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kite::ServerOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn hyper_client<B>() -> Client<hyper_util::client::legacy::connect::HttpConnector, B>
where
    B: http_body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

#[tokio::test]
async fn hyper_client_reuses_the_connection() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let client = hyper_client::<Full<Bytes>>();
        let mut remotes = Vec::new();
        for _ in 0..3 {
            let response = client.get(server.url("/remote").parse().unwrap()).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["server"], "kite");
            assert!(response.headers().contains_key("date"));
            remotes.push(response.into_body().collect().await.unwrap().to_bytes());
        }
        assert_eq!(remotes[0], remotes[1], "{transport}: the second request used a new connection");
        assert_eq!(remotes[1], remotes[2]);
        server.stop().await;
    }
}

#[tokio::test]
async fn three_pipelined_requests_in_one_write() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(
                b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n\
                  POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
                  GET /stream HTTP/1.1\r\nHost: a\r\n\r\n",
            )
            .await
            .unwrap();
        let mut buf = Vec::new();
        let first = read_response(&mut stream, &mut buf).await;
        let second = read_response(&mut stream, &mut buf).await;
        let third = read_response(&mut stream, &mut buf).await;
        assert_eq!(first.body, b"Hello, World!");
        assert_eq!(second.body, b"hello");
        assert_eq!(third.header("transfer-encoding"), Some("chunked"));
        assert_eq!(third.body, b"chunk\nchunk\nchunk\n");
        assert!(buf.is_empty());
        server.stop().await;
    }
}

/// A 10 MB body of unknown length, so hyper's client sends it chunked.
struct Upload {
    left: usize,
}

const UPLOAD_CHUNK: usize = 64 * 1024;
const UPLOAD_SIZE: usize = 10 * 1024 * 1024;

fn upload_byte(i: usize) -> u8 {
    (i * 31 % 251) as u8
}

impl http_body::Body for Upload {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let start = UPLOAD_SIZE - self.left;
        let n = UPLOAD_CHUNK.min(self.left);
        self.left -= n;
        let chunk: Vec<u8> = (start..start + n).map(upload_byte).collect();
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(chunk)))))
    }
}

#[tokio::test]
async fn ten_megabyte_chunked_upload_is_echoed_intact() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let client = hyper_client::<Upload>();
        let request = Request::post(server.url("/echo")).body(Upload { left: UPLOAD_SIZE }).unwrap();
        let response = tokio::time::timeout(WAIT, client.request(request)).await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["transfer-encoding"], "chunked");
        let body = tokio::time::timeout(WAIT, response.into_body().collect()).await.unwrap().unwrap().to_bytes();
        assert_eq!(body.len(), UPLOAD_SIZE);
        assert!(body.iter().enumerate().all(|(i, &b)| b == upload_byte(i)), "{transport}: echoed bytes differ");
        server.stop().await;
    }
}

#[tokio::test]
async fn expect_continue_is_answered_on_the_first_body_read() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"POST /count HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let interim = read_response(&mut stream, &mut buf).await;
        assert_eq!(interim.status, 100);
        stream.write_all(b"body").await.unwrap();
        let last = read_response(&mut stream, &mut buf).await;
        assert_eq!(last.status, 200);
        assert_eq!(last.body, b"4");

        // An application that never reads the body sends no 100, and the
        // connection closes, since the client may never send the body.
        stream
            .write_all(b"POST /ignore HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            .await
            .unwrap();
        let response = read_response(&mut stream, &mut buf).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.header("connection"), Some("close"));
        assert_closed(&mut stream).await;
        server.stop().await;
    }
}

#[tokio::test]
async fn unread_body_is_drained_and_the_connection_reused() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let body = vec![b'z'; 100_000];
        let mut request =
            format!("POST /ignore HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        request.extend_from_slice(&body);
        request.extend_from_slice(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n");
        stream.write_all(&request).await.unwrap();
        let mut buf = Vec::new();
        let first = read_response(&mut stream, &mut buf).await;
        assert_eq!(first.body, b"ignored");
        assert_eq!(first.header("connection"), None);
        let second = read_response(&mut stream, &mut buf).await;
        assert_eq!(second.body, b"Hello, World!");
        server.stop().await;
    }
}

#[tokio::test]
async fn head_http10_and_no_content() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"HEAD /plaintext HTTP/1.1\r\nHost: a\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let head = read_head_response(&mut stream, &mut buf).await;
        assert_eq!(head.header("content-length"), Some("13"));
        // No body bytes: the next response follows the head directly.
        let next = read_response(&mut stream, &mut buf).await;
        assert_eq!(next.body, b"Hello, World!");

        // HTTP/1.0 without a length: close-delimited.
        let (old, mut stream) = roundtrip(server.addr, b"GET /stream HTTP/1.0\r\n\r\n").await;
        assert_eq!(old.header("transfer-encoding"), None);
        assert_eq!(old.body, b"chunk\nchunk\nchunk\n");
        assert_closed(&mut stream).await;

        // HTTP/1.0 keep-alive on request.
        let (kept, mut stream) =
            roundtrip(server.addr, b"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").await;
        assert_eq!(kept.header("connection"), Some("keep-alive"));
        stream.write_all(b"GET /plaintext HTTP/1.0\r\n\r\n").await.unwrap();
        let mut buf = Vec::new();
        assert_eq!(read_response(&mut stream, &mut buf).await.body, b"Hello, World!");

        let (empty, _) =
            roundtrip(server.addr, b"GET /nocontent HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
        assert_eq!(empty.status, 204);
        assert_eq!(empty.header("content-length"), None);
        assert_eq!(empty.header("transfer-encoding"), None);
        server.stop().await;
    }
}

/// Sends `request` and checks it is refused with `status`, an empty body
/// and `Connection: close`, and that the connection then closes.
async fn assert_rejected(addr: std::net::SocketAddr, request: &[u8], status: u16) {
    let (response, mut stream) = roundtrip(addr, request).await;
    let shown = String::from_utf8_lossy(&request[..request.len().min(60)]).to_string();
    assert_eq!(response.status, status, "{shown}");
    assert_eq!(response.header("connection"), Some("close"), "{shown}");
    assert_eq!(response.header("content-length"), Some("0"), "{shown}");
    assert_closed(&mut stream).await;
}

#[tokio::test]
async fn every_limit_answers_with_kestrels_status() {
    for transport in transports() {
        let mut options = ServerOptions::default();
        options.http.limits.max_request_body_size = Some(1000);
        let server = start(transport, options).await;
        let addr = server.addr;

        let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000));
        assert_rejected(addr, long_target.as_bytes(), 414).await;

        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_rejected(addr, format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n").as_bytes(), 431).await;

        let huge = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "v".repeat(40_000));
        assert_rejected(addr, huge.as_bytes(), 431).await;

        // Over the body limit by Content-Length, and by chunks.
        let mut too_long = b"POST /count HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n".to_vec();
        too_long.extend_from_slice(&[b'x'; 2000]);
        assert_rejected(addr, &too_long, 413).await;
        let mut chunked = b"POST /count HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..3 {
            chunked.extend_from_slice(b"190\r\n");
            chunked.extend_from_slice(&[b'y'; 400]);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        assert_rejected(addr, &chunked, 413).await;

        assert_rejected(addr, b"GET / HTTP/1.1\r\n\r\n", 400).await;
        assert_rejected(addr, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400).await;
        assert_rejected(addr, b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400).await;
        assert_rejected(addr, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", 400).await;
        assert_rejected(addr, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400)
            .await;
        assert_rejected(addr, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400).await;
        assert_rejected(addr, b"POST /count HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400)
            .await;
        assert_rejected(addr, b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505).await;
        assert_rejected(addr, b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 405).await;
        server.stop().await;
    }
}

#[tokio::test]
async fn chunked_with_content_length_is_refused_and_closed() {
    let requests: [&[u8]; 3] = [
        b"POST /count HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST /count HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n",
        b"POST /count HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n",
    ];
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        for request in requests {
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
async fn request_headers_timeout_answers_408() {
    for transport in transports() {
        let mut options = ServerOptions::default();
        options.http.limits.request_headers_timeout = Duration::from_millis(300);
        let server = start(transport, options).await;
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").await.unwrap();
        let mut buf = Vec::new();
        let response = read_response(&mut stream, &mut buf).await;
        assert_eq!(response.status, 408);
        assert_eq!(response.header("connection"), Some("close"));
        assert_closed(&mut stream).await;

        // A connection that sends nothing is closed without a response.
        let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        assert_closed(&mut silent).await;
        server.stop().await;
    }
}

#[tokio::test]
async fn keep_alive_timeout_closes_idle_connections() {
    for transport in transports() {
        let mut options = ServerOptions::default();
        options.http.limits.keep_alive_timeout = Duration::from_millis(300);
        let server = start(transport, options).await;
        let (response, mut stream) = roundtrip(server.addr, b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(response.status, 200);
        assert_closed(&mut stream).await;
        server.stop().await;
    }
}

#[tokio::test]
async fn body_limit_can_be_lifted_per_request_until_read() {
    for transport in transports() {
        let mut options = ServerOptions::default();
        options.http.limits.max_request_body_size = Some(1000);
        let server = start(transport, options).await;
        let client = hyper_client::<Full<Bytes>>();
        let request = Request::builder()
            .method(Method::POST)
            .uri(server.url("/unlimited"))
            .body(Full::new(Bytes::from(vec![b'u'; 5000])))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "5000 read_only=true");
        server.stop().await;
    }
}

#[tokio::test]
async fn graceful_shutdown_lets_an_in_flight_request_finish() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        // An idle keep-alive connection, which shutdown closes at once.
        let (_, mut idle) = roundtrip(server.addr, b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n").await;

        let mut busy = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        busy.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
        tokio::time::timeout(WAIT, server.gate.entered.notified()).await.expect("request reached the app");

        server.shutdown.shutdown();
        assert_closed(&mut idle).await;
        // New connections are refused once the listener is gone.
        let refused = async {
            loop {
                if tokio::net::TcpStream::connect(server.addr).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(WAIT, refused).await.expect("listener closed");

        server.gate.release.notify_one();
        let mut buf = Vec::new();
        let response = read_response(&mut busy, &mut buf).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"finished");
        assert_eq!(response.header("connection"), Some("close"));
        assert_closed(&mut busy).await;
        tokio::time::timeout(WAIT, server.done).await.expect("server finished").unwrap().unwrap();
    }
}

#[tokio::test]
async fn shutdown_timeout_aborts_stuck_requests() {
    for transport in transports() {
        let mut options = ServerOptions::default();
        options.shutdown_timeout = Duration::from_millis(200);
        let server = start(transport, options).await;
        let mut busy = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        busy.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
        tokio::time::timeout(WAIT, server.gate.entered.notified()).await.expect("request reached the app");
        server.shutdown.shutdown();
        // Never released: the server must still finish, by aborting.
        tokio::time::timeout(WAIT, server.done).await.expect("server finished").unwrap().unwrap();
        assert_closed(&mut busy).await;
    }
}

#[tokio::test]
async fn curl_gets_and_posts() {
    if !require_tool("curl") {
        return;
    }
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let url = server.url("/plaintext");
        let out = tokio::process::Command::new("curl").args(["-sS", "--max-time", "10", &url]).output().await.unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, b"Hello, World!");

        // curl sends Expect: 100-continue for bodies over 1 MiB.
        let data = std::env::temp_dir().join(format!("kite-curl-{}.bin", std::process::id()));
        std::fs::write(&data, vec![b'c'; 2 * 1024 * 1024]).unwrap();
        let url = server.url("/count");
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--data-binary"])
            .arg(format!("@{}", data.display()))
            .arg(&url)
            .output()
            .await
            .unwrap();
        std::fs::remove_file(&data).ok();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), (2 * 1024 * 1024).to_string());
        server.stop().await;
    }
}

#[tokio::test]
async fn server_header_can_be_turned_off() {
    for transport in transports() {
        let mut options = ServerOptions::default();
        options.http.add_server_header = false;
        let server = start(transport, options).await;
        let (response, _) =
            roundtrip(server.addr, b"GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
        assert_eq!(response.status, 200);
        assert_eq!(response.header("server"), None);
        assert!(response.header("date").is_some());
        server.stop().await;
    }
}

#[tokio::test]
async fn loop_transports_run_the_application_on_their_loops() {
    for (transport, thread_prefix) in [("mio", "kite-mio-"), ("uring", "kite-uring-")] {
        if !transports().contains(&transport) {
            eprintln!("skipped: the {transport} feature is off");
            continue;
        }
        let server = start(transport, ServerOptions::default()).await;
        let (response, _) =
            roundtrip(server.addr, b"GET /thread HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
        let thread = String::from_utf8(response.body).unwrap();
        assert!(thread.starts_with(thread_prefix), "{transport}: the connection ran on {thread}, not on a loop");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_panicking_handler_does_not_take_the_server_down() {
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        // Nothing was sent yet: 500, and the connection goes on.
        let (response, mut stream) = roundtrip(server.addr, b"GET /panic HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(response.status, 500, "{transport}");
        stream.write_all(b"GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await.unwrap();
        let after = read_response(&mut stream, &mut Vec::new()).await;
        assert_eq!(after.body, b"Hello, World!", "{transport}: the connection serves on after a panic");
        // The head was sent: the connection is aborted mid-body.
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(b"GET /panic-mid-body HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut raw)).await.expect("closed in time");
        // Whatever was flushed before the panic arrives, never a whole
        // response: the chunked body has no last chunk.
        let text = String::from_utf8_lossy(&raw);
        assert!(text.is_empty() || text.starts_with("HTTP/1.1 200 OK"), "{transport}: {text}");
        assert!(!text.ends_with("0\r\n\r\n"), "{transport}: the chunked body never ends: {text}");
        server.stop().await;
    }
}
