//! The floor of this machine for HTTP/1.1 keep-alive: a server that parses
//! nothing. It answers each `\r\n\r\n` it reads with one canned
//! `/plaintext` response, on the same tokio runtime as the hyper peer, so
//! what Kite and hyper spend beyond it is the cost of HTTP itself.
//!
//! ```text
//! canned 127.0.0.1:8080
//! ```
//!
//! Prints `Now listening on: http://ADDR` once bound, like `kite`.

use std::io::Write;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The response the other servers give `/plaintext`, byte for byte the
/// same size as Kite's (a fixed date: nothing is computed per request).
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nserver: kite\r\n\
date: Tue, 01 Dec 2026 00:00:00 GMT\r\ncontent-length: 13\r\n\r\nHello, World!";

async fn serve(mut stream: TcpStream) {
    let mut buf = vec![0u8; 8192];
    let mut out = Vec::with_capacity(RESPONSE.len() * 16);
    // How many bytes of "\r\n\r\n" the previous read ended with.
    let mut matched = 0;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for &byte in &buf[..n] {
            matched = match (matched, byte) {
                (0 | 2, b'\r') => matched + 1,
                (1 | 3, b'\n') => matched + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            if matched == 4 {
                out.extend_from_slice(RESPONSE);
                matched = 0;
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

fn main() {
    let addr: SocketAddr = std::env::args().nth(1).as_deref().unwrap_or("127.0.0.1:8080").parse().expect("address");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        println!("Now listening on: http://{}", listener.local_addr().expect("local address"));
        let _ = std::io::stdout().flush();
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream));
            }
        }
    });
}
