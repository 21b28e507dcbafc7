//! The QUIC listener: one quinn endpoint on a UDP socket. A task accepts
//! incoming connections and completes each handshake in a task of its
//! own, so a slow handshake never holds up the next.

use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use kite_transport_core::{Endpoint, MultiplexedConnection, MultiplexedListener};
use tokio::sync::mpsc;

use crate::connection;

/// Handshakes done but not yet accepted.
const BACKLOG: usize = 128;

/// A bound QUIC endpoint. Dropping it stops accepting new connections;
/// connections already accepted live on until they close.
pub struct QuicListener {
    endpoint: quinn::Endpoint,
    /// The UDP socket quinn reads, for a hand-over to another process.
    socket: std::os::fd::OwnedFd,
    local: Endpoint,
    accepted: mpsc::Receiver<io::Result<MultiplexedConnection>>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl QuicListener {
    pub(crate) fn new(socket: std::net::UdpSocket, config: quinn::ServerConfig) -> io::Result<Self> {
        let runtime = quinn::default_runtime()
            .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "QUIC needs a tokio runtime"))?;
        let handover = std::os::fd::OwnedFd::from(socket.try_clone()?);
        let endpoint = quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(config), socket, runtime)?;
        let local_addr = endpoint.local_addr()?;
        let (sender, accepted) = mpsc::channel(BACKLOG);
        let acceptor = tokio::spawn(accept_loop(endpoint.clone(), local_addr, sender));
        Ok(Self { endpoint, socket: handover, local: Endpoint::Tcp(local_addr), accepted, acceptor })
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    local: SocketAddr,
    sender: mpsc::Sender<io::Result<MultiplexedConnection>>,
) {
    while let Some(incoming) = endpoint.accept().await {
        let sender = sender.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let connected = match incoming.accept() {
                Ok(connecting) => connecting.await,
                Err(e) => Err(e),
            };
            let result = match connected {
                Ok(connection) => Ok(connection::accepted(connection, local)),
                Err(e) => {
                    tracing::debug!(%remote, error = %e, "QUIC handshake failed");
                    Err(io::Error::new(io::ErrorKind::ConnectionAborted, format!("QUIC handshake with {remote}: {e}")))
                }
            };
            let _ = sender.send(result).await;
        });
    }
}

impl MultiplexedListener for QuicListener {
    fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }

    fn listening_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(self.socket.as_fd())
    }

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<MultiplexedConnection>> {
        self.accepted.poll_recv(cx).map(|accepted| {
            accepted.unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::NotConnected, "the QUIC endpoint is closed")))
        })
    }
}

impl Drop for QuicListener {
    fn drop(&mut self) {
        // New connections are refused; the endpoint keeps driving the
        // accepted ones until they close.
        self.acceptor.abort();
        self.endpoint.set_server_config(None);
    }
}

impl std::fmt::Debug for QuicListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicListener").field("local", &self.local).finish()
    }
}
