//! The h3 crate's QUIC traits over Kite's multiplexed transport contract,
//! so HTTP/3 runs on any `MultiplexedIo` and this crate names no QUIC
//! implementation. The one place that knows h3's transport API: a new h3
//! version changes this file.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming, StreamId, WriteBuf};
use kite_transport_core::multiplexed::{BidiStream, MultiplexedIo, RecvStream, SendStream, StreamError, StreamOpener};

fn connection_error(error: io::Error) -> ConnectionErrorIncoming {
    match StreamError::of(&error) {
        Some(StreamError::ApplicationClosed { code }) => {
            ConnectionErrorIncoming::ApplicationClose { error_code: *code }
        }
        Some(StreamError::TimedOut) => ConnectionErrorIncoming::Timeout,
        _ => ConnectionErrorIncoming::Undefined(Arc::new(error)),
    }
}

fn stream_error(error: io::Error) -> StreamErrorIncoming {
    match StreamError::of(&error) {
        Some(StreamError::Reset { code } | StreamError::Stopped { code }) => {
            StreamErrorIncoming::StreamTerminated { error_code: *code }
        }
        Some(StreamError::ApplicationClosed { .. } | StreamError::TimedOut) => {
            StreamErrorIncoming::ConnectionErrorIncoming { connection_error: connection_error(error) }
        }
        _ => StreamErrorIncoming::Unknown(Box::new(error)),
    }
}

fn stream_id(id: u64) -> StreamId {
    // A QUIC stream id is a 62-bit varint, so the mask changes nothing.
    StreamId::try_from(id & ((1 << 62) - 1)).expect("a 62-bit stream id is valid")
}

/// A connection's streams, for h3.
pub(crate) struct H3Connection {
    io: Box<dyn MultiplexedIo>,
}

impl H3Connection {
    pub fn new(io: Box<dyn MultiplexedIo>) -> Self {
        Self { io }
    }
}

/// Opens streams beside the connection (h3's control and QPACK streams).
pub(crate) struct H3Opener {
    opener: Box<dyn StreamOpener>,
}

/// The sending half of a stream.
pub(crate) struct H3Send {
    send: Box<dyn SendStream>,
    writing: Option<WriteBuf<Bytes>>,
}

/// The receiving half of a stream.
pub(crate) struct H3Recv {
    recv: Box<dyn RecvStream>,
}

/// Both halves.
pub(crate) struct H3Bidi {
    send: H3Send,
    recv: H3Recv,
}

impl H3Send {
    fn new(send: Box<dyn SendStream>) -> Self {
        Self { send, writing: None }
    }
}

impl H3Recv {
    fn new(recv: Box<dyn RecvStream>) -> Self {
        Self { recv }
    }
}

fn bidi(stream: BidiStream) -> H3Bidi {
    let (send, recv) = stream.split();
    H3Bidi { send: H3Send::new(send), recv: H3Recv::new(recv) }
}

fn open_bidi(opener: &mut dyn StreamOpener, cx: &mut Context<'_>) -> Poll<Result<H3Bidi, StreamErrorIncoming>> {
    opener.poll_open_bidi(cx).map(|r| r.map(bidi).map_err(stream_error))
}

fn open_send(opener: &mut dyn StreamOpener, cx: &mut Context<'_>) -> Poll<Result<H3Send, StreamErrorIncoming>> {
    opener.poll_open_uni(cx).map(|r| r.map(H3Send::new).map_err(stream_error))
}

impl quic::Connection<Bytes> for H3Connection {
    type RecvStream = H3Recv;
    type OpenStreams = H3Opener;

    fn poll_accept_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<H3Recv, ConnectionErrorIncoming>> {
        self.io.poll_accept_uni(cx).map(|r| r.map(H3Recv::new).map_err(connection_error))
    }

    fn poll_accept_bidi(&mut self, cx: &mut Context<'_>) -> Poll<Result<H3Bidi, ConnectionErrorIncoming>> {
        self.io.poll_accept_bidi(cx).map(|r| r.map(bidi).map_err(connection_error))
    }

