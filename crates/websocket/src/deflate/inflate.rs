//! The inbound half: frames from the client, with compressed messages
//! inflated into plain frames for tungstenite.

use std::io;
use std::io::Cursor;

use bytes::{Buf, BytesMut};
use flate2::{Decompress, FlushDecompress, Status};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

use super::{put_header, TAIL};

/// The most inflated bytes handed on per frame (and held at once).
const CHUNK: usize = 16 * 1024;

/// Turns the client's frames into frames tungstenite reads: a message
/// whose first frame carries RSV1 is unmasked and inflated, and its
/// content handed on in frames of at most [`CHUNK`] bytes (masked with a
/// zero key, as tungstenite expects from a client); every other frame is
/// copied through as it is, so tungstenite judges it (RSV1 on a control
/// frame or a continuation, an unmasked frame, and so on).
pub(crate) struct Inflater {
    decompress: Option<Decompress>,
    /// `client_no_context_takeover`: a fresh context for every message.
    reset_after_message: bool,
    /// tungstenite's frame limit, applied to compressed frames too.
    max_frame_size: u64,
    chunk: usize,
    frame: Frame,
    message: Message,
    /// Unmasked compressed bytes not yet inflated.
    compressed: BytesMut,
    scratch: Vec<u8>,
}

/// Where the inflater is in the current frame.
enum Frame {
    Header,
    /// Copying this many more payload bytes through.
    Copy(u64),
    /// Inflating a compressed frame's payload.
    Compressed {
        remaining: u64,
        mask: [u8; 4],
        offset: usize,
        fin: bool,
        tail_fed: bool,
    },
}

/// Where the inflater is in the current message.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Message {
    Between,
    Plain,
    /// A compressed message; `opcode` is the one its first handed-on frame
    /// carries, `None` once that frame went out. `ended` once the deflate
    /// stream's final block was seen.
    Compressed {
        opcode: Option<Data>,
        ended: bool,
    },
}

impl Inflater {
    /// An inflater for a connection; `max_frame_size` is tungstenite's
    /// (`None`: no limit).
    pub(crate) fn new(client_no_context_takeover: bool, max_frame_size: Option<usize>) -> Self {
        let max_frame_size = max_frame_size.map_or(u64::MAX, |n| n as u64);
        Self {
            decompress: None,
            reset_after_message: client_no_context_takeover,
            max_frame_size,
            chunk: CHUNK.min(max_frame_size.max(1) as usize),
            frame: Frame::Header,
            message: Message::Between,
            compressed: BytesMut::new(),
            scratch: Vec::new(),
        }
    }

