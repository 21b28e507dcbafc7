//! Opaque upgrades: `101 Switching Protocols` on HTTP/1.1 and extended
//! CONNECT (RFC 8441) on HTTP/2, handing the application a byte stream.

pub(crate) mod h2_tunnel;

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use kite_transport_core::ConnectionIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

use self::h2_tunnel::H2Tunnel;
use crate::ConnectionInfo;
use kite_transport_core::Rewind;

/// Takes the pending upgrade out of a request, as hyper's
/// `hyper::upgrade::on` does.
///
/// Answer the request with `101 Switching Protocols` (HTTP/1.1) or a `2xx`
/// (an HTTP/2 extended CONNECT), then await the returned [`OnUpgrade`]: it
/// resolves to the [`Upgraded`] byte stream once the response head is on
/// the wire. A request that cannot be upgraded gives an `OnUpgrade` that
/// fails with [`UpgradeError::NotUpgradable`].
///
/// ```
/// use http::{header, Request, Response, StatusCode};
/// use kite_http_core::{upgrade, RequestBody};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// /// An echo over any protocol the client upgrades to.
/// async fn handler(mut req: Request<RequestBody>) -> Response<String> {
///     let on_upgrade = upgrade::on(&mut req);
///     tokio::spawn(async move {
///         if let Ok(mut stream) = on_upgrade.await {
///             let mut buf = [0; 1024];
///             while let Ok(n @ 1..) = stream.read(&mut buf).await {
///                 let _ = stream.write_all(&buf[..n]).await;
///             }
///         }
///     });
///     Response::builder()
///         .status(StatusCode::SWITCHING_PROTOCOLS)
///         .header(header::CONNECTION, "upgrade")
///         .header(header::UPGRADE, "echo")
///         .body(String::new())
///         .unwrap()
/// }
/// ```
pub fn on<B>(request: &mut http::Request<B>) -> OnUpgrade {
    request.extensions_mut().remove::<OnUpgrade>().unwrap_or_else(OnUpgrade::none)
}

/// Whether `request` can be upgraded: an HTTP/1.1 request with
/// `Connection: upgrade`, an `Upgrade` header and no body, or an HTTP/2
/// extended CONNECT (RFC 8441), whose upgrade was not taken yet.
pub fn is_upgradable<B>(request: &http::Request<B>) -> bool {
    request.extensions().get::<OnUpgrade>().is_some_and(|on| on.rx.is_some())
}

/// Why an upgrade did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// The request asked for no upgrade, or its upgrade was already taken.
    #[error("the request cannot be upgraded")]
    NotUpgradable,
    /// `MaxConcurrentUpgradedConnections` was reached; the client got
    /// `503 Service Unavailable` instead of the switch.
    #[error("the upgraded-connection limit is reached")]
    LimitReached,
    /// The application answered without switching (not `101`, or not `2xx`
    /// for an extended CONNECT), or the connection ended first.
    #[error("the response did not switch protocols")]
    NotSwitched,
}

/// A future of the upgraded stream; a request extension on every request
/// that can be upgraded. Take it with [`on`].
#[derive(Clone)]
pub struct OnUpgrade {
    rx: Option<Arc<Mutex<Receiver>>>,
}

/// Where the connection sends the upgraded stream, or why there is none.
type Receiver = oneshot::Receiver<Result<Upgraded, UpgradeError>>;

impl OnUpgrade {
    fn none() -> Self {
        Self { rx: None }
    }

    /// A pending upgrade for a request, and the connection's half.
    pub(crate) fn pending() -> (Self, PendingUpgrade) {
        let (tx, rx) = oneshot::channel();
        (Self { rx: Some(Arc::new(Mutex::new(rx))) }, PendingUpgrade { tx })
    }
}

impl fmt::Debug for OnUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnUpgrade").field("pending", &self.rx.is_some()).finish()
    }
}

