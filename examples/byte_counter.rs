//! A connection middleware that wraps the stream: count the bytes each
//! connection reads and writes, and report them when it closes.
//!
//! ```text
//! cargo run --example byte_counter
//! ```
//!
//! It starts a server, sends it two requests on one connection, and prints
//! the counts the middleware reported.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_trait::async_trait;
use kite::middleware::{ConnectionError, ConnectionMiddleware, Next};
use kite::transport::{Connection, ConnectionIo};
use kite::{service_fn, RequestBody, Server};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Byte counts of one connection.
#[derive(Default)]
struct Counts {
    read: AtomicU64,
    written: AtomicU64,
}

/// Wraps a connection's stream and counts what crosses it.
struct CountingStream {
    inner: Box<dyn ConnectionIo>,
    counts: Arc<Counts>,
}

impl AsyncRead for CountingStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.counts.read.fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        result
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            self.counts.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        result
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl ConnectionIo for CountingStream {
    // Pass readiness through, so idle connections still hold no buffer.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_read_ready(cx)
    }
}

/// Counts bytes per connection and reports them when the connection ends.
struct ByteCounter {
    reports: Arc<Mutex<Vec<(u64, u64)>>>,
}

#[async_trait]
impl ConnectionMiddleware for ByteCounter {
    async fn on_connection(&self, connection: Connection, next: Next) -> Result<(), ConnectionError> {
        let counts = Arc::new(Counts::default());
        let wrapped = Arc::clone(&counts);
        let result =
            next.run(connection.map_io(move |inner| Box::new(CountingStream { inner, counts: wrapped }))).await;
        let (read, written) = (counts.read.load(Ordering::Relaxed), counts.written.load(Ordering::Relaxed));
        self.reports.lock().expect("reports").push((read, written));
        result
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let counter = ByteCounter { reports: Arc::clone(&reports) };
    let server = Server::builder()
        .listen(([127, 0, 0, 1], 0))
        .handle_signals(false)
        .connection_middleware(counter)
        .bind()
        .await?;
    let addr = server.local_endpoints()[0].as_tcp().expect("a TCP endpoint");
    let shutdown = server.shutdown_handle();
    let running = tokio::spawn(server.serve(service_fn(|_req: http::Request<RequestBody>| async {
        Ok::<_, Infallible>(http::Response::new(String::from("0123456789")))
    })));

    let requests = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(requests).await?;
    let mut responses = Vec::new();
    stream.read_to_end(&mut responses).await?;
    drop(stream);

    shutdown.shutdown();
    running.await??;
    let reports = reports.lock().expect("reports").clone();
    println!("connections: {}", reports.len());
    for (read, written) in &reports {
        println!("read {read} bytes, wrote {written} bytes");
    }
    assert_eq!(
        reports,
        vec![(requests.len() as u64, responses.len() as u64)],
        "the counts match what crossed the socket"
    );
    Ok(())
}
