//! quinn's stream halves as Kite's [`SendStream`] and [`RecvStream`], with
//! quinn's errors turned into [`StreamError`]s.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use kite_transport_core::multiplexed::{RecvStream, SendStream, StreamError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

type Stopped = Pin<Box<dyn Future<Output = Result<Option<quinn::VarInt>, quinn::StoppedError>> + Send + Sync>>;

/// The sending half of a QUIC stream. Its shutdown finishes the stream
/// and completes once the peer has acknowledged everything sent (or
/// stopped the stream): a connection closed after that loses nothing.
pub(crate) struct QuicSend {
    stream: quinn::SendStream,
    acknowledged: Option<Stopped>,
}

impl QuicSend {
    pub fn new(stream: quinn::SendStream) -> Self {
        Self { stream, acknowledged: None }
    }
}

/// The receiving half of a QUIC stream.
pub(crate) struct QuicRecv(pub quinn::RecvStream);

pub(crate) fn connection_error(error: &quinn::ConnectionError) -> StreamError {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => {
            StreamError::ApplicationClosed { code: close.error_code.into_inner() }
        }
        quinn::ConnectionError::TimedOut => StreamError::TimedOut,
        other => StreamError::Closed(other.to_string()),
    }
}

fn read_error(error: quinn::ReadError) -> io::Error {
    match error {
        quinn::ReadError::Reset(code) => StreamError::Reset { code: code.into_inner() }.into(),
        quinn::ReadError::ConnectionLost(e) => connection_error(&e).into(),
        other => StreamError::Closed(other.to_string()).into(),
    }
}

fn write_error(error: quinn::WriteError) -> io::Error {
    match error {
        quinn::WriteError::Stopped(code) => StreamError::Stopped { code: code.into_inner() }.into(),
        quinn::WriteError::ConnectionLost(e) => connection_error(&e).into(),
        other => StreamError::Closed(other.to_string()).into(),
    }
}

fn code(code: u64) -> quinn::VarInt {
    quinn::VarInt::from_u64(code).unwrap_or(quinn::VarInt::MAX)
}

impl AsyncWrite for QuicSend {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf).map_err(write_error)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // quinn sends what it was given as soon as congestion allows.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.acknowledged.is_none() {
            // Finishing twice is harmless: the stream is already finishing.
            let _ = this.stream.finish();
            this.acknowledged = Some(Box::pin(this.stream.stopped()));
        }
        let Some(acknowledged) = this.acknowledged.as_mut() else { return Poll::Ready(Ok(())) };
        match std::task::ready!(acknowledged.as_mut().poll(cx)) {
            // All acknowledged, or the peer stopped the stream: either
            // way nothing more will be delivered.
            Ok(_) => Poll::Ready(Ok(())),
            Err(quinn::StoppedError::ConnectionLost(e)) => Poll::Ready(Err(connection_error(&e).into())),
            Err(other) => Poll::Ready(Err(StreamError::Closed(other.to_string()).into())),
        }
    }
}

impl SendStream for QuicSend {
    fn id(&self) -> u64 {
        self.stream.id().into()
    }

    fn poll_finish(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // quinn goes on delivering a finished stream's data while the
        // connection lives; a stream already finished or stopped has
        // nothing more to end.
        let _ = self.stream.finish();
        Poll::Ready(Ok(()))
    }

    fn reset(&mut self, reset_code: u64) {
        let _ = self.stream.reset(code(reset_code));
    }
}

impl AsyncRead for QuicRecv {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.0.poll_read_buf(cx, buf).map_err(read_error)
    }
}

impl RecvStream for QuicRecv {
    fn id(&self) -> u64 {
        self.0.id().into()
    }

    fn poll_read_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<bytes::Bytes>>> {
        // quinn's chunk read is cancel-safe: a future made for this poll
        // and dropped after it loses nothing.
        let read = self.0.read_chunk(usize::MAX, true);
        let chunk = std::task::ready!(std::pin::pin!(read).poll(cx)).map_err(read_error)?;
        Poll::Ready(Ok(chunk.map(|chunk| chunk.bytes)))
    }

    fn stop_sending(&mut self, stop_code: u64) {
        let _ = self.0.stop(code(stop_code));
    }
}
