//! The h3 crate's QUIC traits over Kite's multiplexed transport contract,
//! so HTTP/3 runs on any `MultiplexedIo` and this crate names no QUIC
//! implementation. The one place that knows h3's transport API: a new h3
//! version changes this file.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming, StreamId, WriteBuf};
use kite_transport_core::multiplexed::{BidiStream, MultiplexedIo, RecvStream, SendStream, StreamError, StreamOpener};
use kite_transport_core::ConnectionId;

use super::watch::{self, ControlWatch, EncoderWatch, Signals, Typing, Violation};

/// HTTP/3's code for "no error", which a request stream's unread rest is
/// stopped with.
const H3_NO_ERROR: u64 = 0x100;

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

/// A connection's streams, for h3, with the unidirectional streams the
/// client opens checked on the way (`watch`).
pub(crate) struct H3Connection {
    io: Box<dyn MultiplexedIo>,
    id: ConnectionId,
    /// Unidirectional streams whose type is still arriving.
    typing: Vec<Typing>,
    /// Unidirectional streams ready for h3.
    typed: VecDeque<H3Recv>,
    /// The client's QPACK encoder stream, read by Kite.
    encoder: Option<EncoderWatch>,
    signals: Arc<Signals>,
}

impl H3Connection {
    pub fn new(io: Box<dyn MultiplexedIo>, id: ConnectionId) -> Self {
        Self { io, id, typing: Vec::new(), typed: VecDeque::new(), encoder: None, signals: Arc::default() }
    }

    /// What the client's streams tell the serving loop (its GOAWAY).
    pub fn signals(&self) -> Arc<Signals> {
        Arc::clone(&self.signals)
    }

    /// Sorts a unidirectional stream by its type.
    fn typed(&mut self, kind: u64, typing: Typing) -> Result<(), Violation> {
        let (recv, read, type_len) = typing.into_parts();
        match kind {
            watch::PUSH => return Err((watch::H3_STREAM_CREATION_ERROR, "the client opened a push stream")),
            watch::ENCODER if self.encoder.is_some() => {
                return Err((watch::H3_STREAM_CREATION_ERROR, "the client opened a second QPACK encoder stream"));
            }
            watch::ENCODER => self.encoder = Some(EncoderWatch::new(recv, read, type_len)),
            watch::CONTROL => {
                let mut control = ControlWatch::new(Arc::clone(&self.signals));
                control.observe(&read[type_len..]);
                self.typed.push_back(H3Recv { recv, prefix: read, control: Some(control), ended: false });
            }
            _ => self.typed.push_back(H3Recv { recv, prefix: read, control: None, ended: false }),
        }
        Ok(())
    }

    /// Closes the connection with the error the client earned.
    fn violated(&mut self, (code, why): Violation) -> ConnectionErrorIncoming {
        tracing::debug!(
            target: "kite::http3",
            connection_id = %self.id,
            code = format_args!("{code:#x}"),
            "{why}; closing the connection"
        );
        self.io.close(code, why.as_bytes());
        ConnectionErrorIncoming::ApplicationClose { error_code: code }
    }
}

/// Opens streams beside the connection (h3's control and QPACK streams).
pub(crate) struct H3Opener {
    opener: Box<dyn StreamOpener>,
    signals: Arc<Signals>,
}

/// The sending half of a stream.
pub(crate) struct H3Send {
    send: Box<dyn SendStream>,
    writing: Option<WriteBuf<Bytes>>,
    /// Whether the connection is closing, which makes the stream's end
    /// wait for the client's acknowledgement.
    signals: Arc<Signals>,
}

/// The receiving half of a stream.
pub(crate) struct H3Recv {
    recv: Box<dyn RecvStream>,
    /// Bytes Kite read first (a unidirectional stream's type), handed on
    /// before the rest.
    prefix: Bytes,
    /// Set on the client's control stream.
    control: Option<ControlWatch>,
    /// The stream reached its end.
    ended: bool,
}

impl Drop for H3Recv {
    /// A stream dropped before its end asks the client to stop sending
    /// with H3_NO_ERROR, not the transport's default code 0, which is no
    /// HTTP/3 code. A stream already stopped keeps its first code.
    fn drop(&mut self) {
        if !self.ended {
            self.recv.stop_sending(H3_NO_ERROR);
        }
    }
}

/// Both halves.
pub(crate) struct H3Bidi {
    send: H3Send,
    recv: H3Recv,
}

impl H3Send {
    fn new(send: Box<dyn SendStream>, signals: &Arc<Signals>) -> Self {
        Self { send, writing: None, signals: Arc::clone(signals) }
    }
}

impl H3Recv {
    fn new(recv: Box<dyn RecvStream>) -> Self {
        Self { recv, prefix: Bytes::new(), control: None, ended: false }
    }
}