    fn opener(&self) -> H3Opener {
        H3Opener { opener: self.io.clone_opener() }
    }
}

impl quic::OpenStreams<Bytes> for H3Connection {
    type BidiStream = H3Bidi;
    type SendStream = H3Send;

    fn poll_open_bidi(&mut self, cx: &mut Context<'_>) -> Poll<Result<H3Bidi, StreamErrorIncoming>> {
        open_bidi(&mut *self.io, cx)
    }

    fn poll_open_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<H3Send, StreamErrorIncoming>> {
        open_send(&mut *self.io, cx)
    }

    fn close(&mut self, code: h3::error::Code, reason: &[u8]) {
        self.io.close(code.into(), reason);
    }
}

impl quic::OpenStreams<Bytes> for H3Opener {
    type BidiStream = H3Bidi;
    type SendStream = H3Send;

    fn poll_open_bidi(&mut self, cx: &mut Context<'_>) -> Poll<Result<H3Bidi, StreamErrorIncoming>> {
        open_bidi(&mut *self.opener, cx)
    }

    fn poll_open_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<H3Send, StreamErrorIncoming>> {
        open_send(&mut *self.opener, cx)
    }

    fn close(&mut self, code: h3::error::Code, reason: &[u8]) {
        self.opener.close(code.into(), reason);
    }
}

impl quic::SendStream<Bytes> for H3Send {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        if let Some(data) = &mut self.writing {
            while data.has_remaining() {
                let written = ready!(Pin::new(&mut *self.send).poll_write(cx, data.chunk())).map_err(stream_error)?;
                if written == 0 {
                    return Poll::Ready(Err(stream_error(io::ErrorKind::WriteZero.into())));
                }
                data.advance(written);
            }
        }
        self.writing = None;
        Poll::Ready(Ok(()))
    }

    fn send_data<T: Into<WriteBuf<Bytes>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        if self.writing.is_some() {
            // h3 waits for poll_ready before sending more; anything else is
            // a bug in the stack, and the connection fails.
            return Err(StreamErrorIncoming::ConnectionErrorIncoming {
                connection_error: ConnectionErrorIncoming::InternalError("send_data before poll_ready".into()),
            });
        }
        self.writing = Some(data.into());
        Ok(())
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        ready!(quic::SendStream::<Bytes>::poll_ready(self, cx))?;
        Pin::new(&mut *self.send).poll_shutdown(cx).map_err(stream_error)
    }

    fn reset(&mut self, reset_code: u64) {
        self.writing = None;
        self.send.reset(reset_code);
    }

    fn send_id(&self) -> StreamId {
        stream_id(self.send.id())
    }
}

impl quic::RecvStream for H3Recv {
    type Buf = Bytes;

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        self.recv.poll_read_chunk(cx).map_err(stream_error)
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.recv.stop_sending(error_code);
    }

    fn recv_id(&self) -> StreamId {
        stream_id(self.recv.id())
    }
}

impl quic::SendStream<Bytes> for H3Bidi {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_ready(cx)
    }

    fn send_data<T: Into<WriteBuf<Bytes>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        self.send.send_data(data)
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_finish(cx)
    }

    fn reset(&mut self, reset_code: u64) {
        quic::SendStream::<Bytes>::reset(&mut self.send, reset_code);
    }

    fn send_id(&self) -> StreamId {
        quic::SendStream::<Bytes>::send_id(&self.send)
    }
}

impl quic::RecvStream for H3Bidi {
    type Buf = Bytes;

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        self.recv.poll_data(cx)
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.recv.stop_sending(error_code);
    }

    fn recv_id(&self) -> StreamId {
        self.recv.recv_id()
    }
}

impl quic::BidiStream<Bytes> for H3Bidi {
    type SendStream = H3Send;
    type RecvStream = H3Recv;

    fn split(self) -> (H3Send, H3Recv) {
        (self.send, self.recv)
    }
}