impl Future for OnUpgrade {
    type Output = Result<Upgraded, UpgradeError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(rx) = self.rx.as_ref() else {
            return Poll::Ready(Err(UpgradeError::NotUpgradable));
        };
        let polled = {
            let mut rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            Pin::new(&mut *rx).poll(cx)
        };
        match polled {
            Poll::Ready(result) => {
                self.rx = None;
                Poll::Ready(result.unwrap_or(Err(UpgradeError::NotSwitched)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The connection's half of an [`OnUpgrade`].
pub(crate) struct PendingUpgrade {
    tx: oneshot::Sender<Result<Upgraded, UpgradeError>>,
}

impl PendingUpgrade {
    pub fn fulfill(self, upgraded: Upgraded) {
        let _ = self.tx.send(Ok(upgraded));
    }

    pub fn fail(self, error: UpgradeError) {
        let _ = self.tx.send(Err(error));
    }
}

/// An upgraded connection: the raw bytes after `101 Switching Protocols`,
/// or an HTTP/2 stream's DATA frames after an extended CONNECT. It reads
/// and writes with tokio's `AsyncRead` and `AsyncWrite`; body-size limits,
/// data rates and keep-alive timeouts no longer apply. It counts against
/// `Limits::max_concurrent_upgraded_connections` until dropped.
pub struct Upgraded {
    // Dropped first: the slot is free by the time the peer sees the close.
    _permit: UpgradePermit,
    io: UpgradedIo,
    info: ConnectionInfo,
}

enum UpgradedIo {
    /// The connection, replaying the bytes already read past the request
    /// head first.
    Http1(Rewind),
    Http2(H2Tunnel),
}

impl Upgraded {
    pub(crate) fn http1(io: Box<dyn ConnectionIo>, prefix: Bytes, info: ConnectionInfo, permit: UpgradePermit) -> Self {
        Self { io: UpgradedIo::Http1(Rewind::new(prefix, io)), info, _permit: permit }
    }

    pub(crate) fn http2(tunnel: H2Tunnel, info: ConnectionInfo, permit: UpgradePermit) -> Self {
        Self { io: UpgradedIo::Http2(tunnel), info, _permit: permit }
    }

    /// The connection the upgrade happened on; its context's close signal
    /// tells when the server shuts down gracefully.
    pub fn connection_info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// Whether this is an HTTP/2 stream (extended CONNECT) rather than a
    /// whole HTTP/1.1 connection.
    pub fn is_http2(&self) -> bool {
        matches!(self.io, UpgradedIo::Http2(_))
    }
}

impl fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgraded").field("connection_id", &self.info.id()).field("http2", &self.is_http2()).finish()
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            UpgradedIo::Http1(io) => Pin::new(io).poll_read(cx, buf),
            UpgradedIo::Http2(tunnel) => tunnel.poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.io {
            UpgradedIo::Http1(io) => Pin::new(io).poll_write(cx, buf),
            UpgradedIo::Http2(tunnel) => tunnel.poll_write(cx, buf),
        }
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            UpgradedIo::Http1(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            UpgradedIo::Http2(tunnel) => {
                let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &**b);
                tunnel.poll_write(cx, first)
            }
        }
    }
    fn is_write_vectored(&self) -> bool {
        match &self.io {
            UpgradedIo::Http1(io) => io.is_write_vectored(),
            UpgradedIo::Http2(_) => false,
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            UpgradedIo::Http1(io) => Pin::new(io).poll_flush(cx),
            UpgradedIo::Http2(_) => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            UpgradedIo::Http1(io) => Pin::new(io).poll_shutdown(cx),
            UpgradedIo::Http2(tunnel) => tunnel.poll_shutdown(),
        }
    }
}

/// The server-wide count of upgraded connections, shared by every clone of
/// the [`HttpOptions`](crate::HttpOptions) it belongs to.
#[derive(Clone, Debug, Default)]
pub(crate) struct UpgradeCounter {
    active: Arc<AtomicU64>,
}

impl UpgradeCounter {
    /// Takes a slot unless `limit` are taken.
    pub fn try_acquire(&self, limit: Option<u64>) -> Option<UpgradePermit> {
        let limit = limit.unwrap_or(u64::MAX);
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1))
            .ok()
            .map(|_| UpgradePermit { active: Arc::clone(&self.active) })
    }

    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Acquire)
    }
}

/// One upgraded connection's slot; given back on drop.
pub(crate) struct UpgradePermit {
    active: Arc<AtomicU64>,
}

impl Drop for UpgradePermit {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What is left in a connection's place once its IO was handed over: reads
/// end, writes fail.
pub(crate) struct Detached;

impl AsyncRead for Detached {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, _: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Detached {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::ErrorKind::NotConnected.into()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl ConnectionIo for Detached {
    fn poll_read_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
