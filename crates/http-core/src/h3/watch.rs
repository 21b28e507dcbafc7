//! What Kite checks on the unidirectional streams a client opens, where
//! the h3 crate does not: each stream's type (a client may not open a
//! push stream, RFC 9114 §6.2.2), the QPACK encoder stream's instructions
//! against the dynamic table capacity Kite advertises, which is 0 (RFC
//! 9204 §4.3), and the client's GOAWAY on its control stream, which Kite
//! answers with its own.
//!
//! A stream's type is read here first; what was read is handed to h3
//! ahead of the rest, so h3 sees the stream whole. The encoder stream is
//! read by Kite alone: h3 keeps it without reading it.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::task::AtomicWaker;
use kite_transport_core::multiplexed::{RecvStream, StreamError};

/// Unidirectional stream types (RFC 9114 §6.2, RFC 9204 §4.2).
pub(super) const CONTROL: u64 = 0x00;
pub(super) const PUSH: u64 = 0x01;
pub(super) const ENCODER: u64 = 0x02;

/// HTTP/3 and QPACK error codes a connection closes with.
pub(super) const H3_CLOSED_CRITICAL_STREAM: u64 = 0x104;
pub(super) const H3_STREAM_CREATION_ERROR: u64 = 0x103;
pub(super) const QPACK_ENCODER_STREAM_ERROR: u64 = 0x201;

/// The GOAWAY frame's type.
const GOAWAY: u64 = 0x07;