    /// Consumes what it can of `input` (bytes from the client) and appends
    /// frames for tungstenite to `out`, at most one inflated chunk per
    /// call. `Ok(false)` when it needs more input to go on.
    ///
    /// # Errors
    ///
    /// `InvalidData` for compressed bytes that do not inflate, or a
    /// compressed frame over tungstenite's frame limit.
    pub(crate) fn process(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> io::Result<bool> {
        match self.frame {
            Frame::Header => self.header(input, out),
            Frame::Copy(remaining) => {
                let n = remaining.min(input.len() as u64) as usize;
                out.extend_from_slice(&input[..n]);
                input.advance(n);
                self.frame = if remaining == n as u64 { Frame::Header } else { Frame::Copy(remaining - n as u64) };
                Ok(n > 0 || remaining == 0)
            }
            Frame::Compressed { .. } => self.inflate(input, out),
        }
    }

    fn header(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> io::Result<bool> {
        let mut cursor = Cursor::new(&input[..]);
        let (header, length) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(false),
            // A reserved opcode: from here on everything goes to
            // tungstenite as it came, and it fails the connection.
            Err(_) => {
                self.frame = Frame::Copy(u64::MAX);
                return Ok(true);
            }
        };
        let header_len = cursor.position() as usize;
        let plain_bits = !header.rsv2 && !header.rsv3 && header.mask.is_some();
        let compressed = match (header.opcode, self.message) {
            (OpCode::Data(data @ (Data::Text | Data::Binary)), Message::Between) if header.rsv1 && plain_bits => {
                self.message = Message::Compressed { opcode: Some(data), ended: false };
                true
            }
            (OpCode::Data(Data::Continue), Message::Compressed { .. }) if !header.rsv1 && plain_bits => true,
            (OpCode::Data(Data::Text | Data::Binary), Message::Between) => {
                if !header.is_final {
                    self.message = Message::Plain;
                }
                false
            }
            (OpCode::Data(Data::Continue), Message::Plain) => {
                if header.is_final {
                    self.message = Message::Between;
                }
                false
            }
            // Control frames, and whatever breaks the rules: tungstenite
            // sees it as sent and fails the connection as RFC 6455 says.
            _ => false,
        };
        if !compressed {
            out.extend_from_slice(&input[..header_len]);
            input.advance(header_len);
            self.frame = Frame::Copy(length);
            return Ok(true);
        }
        if length > self.max_frame_size {
            return Err(invalid(format!("a compressed frame of {length} bytes is over the frame limit")));
        }
        input.advance(header_len);
        let mask = header.mask.unwrap_or_default();
        self.frame = Frame::Compressed { remaining: length, mask, offset: 0, fin: header.is_final, tail_fed: false };
        Ok(true)
    }

    fn inflate(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> io::Result<bool> {
        let Frame::Compressed { remaining, mask, offset, fin, tail_fed } = &mut self.frame else {
            unreachable!("inflate runs inside a compressed frame")
        };
        let n = (*remaining).min(input.len() as u64) as usize;
        if n > 0 {
            let start = self.compressed.len();
            self.compressed.extend_from_slice(&input[..n]);
            input.advance(n);
            unmask(&mut self.compressed[start..], *mask, *offset);
            *offset += n;
            *remaining -= n as u64;
        }
        if *remaining == 0 && *fin && !*tail_fed {
            self.compressed.extend_from_slice(&TAIL);
            *tail_fed = true;
        }
        let (fin, frame_done) = (*fin, *remaining == 0);
        if self.inflate_chunk(out)? {
            return Ok(true);
        }
        if !frame_done {
            return Ok(n > 0);
        }
        // The frame's bytes are all inflated and handed on.
        self.frame = Frame::Header;
        if fin {
            let opcode = match &mut self.message {
                Message::Compressed { opcode, .. } => opcode.take(),
                _ => None,
            };
            push_frame(out, opcode.unwrap_or(Data::Continue), true, &[]);
            self.message = Message::Between;
            self.compressed.clear();
            if self.reset_after_message {
                self.decompress = None;
            }
        }
        Ok(true)
    }

    /// Inflates what it can of the compressed bytes into one frame;
    /// `false` when nothing came out.
    fn inflate_chunk(&mut self, out: &mut BytesMut) -> io::Result<bool> {
        let Message::Compressed { opcode, ended } = &mut self.message else { return Ok(false) };
        if *ended {
            // Bytes after the final deflate block belong to no message.
            self.compressed.clear();
            return Ok(false);
        }
        let decompress = self.decompress.get_or_insert_with(|| Decompress::new_with_window_bits(false, 15));
        self.scratch.clear();
        self.scratch.reserve(self.chunk);
        let before = decompress.total_in();
        let status = decompress
            .decompress_vec(&self.compressed, &mut self.scratch, FlushDecompress::None)
            .map_err(|error| invalid(format!("a compressed message does not inflate: {error}")))?;
        self.compressed.advance((decompress.total_in() - before) as usize);
        if status == Status::StreamEnd {
            *ended = true;
            decompress.reset(false);
        }
        if self.scratch.is_empty() {
            return Ok(false);
        }
        let data = opcode.take().unwrap_or(Data::Continue);
        push_frame(out, data, false, &self.scratch);
        Ok(true)
    }
}

/// XORs `data`, which starts `offset` bytes into its frame's payload,
/// with the frame's mask: eight bytes at a time, then the rest.
fn unmask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let key: [u8; 8] = std::array::from_fn(|i| mask[(offset + i) % 4]);
    let key = u64::from_ne_bytes(key);
    let done = data.len() / 8 * 8;
    let (words, rest) = data.split_at_mut(done);
    for chunk in words.chunks_exact_mut(8) {
        let word = u64::from_ne_bytes((&*chunk).try_into().expect("eight bytes")) ^ key;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, byte) in rest.iter_mut().enumerate() {
        *byte ^= mask[(offset + done + i) % 4];
    }
}

/// Appends a client frame (masked with a zero key) carrying `payload`.
fn push_frame(out: &mut BytesMut, data: Data, is_final: bool, payload: &[u8]) {
    let header = FrameHeader { is_final, opcode: OpCode::Data(data), mask: Some([0; 4]), ..FrameHeader::default() };
    put_header(out, &header, payload.len());
    out.extend_from_slice(payload);
}

fn invalid(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("permessage-deflate: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deflate::testing::{deflate, frame, frames};
    use flate2::{Compress, Compression};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::Control;

    /// A client frame.
    fn client_frame(opcode: OpCode, rsv1: bool, fin: bool, payload: &[u8]) -> Vec<u8> {
        frame(opcode, fin, rsv1, Some([0x12, 0x34, 0x56, 0x78]), payload)
    }

    /// Feeds `wire` a byte at a time and reassembles the messages
    /// tungstenite would see.
    fn messages(inflater: &mut Inflater, wire: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
        let mut input = BytesMut::new();
        let mut out = BytesMut::new();
        for byte in wire {
            input.extend_from_slice(&[*byte]);
            while inflater.process(&mut input, &mut out).unwrap() {}
        }
        let mut messages = Vec::new();
        let mut current: Option<(OpCode, Vec<u8>)> = None;
        for (header, payload) in frames(&out) {
            assert!(!header.rsv1, "the RSV1 bit is cleared");
            assert!(payload.len() <= CHUNK);
            match header.opcode {
                OpCode::Control(_) => messages.push((header.opcode, payload)),
                OpCode::Data(Data::Continue) => current.as_mut().unwrap().1.extend(payload),
                opcode => current = Some((opcode, payload)),
            }
            if header.is_final && matches!(header.opcode, OpCode::Data(_)) {
                messages.push(current.take().unwrap());
            }
        }
        messages
    }

    #[test]
    fn compressed_plain_fragmented_and_control_frames() {
        let mut compress = Compress::new(Compression::default(), false);
        let text = "hello hello hello hello".repeat(3000);
        let first = deflate(&mut compress, text.as_bytes());
        // The same text again: the context carries over and shrinks it.
        let second = deflate(&mut compress, text.as_bytes());
        assert!(second.len() < first.len());
        let (a, b) = second.split_at(second.len() / 2);

        let mut wire = client_frame(OpCode::Data(Data::Text), true, true, &first);
        wire.extend(client_frame(OpCode::Data(Data::Binary), false, true, b"plain"));
        wire.extend(client_frame(OpCode::Data(Data::Text), true, false, a));
        wire.extend(client_frame(OpCode::Control(Control::Ping), false, true, b"p"));
        wire.extend(client_frame(OpCode::Data(Data::Continue), false, true, b));
        let got = messages(&mut Inflater::new(false, Some(16 << 20)), &wire);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], (OpCode::Data(Data::Text), text.as_bytes().to_vec()));
        assert_eq!(got[1], (OpCode::Data(Data::Binary), b"plain".to_vec()));
        assert_eq!(got[2].1, b"p");
        assert_eq!(got[3], (OpCode::Data(Data::Text), text.as_bytes().to_vec()));
    }

