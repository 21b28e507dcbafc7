//! The outbound half: the frames tungstenite writes, with data messages
//! compressed and marked with RSV1.

use std::io;
use std::io::Cursor;

use bytes::{Buf, BytesMut};
use flate2::{Compress, Compression, FlushCompress};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

use super::{put_header, Agreed, TAIL};

/// Collects the frames tungstenite writes and emits each whole frame:
/// a data message of at least `min_size` bytes compressed (RSV1 on its
/// first frame), anything else as written.
pub(crate) struct Deflater {
    compress: Option<Compress>,
    level: Compression,
    /// 9 to 15; 8 compresses with stored blocks, which need no window.
    window_bits: u8,
    /// `server_no_context_takeover`: a fresh context for every message,
    /// from the thread's shared compressor when the message is one frame.
    reset_after_message: bool,
    min_size: usize,
    /// Bytes tungstenite wrote that do not yet make a whole frame.
    pending: BytesMut,
    /// While a fragmented message is being sent: whether it is compressed.
    message: Option<bool>,
    scratch: Vec<u8>,
}

impl Deflater {
    pub(crate) fn new(agreed: &Agreed) -> Self {
        let stored = agreed.server_window_bits < 9;
        Self {
            compress: None,
            level: if stored { Compression::none() } else { Compression::new(agreed.level.min(9)) },
            window_bits: agreed.server_window_bits.max(9),
            reset_after_message: agreed.server_no_context_takeover,
            min_size: agreed.min_size,
            pending: BytesMut::new(),
            message: None,
            scratch: Vec::new(),
        }
    }

    /// Takes bytes tungstenite wrote and appends every frame they complete,
    /// transformed, to `out`. Whole frames go straight from `data`; only a
    /// frame cut across writes is held.
    ///
    /// # Errors
    ///
    /// Only if the compressor fails, which it does not on valid input.
    pub(crate) fn write(&mut self, data: &[u8], out: &mut BytesMut) -> io::Result<()> {
        if self.pending.is_empty() {
            let used = self.frames(data, out)?;
            self.pending.extend_from_slice(&data[used..]);
        } else {
            self.pending.extend_from_slice(data);
            let pending = std::mem::take(&mut self.pending);
            let used = self.frames(&pending, out);
            self.pending = pending;
            self.pending.advance(used?);
        }
        Ok(())
    }

    /// Emits every whole frame at the start of `data`; returns the bytes
    /// they took.
    fn frames(&mut self, data: &[u8], out: &mut BytesMut) -> io::Result<usize> {
        let mut used = 0;
        loop {
            let rest = &data[used..];
            let mut cursor = Cursor::new(rest);
            let Ok(Some((header, length))) = FrameHeader::parse(&mut cursor) else { return Ok(used) };
            let header_len = cursor.position() as usize;
            let Some(total) = usize::try_from(length).ok().and_then(|n| n.checked_add(header_len)) else {
                return Err(io::Error::other("permessage-deflate: a frame too large to hold"));
            };
            if rest.len() < total {
                return Ok(used);
            }
            self.frame(header, &rest[..total], header_len, out)?;
            used += total;
        }
    }

    /// Emits one whole `frame` whose header, `header`, takes its first
    /// `header_len` bytes.
    fn frame(&mut self, header: FrameHeader, frame: &[u8], header_len: usize, out: &mut BytesMut) -> io::Result<()> {
        let payload = &frame[header_len..];
        let compress = match header.opcode {
            OpCode::Data(Data::Text | Data::Binary) if self.message.is_none() => {
                !header.is_final || payload.len() >= self.min_size
            }
            OpCode::Data(Data::Continue) => self.message.unwrap_or(false),
            _ => false,
        };
        if let OpCode::Data(_) = header.opcode {
            self.message = if header.is_final { None } else { Some(compress) };
        }
        if !compress || header.mask.is_some() || header.rsv1 {
            out.extend_from_slice(frame);
            return Ok(());
        }
        let (level, window_bits) = (self.level, self.window_bits);
        self.scratch.clear();
        let whole_message = header.is_final && header.opcode != OpCode::Data(Data::Continue);
        if self.reset_after_message && whole_message {
            // No context to keep: the thread's shared compressor, reset.
            SHARED.with(|shared| {
                let mut shared = shared.borrow_mut();
                let key = (level.level(), window_bits);
                let i = match shared.iter().position(|(k, _)| *k == key) {
                    Some(i) => i,
                    None => {
                        shared.push((key, Compress::new_with_window_bits(level, false, window_bits)));
                        shared.len() - 1
                    }
                };
                let compressor = &mut shared[i].1;
                compressor.reset();
                compress_into(compressor, payload, &mut self.scratch)
            })?;
        } else {
            let compressor =
                self.compress.get_or_insert_with(|| Compress::new_with_window_bits(level, false, window_bits));
            compress_into(compressor, payload, &mut self.scratch)?;
        }
        if header.is_final {
            if self.scratch.ends_with(&TAIL) {
                self.scratch.truncate(self.scratch.len() - TAIL.len());
            }
            if self.scratch.is_empty() {
                // RFC 7692 §7.2.3.6: an empty message is one 0x00 octet.
                self.scratch.push(0);
            }
            if self.reset_after_message {
                self.compress = None;
            }
        }
        let header = FrameHeader { rsv1: header.opcode != OpCode::Data(Data::Continue), ..header };
        put_header(out, &header, self.scratch.len());
        out.extend_from_slice(&self.scratch);
        Ok(())
    }
}

