//! Holds idle keep-alive connections open against a server, for measuring
//! what an idle connection costs it:
//!
//! ```text
//! idle 127.0.0.1:5000 COUNT [tls]
//! ```
//!
//! Opens COUNT connections (TLS 1.3 with `tls`, no certificate checks),
//! sends one `GET /plaintext` on each and reads the response, so every
//! connection is idle between requests; prints `idle: N` (and `errors: N`)
//! and holds them until a line arrives on standard input, then closes them
//! all and prints `closed`.

use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Sends one request and reads its (small) response whole.
async fn one_request(stream: &mut Box<dyn Stream>) -> std::io::Result<()> {
    stream.write_all(b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n").await?;
    stream.flush().await?;
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    while !response.ends_with(b"Hello, World!") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        response.extend_from_slice(&buf[..n]);
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = args.get(1).expect("an address").parse().expect("address");
    let count: usize = args.get(2).map_or(1000, |n| n.parse().expect("count"));
    let tls = args.get(3).is_some_and(|a| a == "tls");
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(kite_bench::client_config(&[&rustls::version::TLS13], b"http/1.1")));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let mut held: Vec<Box<dyn Stream>> = Vec::with_capacity(count);
        let mut errors = 0;
        for _ in 0..count {
            let opened = async {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let mut stream: Box<dyn Stream> = if tls {
                    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a name");
                    Box::new(connector.connect(name, tcp).await?)
                } else {
                    Box::new(tcp)
                };
                one_request(&mut stream).await?;
                Ok::<_, std::io::Error>(stream)
            };
            match opened.await {
                Ok(stream) => held.push(stream),
                Err(_) => errors += 1,
            }
        }
        println!("idle: {}", held.len());
        println!("errors: {errors}");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let _ = tokio::task::spawn_blocking(|| std::io::stdin().lock().lines().next()).await;
        drop(held);
        println!("closed");
    });
}
