//! Connection middleware in a real server: order is Kestrel's, and
//! connection logging sees what its position in the chain sees.

mod common;

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_trait::async_trait;
use common::WAIT;
use kite::middleware::{ConnectionError, ConnectionLogging, ConnectionMiddleware, Next};
use kite::transport::{Connection, ConnectionIo};
use kite::{Server, ServerOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// A toy cipher: ROT13 on letters, both ways. Placed in the chain, what is
/// outside it sees "ciphertext" and what is inside sees plaintext.
struct Rot13;

fn rot13(b: u8) -> u8 {
    match b {
        b'a'..=b'z' => (b - b'a' + 13) % 26 + b'a',
        b'A'..=b'Z' => (b - b'A' + 13) % 26 + b'A',
        _ => b,
    }
}

struct Rot13Stream(Box<dyn ConnectionIo>);

impl AsyncRead for Rot13Stream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.0).poll_read(cx, buf);
        for b in &mut buf.filled_mut()[before..] {
            *b = rot13(*b);
        }
        result
    }
}

impl AsyncWrite for Rot13Stream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let encoded: Vec<u8> = buf.iter().map(|&b| rot13(b)).collect();
        Pin::new(&mut self.0).poll_write(cx, &encoded)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl ConnectionIo for Rot13Stream {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_read_ready(cx)
    }
}

#[async_trait]
impl ConnectionMiddleware for Rot13 {
    async fn on_connection(&self, connection: Connection, next: Next) -> Result<(), ConnectionError> {
        next.run(connection.map_io(|io| Box::new(Rot13Stream(io)))).await
    }
}

/// Records the order middleware run in.
struct Mark(&'static str, Arc<Mutex<Vec<&'static str>>>);

#[async_trait]
impl ConnectionMiddleware for Mark {
    async fn on_connection(&self, connection: Connection, next: Next) -> Result<(), ConnectionError> {
        self.1.lock().unwrap().push(self.0);
        next.run(connection).await
    }
}

/// Collects log output from every thread of this test binary.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The log output of this test binary, captured from its one subscriber.
fn captured() -> &'static Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter("kite::connection_logging=debug,kite::bad_requests=debug")
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        captured
    })
}

#[tokio::test]
async fn a_rejected_request_is_logged_with_its_reason() {
    let captured = captured();
    let server = common::start(common::transports().last().unwrap(), ServerOptions::default()).await;
    let (response, _) = common::roundtrip(server.addr, b"GET / HTTP/1.1\r\nX: 1\r\n\r\n").await;
    assert_eq!(response.status, 400);
    let both = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n";
    let (response, _) = common::roundtrip(server.addr, both).await;
    assert_eq!(response.status, 400);
    server.stop().await;
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for reason in ["Request is missing Host header", "A request carries both Transfer-Encoding and Content-Length"] {
        let event = log
            .lines()
            .find(|l| l.contains("kite::bad_requests") && l.contains(reason))
            .unwrap_or_else(|| panic!("no bad-request event says {reason:?}:\n{log}"));
        assert!(event.contains("status=400"), "{event}");
    }
}

#[tokio::test]
async fn logging_before_the_cipher_sees_ciphertext_and_after_it_plaintext() {
    let captured = captured();

    let order = Arc::new(Mutex::new(Vec::new()));
    let mut options = ServerOptions::default();
    options.handle_signals = false;
    let server = Server::builder()
        .urls(["http://127.0.0.1:0"])
        .options(options)
        .connection_middleware(Mark("first", Arc::clone(&order)))
        .connection_middleware(ConnectionLogging::with_name("outside"))
        .connection_middleware(Rot13)
        .connection_middleware(ConnectionLogging::with_name("inside"))
        .connection_middleware(Mark("last", Arc::clone(&order)))
        .bind()
        .await
        .unwrap();
    let addr = server.local_endpoints()[0].as_tcp().unwrap();
    let shutdown = server.shutdown_handle();
    let done = tokio::spawn(server.serve(kite::service_fn(|req: http::Request<kite::RequestBody>| async move {
        Ok::<_, std::convert::Infallible>(http::Response::new(format!("path={}", req.uri().path())))
    })));

    // The client speaks ROT13: the server's HTTP core must see plaintext.
    let request: Vec<u8> =
        b"GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".iter().map(|&b| rot13(b)).collect();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let mut encoded = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut encoded)).await.unwrap().unwrap();
    let response: String = encoded.iter().map(|&b| rot13(b) as char).collect();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("path=/hello"), "{response}");

    // A plain client's request reaches HTTP as ROT13 ("TRG / UGGC/1.1"),
    // which is refused; the refusal goes back through the cipher too.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let mut encoded = Vec::new();
    tokio::time::timeout(WAIT, plain.read_to_end(&mut encoded)).await.unwrap().unwrap();
    drop(plain);
    let refusal: String = encoded.iter().map(|&b| rot13(b) as char).collect();
    assert!(refusal.starts_with("HTTP/1.1 400 Bad Request"), "{refusal}");

    shutdown.shutdown();
    tokio::time::timeout(WAIT, done).await.unwrap().unwrap().unwrap();

    assert_eq!(order.lock().unwrap()[..2], ["first", "last"], "first added runs first");
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // "GET" is 47 45 54; in ROT13 it is "TRG", 54 52 47.
    let events: Vec<&str> = log.split("kite::connection_logging:").skip(1).collect();
    let first_read = |logger: &str| {
        events
            .iter()
            .find(|e| e.trim_start().starts_with("ReadAsync[") && e.contains(&format!("logger={logger}")))
            .unwrap_or_else(|| panic!("no read logged by {logger}:\n{log}"))
            .to_string()
    };
    assert!(first_read("outside").contains("54 52 47 20 2F"), "outside logs ciphertext:\n{log}");
    assert!(first_read("inside").contains("47 45 54 20 2F"), "inside logs plaintext:\n{log}");
    assert!(log.contains("ReadAsync[") && log.contains("WriteAsync["), "{log}");
}