thread_local! {
    /// Each runtime thread's compressors for messages that carry no
    /// context, one per (level, window) in use: a connection without
    /// context takeover holds none of its own.
    static SHARED: std::cell::RefCell<Vec<((u32, u8), Compress)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Compresses `input` with a sync flush, appending to `out`.
fn compress_into(compressor: &mut Compress, mut input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    loop {
        out.reserve(input.len() / 2 + 64);
        let before = compressor.total_in();
        compressor
            .compress_vec(input, out, FlushCompress::Sync)
            .map_err(|error| io::Error::other(format!("permessage-deflate: {error}")))?;
        input = &input[(compressor.total_in() - before) as usize..];
        // Done when all input went in and the flush fit in the output.
        if input.is_empty() && out.len() < out.capacity() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deflate::testing::{agreed, frame, frames, inflate};
    use crate::deflate::DeflateOptions;
    use flate2::Decompress;

    fn server_frame(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
        frame(opcode, fin, false, None, payload)
    }

    #[test]
    fn messages_are_compressed_across_writes_with_the_context_kept() {
        let options = DeflateOptions { min_size: 64, ..DeflateOptions::default() };
        let mut deflater = Deflater::new(&agreed(15, false, &options));
        let text = "the quick brown fox ".repeat(500);
        let mut wire = server_frame(OpCode::Data(Data::Text), true, text.as_bytes());
        wire.extend(server_frame(OpCode::Data(Data::Binary), true, b"tiny"));
        wire.extend(server_frame(OpCode::Data(Data::Text), true, text.as_bytes()));
        let mut out = BytesMut::new();
        for piece in wire.chunks(7) {
            deflater.write(piece, &mut out).unwrap();
        }
        let frames = frames(&out);
        assert_eq!(frames.len(), 3);
        let mut decompress = Decompress::new(false);
        assert!(frames[0].0.rsv1 && frames[0].1.len() < text.len() / 10);
        assert_eq!(inflate(&mut decompress, &frames[0].1), text.as_bytes());
        assert!(!frames[1].0.rsv1, "under min_size: sent as it is");
        assert_eq!(frames[1].1, b"tiny");
        assert!(frames[2].1.len() < frames[0].1.len(), "the second copy refers to the first");
        assert_eq!(inflate(&mut decompress, &frames[2].1), text.as_bytes());
    }

    #[test]
    fn without_context_takeover_each_message_stands_alone() {
        let mut deflater = Deflater::new(&agreed(10, true, &DeflateOptions::default()));
        let text = "abcdefgh".repeat(100);
        let mut out = BytesMut::new();
        for _ in 0..2 {
            deflater.write(&server_frame(OpCode::Data(Data::Text), true, text.as_bytes()), &mut out).unwrap();
        }
        let frames = frames(&out);
        assert_eq!(frames[0].1, frames[1].1);
        assert_eq!(inflate(&mut Decompress::new_with_window_bits(false, 10), &frames[1].1), text.as_bytes());
    }

    #[test]
    fn window_8_sends_stored_blocks_and_fragments_keep_rsv1_on_the_first() {
        let options = DeflateOptions { min_size: 64, ..DeflateOptions::default() };
        let mut deflater = Deflater::new(&agreed(8, false, &options));
        let mut out = BytesMut::new();
        deflater.write(&server_frame(OpCode::Data(Data::Binary), false, &[7; 100]), &mut out).unwrap();
        deflater.write(&server_frame(OpCode::Data(Data::Continue), true, &[7; 100]), &mut out).unwrap();
        deflater.write(&server_frame(OpCode::Data(Data::Binary), true, &[]), &mut out).unwrap();
        let frames = frames(&out);
        assert!(frames[0].0.rsv1 && !frames[1].0.rsv1);
        assert!(frames[0].1.len() > 100, "stored, not compressed");
        let mut payload = frames[0].1.clone();
        payload.extend_from_slice(&frames[1].1);
        // flate2 inflates with windows of 9 to 15; stored blocks need none.
        assert_eq!(inflate(&mut Decompress::new_with_window_bits(false, 9), &payload), vec![7; 200]);
        assert!(!frames[2].0.rsv1, "an empty message is under min_size");
    }
}
