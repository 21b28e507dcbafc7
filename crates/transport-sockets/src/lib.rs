//! Kite's default transport: TCP and Unix domain sockets on tokio.
//!
//! [`SocketTransport`] binds [`Endpoint::Tcp`] (IPv4, IPv6, and `[::]`
//! dual-stack) and [`Endpoint::Unix`] addresses with Kestrel's socket
//! defaults: `TCP_NODELAY` on, a backlog of 512. A listener bound to port 0
//! reports the real port through
//! [`local_endpoint`](kite_transport_core::Listener::local_endpoint).
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use kite_transport_core::{Endpoint, Transport};
//! use kite_transport_sockets::SocketTransport;
//!
//! let transport = SocketTransport::default();
//! let mut listener = transport.bind(&Endpoint::Tcp("127.0.0.1:0".parse().unwrap())).await.unwrap();
//! let addr = listener.local_endpoint().as_tcp().unwrap();
//! assert_ne!(addr.port(), 0);
//!
//! let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
//! let connection = listener.accept().await.unwrap();
//! assert_eq!(connection.context().transport(), "sockets");
//! # });
//! ```
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod listener;
mod stream;

use std::io;

use async_trait::async_trait;
use kite_transport_core::{Endpoint, Listener, Transport};

pub use kite_socket::SocketOptions;
pub use listener::SocketListener;
pub use stream::SocketStream;

/// The name this transport gives its connections.
pub const TRANSPORT_NAME: &str = "sockets";

/// The sockets transport: tokio's TCP and Unix sockets with
/// [`SocketOptions`]. It must be used inside a tokio runtime with IO
/// enabled.
#[derive(Clone, Debug, Default)]
pub struct SocketTransport {
    options: SocketOptions,
}

impl SocketTransport {
    /// A transport with the given socket options.
    pub fn new(options: SocketOptions) -> Self {
        Self { options }
    }

    /// The socket options in use.
    pub fn options(&self) -> &SocketOptions {
        &self.options
    }
}

#[async_trait]
impl Transport for SocketTransport {
    fn name(&self) -> &'static str {
        TRANSPORT_NAME
    }

    async fn bind(&self, endpoint: &Endpoint) -> io::Result<Box<dyn Listener>> {
        let listener = match endpoint {
            Endpoint::Tcp(addr) => SocketListener::bind_tcp(*addr, &self.options)?,
            Endpoint::Unix(path) => SocketListener::bind_unix(path, &self.options)?,
            Endpoint::Inherited(fd) => SocketListener::adopt(fd.take()?, &self.options)?,
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("the sockets transport cannot bind {other}"),
                ))
            }
        };
        Ok(Box::new(listener))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn port_zero_resolves_and_addr_in_use_is_reported() {
        let transport = SocketTransport::default();
        let listener = transport.bind(&Endpoint::Tcp("127.0.0.1:0".parse().unwrap())).await.unwrap();
        let addr = listener.local_endpoint().as_tcp().unwrap();
        assert_ne!(addr.port(), 0);
        let err = transport.bind(&Endpoint::Tcp(addr)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[tokio::test]
    async fn dual_stack_any_accepts_ipv4() {
        let transport = SocketTransport::default();
        let mut listener = match transport.bind(&Endpoint::Tcp("[::]:0".parse().unwrap())).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("skipped: IPv6 is not available here: {e}");
                return;
            }
        };
        let port = listener.local_endpoint().as_tcp().unwrap().port();
        let mut client = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut conn = listener.accept().await.unwrap();
        client.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        conn.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"x");
    }

    #[tokio::test]
    async fn unix_socket_stale_file_replaced_and_removed_on_drop() {
        let dir = std::env::temp_dir().join(format!("kite-sock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stale.sock");
        // A stale socket: bound, then its listener dropped without unlinking.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());

        let transport = SocketTransport::default();
        let endpoint = Endpoint::Unix(path.clone());
        let mut listener = transport.bind(&endpoint).await.unwrap();
        // A live socket is not replaced.
        let err = transport.bind(&endpoint).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);

        // The liveness probe was queued as a connection and closed at once.
        let mut probe = listener.accept().await.unwrap();
        let mut b = [0u8; 1];
        assert_eq!(probe.read(&mut b).await.unwrap(), 0);

        let mut client = tokio::net::UnixStream::connect(&path).await.unwrap();
        let mut conn = listener.accept().await.unwrap();
        assert_eq!(conn.context().local(), &endpoint);
        conn.write_all(b"hi").await.unwrap();
        let mut b = [0u8; 2];
        client.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"hi");

        drop(listener);
        assert!(!path.exists(), "socket file removed when the listener is dropped");
        std::fs::remove_dir_all(&dir).ok();
    }
}