    #[test]
    fn unmasking_at_any_offset_matches_byte_by_byte() {
        let mask = [1, 2, 4, 8];
        for offset in 0..5 {
            for len in 0..20 {
                let mut data: Vec<u8> = (0..len as u8).collect();
                unmask(&mut data, mask, offset);
                let expected: Vec<u8> = (0..len as u8).map(|b| b ^ mask[(offset + b as usize) % 4]).collect();
                assert_eq!(data, expected, "offset {offset}, length {len}");
            }
        }
    }

    #[test]
    fn an_empty_compressed_message_is_an_empty_message() {
        let wire = client_frame(OpCode::Data(Data::Binary), true, true, &[0x00]);
        let got = messages(&mut Inflater::new(false, None), &wire);
        assert_eq!(got, vec![(OpCode::Data(Data::Binary), Vec::new())]);
    }

    #[test]
    fn corrupt_data_and_oversized_frames_are_errors() {
        let wire = client_frame(OpCode::Data(Data::Text), true, true, &[0xff; 32]);
        let mut inflater = Inflater::new(false, None);
        let (mut input, mut out) = (BytesMut::from(&wire[..]), BytesMut::new());
        let error = loop {
            match inflater.process(&mut input, &mut out) {
                Ok(true) => continue,
                Ok(false) => panic!("corrupt data was accepted"),
                Err(error) => break error,
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);

        let wire = client_frame(OpCode::Data(Data::Text), true, true, &[0; 100]);
        let mut inflater = Inflater::new(false, Some(99));
        let (mut input, mut out) = (BytesMut::from(&wire[..]), BytesMut::new());
        assert!(inflater.process(&mut input, &mut out).is_err());
    }

    #[test]
    fn rsv1_on_a_continuation_is_left_for_tungstenite_to_refuse() {
        let wire = client_frame(OpCode::Data(Data::Continue), true, true, b"x");
        let mut inflater = Inflater::new(false, None);
        let (mut input, mut out) = (BytesMut::from(&wire[..]), BytesMut::new());
        while inflater.process(&mut input, &mut out).unwrap() {}
        assert_eq!(&out[..], &wire[..], "copied through unchanged");
    }
}
