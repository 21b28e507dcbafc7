//! An in-memory transport: connections are tokio duplex pipes.

use std::io;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_trait::async_trait;
use kite_transport_core::{Connection, ConnectionContext, ConnectionId, Endpoint, Listener, PlainIo, Transport};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;

/// The name this transport gives its connections.
pub const TRANSPORT_NAME: &str = "memory";

/// How many bytes a pipe buffers each way.
const PIPE_CAPACITY: usize = 64 * 1024;

/// A transport whose connections are in-memory pipes: no sockets, no ports.
/// It binds [`Endpoint::Unnamed`] once; [`connect`](Self::connect) opens a
/// connection to that listener and returns the client's end.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use kite_testing::MemoryTransport;
/// use kite_transport_core::{Endpoint, Transport};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let transport = MemoryTransport::new();
/// let mut listener = transport.bind(&Endpoint::Unnamed).await.unwrap();
/// let mut client = transport.connect().await.unwrap();
/// let mut connection = listener.accept().await.unwrap();
/// client.write_all(b"hi").await.unwrap();
/// let mut buf = [0u8; 2];
/// connection.read_exact(&mut buf).await.unwrap();
/// assert_eq!(&buf, b"hi");
/// # });
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryTransport {
    listener: Arc<Mutex<Option<mpsc::UnboundedSender<DuplexStream>>>>,
}

impl MemoryTransport {
    /// A transport with nothing bound.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a connection to the bound listener and returns the client's
    /// end of the pipe.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::ConnectionRefused`] when nothing is bound, or the
    /// listener was dropped.
    pub async fn connect(&self) -> io::Result<DuplexStream> {
        let (client, server) = tokio::io::duplex(PIPE_CAPACITY);
        let sender = self.listener.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match sender {
            Some(sender) if sender.send(server).is_ok() => Ok(client),
            _ => Err(io::Error::new(io::ErrorKind::ConnectionRefused, "no memory listener is bound")),
        }
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    fn name(&self) -> &'static str {
        TRANSPORT_NAME
    }

    fn can_bind(&self, endpoint: &Endpoint) -> bool {
        matches!(endpoint, Endpoint::Unnamed)
    }

    async fn bind(&self, endpoint: &Endpoint) -> io::Result<Box<dyn Listener>> {
        if !self.can_bind(endpoint) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the memory transport cannot bind {endpoint}"),
            ));
        }
        let mut slot = self.listener.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|sender| !sender.is_closed()) {
            return Err(io::Error::new(io::ErrorKind::AddrInUse, "the memory transport is already bound"));
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        *slot = Some(sender);
        Ok(Box::new(MemoryListener { receiver, local: Endpoint::Unnamed }))
    }
}

/// The listener of a [`MemoryTransport`].
#[derive(Debug)]
pub struct MemoryListener {
    receiver: mpsc::UnboundedReceiver<DuplexStream>,
    local: Endpoint,
}

impl Listener for MemoryListener {
    fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Connection>> {
        match self.receiver.poll_recv(cx) {
            Poll::Ready(Some(stream)) => {
                let context =
                    ConnectionContext::new(ConnectionId::next(), Endpoint::Unnamed, Endpoint::Unnamed, TRANSPORT_NAME);
                Poll::Ready(Ok(Connection::new(Box::new(PlainIo(stream)), context)))
            }
            Poll::Ready(None) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::NotConnected, "the memory transport is gone")))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
