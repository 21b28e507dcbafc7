//! An HTTP/2 stream used as a byte stream, after an extended CONNECT.

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{Response, StatusCode};
use tokio::io::ReadBuf;

use super::{PendingUpgrade, UpgradeCounter, UpgradeError, Upgraded};
use crate::{ConnectionInfo, HttpOptions};

/// An extended CONNECT waiting for the application's answer.
pub(crate) struct Switch {
    pending: PendingUpgrade,
    recv: RecvStream,
    info: ConnectionInfo,
    upgrades: UpgradeCounter,
    limit: Option<u64>,
    connection: Arc<()>,
}

impl Switch {
    pub fn new(
        pending: PendingUpgrade,
        recv: RecvStream,
        info: &ConnectionInfo,
        connection: Arc<()>,
        options: &HttpOptions,
    ) -> Self {
        Self {
            connection,
            pending,
            recv,
            info: info.clone(),
            upgrades: options.upgrades.clone(),
            limit: options.limits.max_concurrent_upgraded_connections,
        }
    }

    /// Sends the application's `2xx` head without END_STREAM and hands the
    /// stream to its `OnUpgrade`; past the upgraded-connection limit, sends
    /// `503` instead.
    pub fn switch<B>(self, response: Response<B>, mut respond: SendResponse<Bytes>, server_header: bool) {
        let Some(permit) = self.upgrades.try_acquire(self.limit) else {
            tracing::warn!(
                connection_id = %self.info.id(),
                limit = self.limit,
                "MaxConcurrentUpgradedConnections reached; the extended CONNECT is refused with 503"
            );
            let mut refused = Response::new(());
            *refused.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            let _ = respond.send_response(refused, true);
            self.pending.fail(UpgradeError::LimitReached);
            return;
        };
        let (mut parts, _) = response.into_parts();
        crate::h2::respond::prepare_headers(&mut parts.headers, server_header);
        match respond.send_response(Response::from_parts(parts, ()), false) {
            Ok(send) => {
                tracing::debug!(connection_id = %self.info.id(), "HTTP/2 stream upgraded by extended CONNECT");
                let tunnel = H2Tunnel::new(send, self.recv, self.connection);
                self.pending.fulfill(Upgraded::http2(tunnel, self.info, permit));
            }
            Err(e) => {
                tracing::debug!(error = %e, "the client reset the stream before the upgrade");
                self.pending.fail(UpgradeError::NotSwitched);
            }
        }
    }
}

/// DATA frames both ways: reads release flow-control capacity as they are
/// taken, writes wait for capacity. Shutdown, or dropping the tunnel,
/// sends END_STREAM after the data written.
pub(crate) struct H2Tunnel {
    send: SendStream<Bytes>,
    recv: RecvStream,
    pending: Bytes,
    ended: bool,
    /// Tells the connection a tunnel is open, so it is not idle.
    _connection: Arc<()>,
}

impl H2Tunnel {
    pub fn new(send: SendStream<Bytes>, recv: RecvStream, connection: Arc<()>) -> Self {
        Self { send, recv, pending: Bytes::new(), ended: false, _connection: connection }
    }

    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.pending.is_empty() {
            match self.recv.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    self.pending = data;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(to_io(e))),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending[..n]);
        self.pending.advance(n);
        Poll::Ready(Ok(()))
    }

    pub fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.send.reserve_capacity(buf.len());
        match self.send.poll_capacity(cx) {
            Poll::Ready(Some(Ok(granted))) if granted > 0 => {
                let n = granted.min(buf.len());
                self.send.send_data(Bytes::copy_from_slice(&buf[..n]), false).map_err(to_io)?;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Some(Ok(_))) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Err(to_io(e))),
            Poll::Ready(None) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            Poll::Pending => Poll::Pending,
        }
    }

    pub fn poll_shutdown(&mut self) -> Poll<io::Result<()>> {
        if !self.ended {
            self.ended = true;
            self.send.send_data(Bytes::new(), true).map_err(to_io)?;
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for H2Tunnel {
    /// Like closing a socket: what was written is still delivered, then
    /// END_STREAM; h2 resets the receiving half once that is flushed.
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.send.send_data(Bytes::new(), true);
        }
    }
}

fn to_io(error: h2::Error) -> io::Error {
    if error.is_io() {
        return error.into_io().unwrap_or_else(|| io::ErrorKind::Other.into());
    }
    io::Error::new(io::ErrorKind::ConnectionReset, error)
}