fn bidi(stream: BidiStream, signals: &Arc<Signals>) -> H3Bidi {
    let (send, recv) = stream.split();
    H3Bidi { send: H3Send::new(send, signals), recv: H3Recv::new(recv) }
}

fn open_bidi(
    opener: &mut dyn StreamOpener,
    signals: &Arc<Signals>,
    cx: &mut Context<'_>,
) -> Poll<Result<H3Bidi, StreamErrorIncoming>> {
    opener.poll_open_bidi(cx).map(|r| r.map(|stream| bidi(stream, signals)).map_err(stream_error))
}

fn open_send(
    opener: &mut dyn StreamOpener,
    signals: &Arc<Signals>,
    cx: &mut Context<'_>,
) -> Poll<Result<H3Send, StreamErrorIncoming>> {
    opener.poll_open_uni(cx).map(|r| r.map(|send| H3Send::new(send, signals)).map_err(stream_error))
}

impl quic::Connection<Bytes> for H3Connection {
    type RecvStream = H3Recv;
    type OpenStreams = H3Opener;

    fn poll_accept_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<H3Recv, ConnectionErrorIncoming>> {
        loop {
            match self.io.poll_accept_uni(cx) {
                Poll::Ready(Ok(recv)) => self.typing.push(Typing::new(recv)),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(connection_error(e))),
                Poll::Pending => break,
            }
        }
        let mut i = 0;
        while i < self.typing.len() {
            match self.typing[i].poll_type(cx) {
                Poll::Pending => i += 1,
                // Ended or reset before its type: tolerated (RFC 9114
                // §6.2), and a lost connection shows in the accept above.
                Poll::Ready(Ok(None) | Err(_)) => drop(self.typing.swap_remove(i)),
                Poll::Ready(Ok(Some(kind))) => {
                    let typing = self.typing.swap_remove(i);
                    if let Err(violation) = self.typed(kind, typing) {
                        return Poll::Ready(Err(self.violated(violation)));
                    }
                }
            }
        }
        if let Some(Poll::Ready(Err(violation))) = self.encoder.as_mut().map(|encoder| encoder.poll(cx)) {
            return Poll::Ready(Err(self.violated(violation)));
        }
        match self.typed.pop_front() {
            Some(recv) => Poll::Ready(Ok(recv)),
            None => Poll::Pending,
        }
    }

    fn poll_accept_bidi(&mut self, cx: &mut Context<'_>) -> Poll<Result<H3Bidi, ConnectionErrorIncoming>> {
        let signals = &self.signals;
        self.io.poll_accept_bidi(cx).map(|r| r.map(|stream| bidi(stream, signals)).map_err(connection_error))
    }

    fn opener(&self) -> H3Opener {
        H3Opener { opener: self.io.clone_opener(), signals: Arc::clone(&self.signals) }
    }
}

impl quic::OpenStreams<Bytes> for H3Connection {
    type BidiStream = H3Bidi;
    type SendStream = H3Send;

    fn poll_open_bidi(&mut self, cx: &mut Context<'_>) -> Poll<Result<H3Bidi, StreamErrorIncoming>> {
        open_bidi(&mut *self.io, &self.signals, cx)
    }

    fn poll_open_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<H3Send, StreamErrorIncoming>> {
        open_send(&mut *self.io, &self.signals, cx)
    }

    fn close(&mut self, code: h3::error::Code, reason: &[u8]) {
        self.io.close(code.into(), reason);
    }
}

impl quic::OpenStreams<Bytes> for H3Opener {
    type BidiStream = H3Bidi;
    type SendStream = H3Send;

    fn poll_open_bidi(&mut self, cx: &mut Context<'_>) -> Poll<Result<H3Bidi, StreamErrorIncoming>> {
        open_bidi(&mut *self.opener, &self.signals, cx)
    }

    fn poll_open_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<H3Send, StreamErrorIncoming>> {
        open_send(&mut *self.opener, &self.signals, cx)
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
        if self.signals.closing() {
            // The connection closes once its streams are done, and a
            // close drops what the client has not acknowledged: wait.
            Pin::new(&mut *self.send).poll_shutdown(cx).map_err(stream_error)
        } else {
            self.send.poll_finish(cx).map_err(stream_error)
        }
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
        if !self.prefix.is_empty() {
            return Poll::Ready(Ok(Some(std::mem::take(&mut self.prefix))));
        }
        let data = ready!(self.recv.poll_read_chunk(cx)).map_err(stream_error)?;
        match (&data, &mut self.control) {
            (Some(chunk), Some(control)) => control.observe(chunk),
            (None, _) => self.ended = true,
            _ => {}
        }
        Poll::Ready(Ok(data))
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
