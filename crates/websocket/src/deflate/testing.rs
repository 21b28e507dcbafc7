//! What the codecs' tests share: frames made and split by hand, and
//! messages compressed and inflated the way a peer does, with flate2.

use std::io::Cursor;

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress};
use tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

use super::{Agreed, DeflateOptions, TAIL};

/// What a connection's codecs run with, for a server window and context
/// mode, the rest from `options`.
pub(super) fn agreed(window_bits: u8, server_no_context_takeover: bool, options: &DeflateOptions) -> Agreed {
    Agreed::fixed(window_bits, server_no_context_takeover, options)
}

/// One frame: a client's when `mask` is set, the payload masked with it.
pub(super) fn frame(opcode: OpCode, fin: bool, rsv1: bool, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader { is_final: fin, rsv1, opcode, mask, ..FrameHeader::default() };
    let mut out = Vec::new();
    header.format(payload.len() as u64, &mut out).unwrap();
    let mask = mask.unwrap_or_default();
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Splits `wire` into (header, unmasked payload) frames.
pub(super) fn frames(wire: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut cursor = Cursor::new(wire);
    let mut frames = Vec::new();
    while let Some((header, length)) = FrameHeader::parse(&mut cursor).unwrap() {
        let start = cursor.position() as usize;
        let mask = header.mask.unwrap_or_default();
        let payload = wire[start..start + length as usize].iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
        frames.push((header, payload));
        cursor.set_position(start as u64 + length);
    }
    frames
}

/// Compresses `message` as RFC 7692 says: a sync flush, tail removed.
pub(super) fn deflate(compress: &mut Compress, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let start = compress.total_in();
    // compress_vec writes no further than the vector's capacity: go on
    // until the input is in and the flush ended with room to spare.
    loop {
        let consumed = usize::try_from(compress.total_in() - start).unwrap();
        out.reserve(message.len() - consumed + 64);
        compress.compress_vec(&message[consumed..], &mut out, FlushCompress::Sync).unwrap();
        let all_in = compress.total_in() - start == message.len() as u64;
        if all_in && out.len() < out.capacity() {
            break;
        }
    }
    if !out.ends_with(&TAIL) {
        // Nothing since the last flush: zlib-rs emits no empty block, and
        // RFC 7692 §7.2.3.6 lets a sender send an empty message as 0x00.
        assert!(message.is_empty() && out.is_empty(), "a flush without its tail");
        return vec![0x00];
    }
    out.truncate(out.len() - TAIL.len());
    out
}

/// Inflates one message's compressed payload the way a peer does.
pub(super) fn inflate(decompress: &mut Decompress, payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&TAIL);
    let mut out = Vec::with_capacity(1 << 20);
    decompress.decompress_vec(&input, &mut out, FlushDecompress::Sync).unwrap();
    out
}