/// A connection error Kite found: the code to close with, and why.
pub(super) type Violation = (u64, &'static str);

/// What a connection's watched streams tell its serving loop.
#[derive(Default)]
pub(crate) struct Signals {
    goaway: AtomicBool,
    waker: AtomicWaker,
    /// The server sent GOAWAY: streams that end from now on wait for the
    /// client's acknowledgement, so that closing the connection once they
    /// have loses nothing.
    closing: AtomicBool,
}

impl Signals {
    /// The server has sent GOAWAY and will close the connection once its
    /// streams are done.
    pub fn set_closing(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// Whether [`set_closing`](Self::set_closing) was called.
    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Ready once the client has sent GOAWAY.
    pub fn poll_goaway(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.goaway_received() {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.goaway_received() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Whether the client has sent GOAWAY.
    pub fn goaway_received(&self) -> bool {
        self.goaway.load(Ordering::Acquire)
    }

    fn note_goaway(&self) {
        self.goaway.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// A QUIC variable-length integer read a byte at a time (RFC 9000 §16).
#[derive(Default, Clone, Copy)]
struct VarInt {
    value: u64,
    left: u8,
}

impl VarInt {
    /// Takes one byte; the integer once it is whole.
    fn push(&mut self, byte: u8) -> Option<u64> {
        if self.left == 0 {
            self.left = 1 << (byte >> 6);
            self.value = u64::from(byte & 0x3f);
        } else {
            self.value = (self.value << 8) | u64::from(byte);
        }
        self.left -= 1;
        (self.left == 0).then_some(self.value)
    }
}

/// A unidirectional stream whose type is being read.
pub(super) struct Typing {
    pub recv: Box<dyn RecvStream>,
    /// The bytes read so far, handed to h3 ahead of the rest.
    read: BytesMut,
    /// What the last read returned past the type.
    rest: Bytes,
    varint: VarInt,
}

impl Typing {
    pub fn new(recv: Box<dyn RecvStream>) -> Self {
        Self { recv, read: BytesMut::new(), rest: Bytes::new(), varint: VarInt::default() }
    }

    /// The stream's type, or `None` when it ended before one (RFC 9114
    /// §6.2: tolerated, the stream is dropped).
    pub fn poll_type(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<u64>>> {
        loop {
            let Some(mut chunk) = std::task::ready!(self.recv.poll_read_chunk(cx))? else {
                return Poll::Ready(Ok(None));
            };
            while chunk.has_remaining() {
                let byte = chunk.get_u8();
                self.read.extend_from_slice(&[byte]);
                if let Some(kind) = self.varint.push(byte) {
                    self.rest = chunk;
                    return Poll::Ready(Ok(Some(kind)));
                }
            }
        }
    }

    /// The stream, what was read of it (its type included) to hand on
    /// first, and how many of those bytes are the type.
    pub fn into_parts(self) -> (Box<dyn RecvStream>, Bytes, usize) {
        let mut read = self.read;
        let type_len = read.len();
        read.extend_from_slice(&self.rest);
        (self.recv, read.freeze(), type_len)
    }
}

/// Where the control stream's frame parser stands.
#[derive(Clone, Copy)]
enum Frame {
    Type(VarInt),
    Length(u64, VarInt),
    Payload(u64),
}

/// Watches the frames of the client's control stream as they pass to h3
/// and notes a GOAWAY.
pub(super) struct ControlWatch {
    frame: Frame,
    signals: std::sync::Arc<Signals>,
}

impl ControlWatch {
    pub fn new(signals: std::sync::Arc<Signals>) -> Self {
        Self { frame: Frame::Type(VarInt::default()), signals }
    }

    /// Follows `data`, the next bytes of the stream after its type.
    pub fn observe(&mut self, mut data: &[u8]) {
        while let Some((&byte, rest)) = data.split_first() {
            self.frame = match self.frame {
                Frame::Type(mut varint) => match varint.push(byte) {
                    Some(kind) => Frame::Length(kind, VarInt::default()),
                    None => Frame::Type(varint),
                },
                Frame::Length(kind, mut varint) => match varint.push(byte) {
                    Some(length) => {
                        if kind == GOAWAY {
                            self.signals.note_goaway();
                        }
                        if length == 0 {
                            Frame::Type(VarInt::default())
                        } else {
                            Frame::Payload(length)
                        }
                    }
                    None => Frame::Length(kind, varint),
                },
                Frame::Payload(left) => {
                    // Skip the payload at once, not byte by byte.
                    let skip = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    data = &data[skip..];
                    let left = left - skip as u64;
                    self.frame = if left == 0 { Frame::Type(VarInt::default()) } else { Frame::Payload(left) };
                    continue;
                }
            };
            data = rest;
        }
    }
}

/// The client's QPACK encoder stream, read by Kite. With the dynamic
/// table capacity Kite advertises (0), the one valid instruction is Set
/// Dynamic Table Capacity to 0, the byte `0x20`; any other byte is an
/// instruction that exceeds the table (RFC 9204 §3.2.3, §4.3).
pub(super) struct EncoderWatch {
    recv: Box<dyn RecvStream>,
    pending: Bytes,
}

impl EncoderWatch {
    /// The stream, with `read` (its type, `type_len` bytes, and what
    /// followed) already read.
    pub fn new(recv: Box<dyn RecvStream>, mut read: Bytes, type_len: usize) -> Self {
        read.advance(type_len);
        Self { recv, pending: read }
    }

    /// Reads what arrived; `Ready(Err)` with the connection error the
    /// stream earned, `Pending` while it is well behaved.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Violation>> {
        loop {
            if let Some(&byte) = self.pending.iter().find(|&&b| b != SET_CAPACITY_ZERO) {
                return Poll::Ready(Err((QPACK_ENCODER_STREAM_ERROR, instruction(byte))));
            }
            match self.recv.poll_read_chunk(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(Some(chunk))) => self.pending = chunk,
                Poll::Ready(Ok(None)) => {
                    return Poll::Ready(Err((H3_CLOSED_CRITICAL_STREAM, "the client closed its QPACK encoder stream")));
                }
                Poll::Ready(Err(e)) => {
                    return match StreamError::of(&e) {
                        Some(StreamError::Reset { .. }) => {
                            Poll::Ready(Err((H3_CLOSED_CRITICAL_STREAM, "the client reset its QPACK encoder stream")))
                        }
                        // The connection itself ended: h3 sees it too.
                        _ => Poll::Pending,
                    };
                }
            }
        }
    }
}

/// Set Dynamic Table Capacity (`001` and a 5-bit prefix integer) to 0.
const SET_CAPACITY_ZERO: u8 = 0x20;

/// Names the encoder instruction that starts with `byte`.
fn instruction(byte: u8) -> &'static str {
    if byte & 0x80 != 0 || byte & 0x40 != 0 {
        "an insert into a dynamic table whose capacity is 0"
    } else if byte & 0x20 != 0 {
        "a dynamic table capacity above the maximum advertised (0)"
    } else {
        "a duplicate of an entry in a dynamic table whose capacity is 0"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_of_every_length() {
        for (bytes, value) in [
            (&[0x25][..], 37),
            (&[0x7b, 0xbd][..], 15_293),
            (&[0x9d, 0x7f, 0x3e, 0x7d][..], 494_878_333),
            (&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c][..], 151_288_809_941_952_652),
        ] {
            let mut varint = VarInt::default();
            let (last, head) = bytes.split_last().unwrap();
            assert!(head.iter().all(|&b| varint.push(b).is_none()));
            assert_eq!(varint.push(*last), Some(value));
        }
    }

    #[test]
    fn a_goaway_is_noticed_in_any_split() {
        // SETTINGS with one setting, an unknown frame, then GOAWAY(0).
        let stream = [0x04, 0x02, 0x06, 0x40, 0x21, 0x03, 1, 2, 3, 0x07, 0x01, 0x00];
        for split in 0..stream.len() {
            let signals = std::sync::Arc::new(Signals::default());
            let mut watch = ControlWatch::new(signals.clone());
            watch.observe(&stream[..split]);
            assert_eq!(signals.goaway_received(), split >= 11, "split at {split}");
            watch.observe(&stream[split..]);
            assert!(signals.goaway_received(), "split at {split}");
        }
        let signals = std::sync::Arc::new(Signals::default());
        ControlWatch::new(signals.clone()).observe(&stream[..9]);
        assert!(!signals.goaway_received());
    }

    #[test]
    fn encoder_instructions_are_named() {
        assert_eq!(instruction(0x3f), "a dynamic table capacity above the maximum advertised (0)");
        assert_eq!(instruction(0xc0), "an insert into a dynamic table whose capacity is 0");
        assert_eq!(instruction(0x4a), "an insert into a dynamic table whose capacity is 0");
        assert_eq!(instruction(0x00), "a duplicate of an entry in a dynamic table whose capacity is 0");
    }
}
