//! A load generator for full TLS handshakes: each request opens a new
//! connection, performs a full handshake (no session resumption, no
//! tickets) and sends one `GET` with `Connection: close`. wrk and h2load
//! resume sessions, so they cannot measure this.
//!
//! ```text
//! tls-handshakes 127.0.0.1:8443 SECONDS CONCURRENCY
//! ```
//!
//! Prints `handshakes: N` (completed exchanges) and `errors: N`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = args.get(1).expect("an address").parse().expect("address");
    let seconds: u64 = args.get(2).map_or(10, |s| s.parse().expect("seconds"));
    let concurrency: usize = args.get(3).map_or(16, |s| s.parse().expect("concurrency"));

    let config = kite_bench::client_config(rustls::DEFAULT_VERSIONS, b"http/1.1");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));

    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (connector, done, errors) = (connector.clone(), Arc::clone(&done), Arc::clone(&errors));
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let exchange = async {
                        let tcp = tokio::net::TcpStream::connect(addr).await?;
                        tcp.set_nodelay(true)?;
                        let name = ServerName::try_from("localhost").expect("a name");
                        let mut tls = connector.connect(name, tcp).await?;
                        tls.write_all(b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                            .await?;
                        let mut response = Vec::new();
                        tls.read_to_end(&mut response).await?;
                        Ok::<_, std::io::Error>(response.ends_with(b"Hello, World!"))
                    };
                    match exchange.await {
                        Ok(true) => done.fetch_add(1, Ordering::Relaxed),
                        _ => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
    println!("handshakes: {}", done.load(Ordering::Relaxed));
    println!("errors: {}", errors.load(Ordering::Relaxed));
}
