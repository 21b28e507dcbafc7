//! An HTTP/3 load generator on quinn and h3 (h2load here is built without
//! HTTP/3). Two modes:
//!
//! ```text
//! h3-load 127.0.0.1:5001 SECONDS CONNECTIONS STREAMS     # requests
//! h3-load 127.0.0.1:5001 SECONDS CONNECTIONS STREAMS BODY_BYTES   # POST /echo
//! h3-load 127.0.0.1:5001 SECONDS CONCURRENCY handshake   # handshakes
//! ```
//!
//! `requests`: CONNECTIONS QUIC connections, each with STREAMS request
//! loops of `GET /plaintext`, as `h2load -cC -mS`; with BODY_BYTES, of a
//! `POST /echo` with that many bytes, the echo read whole and its length
//! checked, as `h2load -d`. `handshake`: each
//! exchange opens a new connection with a full TLS 1.3 handshake (no
//! resumption, no 0-RTT), sends one `GET`, and closes.
//!
//! Prints `requests: N` (completed exchanges) and `errors: N`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};

type Sender = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// Opens a QUIC connection and its HTTP/3 session; the driver runs in a
/// task of its own.
async fn open(endpoint: &quinn::Endpoint, addr: SocketAddr) -> Result<(Sender, quinn::Connection), String> {
    let connection =
        endpoint.connect(addr, "localhost").map_err(|e| e.to_string())?.await.map_err(|e| e.to_string())?;
    let (mut driver, sender) =
        h3::client::new(h3_quinn::Connection::new(connection.clone())).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
    Ok((sender, connection))
}

/// One `GET /plaintext`; whether it came back whole.
async fn get(sender: &mut Sender) -> bool {
    let request = http::Request::get("https://localhost/plaintext").body(()).expect("a request");
    let exchange = async {
        let mut stream = sender.send_request(request).await.ok()?;
        stream.finish().await.ok()?;
        let response = stream.recv_response().await.ok()?;
        let mut body = Vec::new();
        while let Some(mut chunk) = stream.recv_data().await.ok()? {
            body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
        }
        Some(response.status() == http::StatusCode::OK && body == b"Hello, World!")
    };
    exchange.await.unwrap_or(false)
}

/// One `POST /echo` of `body`; whether all of it came back.
async fn post(sender: &mut Sender, body: &Bytes) -> bool {
    let request =
        http::Request::post("https://localhost/echo").header("content-length", body.len()).body(()).expect("a request");
    let exchange = async {
        let stream = sender.send_request(request).await.ok()?;
        let (mut send, mut recv) = stream.split();
        let upload = async {
            // In 64 KB DATA frames, as a client streams a large upload.
            for chunk in body.chunks(64 * 1024) {
                send.send_data(body.slice_ref(chunk)).await.ok()?;
            }
            send.finish().await.ok()
        };
        let download = async {
            let response = recv.recv_response().await.ok()?;
            let mut received = 0;
            while let Some(chunk) = recv.recv_data().await.ok()? {
                received += chunk.remaining();
            }
            Some(response.status() == http::StatusCode::OK && received == body.len())
        };
        let (sent, ok) = tokio::join!(upload, download);
        sent?;
        ok
    };
    exchange.await.unwrap_or(false)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = args.get(1).expect("an address").parse().expect("address");
    let seconds: u64 = args.get(2).map_or(10, |s| s.parse().expect("seconds"));
    let connections: usize = args.get(3).map_or(16, |s| s.parse().expect("connections"));
    let mode = args.get(4).map_or("32", String::as_str);
    let body: Option<Bytes> = args.get(5).map(|n| Bytes::from(vec![b'k'; n.parse().expect("a body size in bytes")]));

    let tls = kite_bench::client_config(&[&rustls::version::TLS13], b"h3");
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("a QUIC client configuration");

    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("an address")).expect("a UDP socket");
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        if mode == "handshake" {
            for _ in 0..connections {
                let (endpoint, done, errors) = (endpoint.clone(), Arc::clone(&done), Arc::clone(&errors));
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let ok = match open(&endpoint, addr).await {
                            Ok((mut sender, connection)) => {
                                let ok = get(&mut sender).await;
                                connection.close(0u32.into(), b"");
                                ok
                            }
                            Err(_) => false,
                        };
                        let counter = if ok { &done } else { &errors };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
        } else {
            let streams: usize = mode.parse().expect("streams per connection");
            for _ in 0..connections {
                let Ok((sender, connection)) = open(&endpoint, addr).await else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                for _ in 0..streams {
                    let (mut sender, done, errors) = (sender.clone(), Arc::clone(&done), Arc::clone(&errors));
                    let body = body.clone();
                    tasks.push(tokio::spawn(async move {
                        while Instant::now() < deadline {
                            let ok = match &body {
                                Some(body) => post(&mut sender, body).await,
                                None => get(&mut sender).await,
                            };
                            let counter = if ok { &done } else { &errors };
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                    }));
                }
                drop(connection);
            }
        }
        for task in tasks {
            let _ = task.await;
        }
        endpoint.close(0u32.into(), b"");
    });
    println!("requests: {}", done.load(Ordering::Relaxed));
    println!("errors: {}", errors.load(Ordering::Relaxed));
}
