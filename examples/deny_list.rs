//! A connection middleware of your own: refuse connections from addresses
//! on a deny list, before any byte of HTTP is read.
//!
//! ```text
//! cargo run --example deny_list
//! ```
//!
//! It starts a server that denies 127.0.0.2, then connects once from
//! 127.0.0.1 (served) and once from 127.0.0.2 (refused), and prints both.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::IpAddr;

use async_trait::async_trait;
use kite::middleware::{ConnectionError, ConnectionMiddleware, Next};
use kite::transport::{Connection, Endpoint};
use kite::{service_fn, RequestBody, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Refuses connections whose remote address is on the list.
struct DenyList {
    denied: HashSet<IpAddr>,
}

#[async_trait]
impl ConnectionMiddleware for DenyList {
    async fn on_connection(&self, connection: Connection, next: Next) -> Result<(), ConnectionError> {
        if let Endpoint::Tcp(remote) = connection.context().remote() {
            if self.denied.contains(&remote.ip()) {
                // Returning without calling `next` closes the connection;
                // the server logs the reason.
                return Err(ConnectionError::rejected(format!("{} is on the deny list", remote.ip())));
            }
        }
        next.run(connection).await
    }
}

/// Connects from `local`, sends a request, and returns what came back.
async fn request_from(local: &str, server: std::net::SocketAddr) -> std::io::Result<String> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{local}:0").parse().expect("an address"))?;
    let mut stream = socket.connect(server).await?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let deny = DenyList { denied: ["127.0.0.2".parse()?].into_iter().collect() };
    let server =
        Server::builder().listen(([0, 0, 0, 0], 0)).handle_signals(false).connection_middleware(deny).bind().await?;
    let port = server.local_endpoints()[0].as_tcp().expect("a TCP endpoint").port();
    let shutdown = server.shutdown_handle();
    let running = tokio::spawn(server.serve(service_fn(|_req: http::Request<RequestBody>| async {
        Ok::<_, Infallible>(http::Response::new(String::from("welcome")))
    })));

    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let allowed = request_from("127.0.0.1", target).await?;
    println!("from 127.0.0.1: {}", allowed.lines().next().unwrap_or("(nothing)"));
    assert!(allowed.ends_with("welcome"), "127.0.0.1 is served");

    let denied = request_from("127.0.0.2", target).await;
    let shown = match &denied {
        Ok(text) if text.is_empty() => "closed without a response".to_string(),
        Ok(text) => text.clone(),
        Err(e) => format!("closed ({e})"),
    };
    println!("from 127.0.0.2: {shown}");
    assert!(denied.map_or(true, |text| text.is_empty()), "127.0.0.2 is refused");

    shutdown.shutdown();
    running.await??;
    Ok(())
}
