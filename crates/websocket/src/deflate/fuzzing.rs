//! permessage-deflate's parsers and codecs on arbitrary bytes, for the
//! fuzz targets (`fuzz/fuzz_targets/websocket_deflate.rs`).

use bytes::BytesMut;
use flate2::{Compress, Compression, FlushCompress};
use http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

use super::{negotiate, Agreed, DeflateOptions, Deflater, Inflater, TAIL};

/// The most a fuzzed inflater may write for one input: its frame limit.
const MAX_FRAME: usize = 1 << 20;

/// Negotiates an offer from `header` (any bytes), then runs the agreed
/// codecs over `wire`: the inflater reads it as a client's frames, fed in
/// two pieces split at `split`, and the deflater reads it as frames
/// tungstenite wrote. Neither may panic; an error is a refusal.
pub fn codecs(header: &[u8], wire: &[u8], split: usize) {
    let agreed = HeaderValue::from_bytes(header)
        .ok()
        .and_then(|value| negotiate([&value], &DeflateOptions::default()))
        .unwrap_or_else(|| agreed(15, true));
    let mut inflater = Inflater::new(agreed.client_no_context_takeover, Some(MAX_FRAME));
    let (first, second) = wire.split_at(split.min(wire.len()));
    let mut out = BytesMut::new();
    for piece in [first, second] {
        let mut input = BytesMut::from(piece);
        while let Ok(true) = inflater.process(&mut input, &mut out) {
            assert!(out.len() <= wire.len() + 16 + MAX_FRAME * (1 + wire.len() / 2), "inflated past the frame limit");
        }
    }
    let mut deflater = Deflater::new(&agreed);
    let _ = deflater.write(wire, &mut BytesMut::new());
}

/// Compresses `message` as a client does (raw deflate, sync flush, tail
/// removed), sends it as one masked frame, and inflates it: what comes
/// out is one frame that carries `message` unchanged.
pub fn round_trip(message: &[u8], window_bits: u8) {
    let window_bits = window_bits.clamp(9, 15);
    let mut compress = Compress::new_with_window_bits(Compression::fast(), false, window_bits);
    let mut payload = Vec::with_capacity(message.len() + 64);
    while compress.total_in() < message.len() as u64 || payload.is_empty() {
        payload.reserve(message.len() + 64);
        let consumed = compress.total_in() as usize;
        compress.compress_vec(&message[consumed..], &mut payload, FlushCompress::Sync).expect("deflate compresses");
    }
    if payload.ends_with(&TAIL) {
        payload.truncate(payload.len() - TAIL.len());
    }
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let header = FrameHeader {
        is_final: true,
        rsv1: true,
        opcode: OpCode::Data(Data::Binary),
        mask: Some(mask),
        ..Default::default()
    };
    let mut wire = Vec::new();
    header.format(payload.len() as u64, &mut wire).expect("a frame header formats");
    wire.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));

    let mut inflater = Inflater::new(false, Some(MAX_FRAME.max(message.len() + 1)));
    let mut input = BytesMut::from(&wire[..]);
    let mut out = BytesMut::new();
    while inflater.process(&mut input, &mut out).expect("a client's deflate inflates") {}
    // The inflated message may leave as several frames, one per
    // inflated chunk: a binary frame, then continuations, the last final.
    let mut cursor = std::io::Cursor::new(&out[..]);
    let mut unmasked = Vec::with_capacity(message.len());
    let mut frames = 0;
    loop {
        let (frame, length) = FrameHeader::parse(&mut cursor).expect("a frame").expect("a whole frame");
        let expected = if frames == 0 { Data::Binary } else { Data::Continue };
        assert!(frame.opcode == OpCode::Data(expected) && !frame.rsv1, "frame {frames}: {frame:?}");
        let start = cursor.position() as usize;
        let mask = frame.mask.unwrap_or_default();
        unmasked.extend(out[start..start + length as usize].iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        cursor.set_position((start + length as usize) as u64);
        frames += 1;
        if frame.is_final {
            break;
        }
    }
    assert!(cursor.position() as usize == out.len(), "bytes after the final frame");
    assert!(unmasked == message, "{} bytes in, {} out", message.len(), unmasked.len());
}

fn agreed(window_bits: u8, server_no_context_takeover: bool) -> Agreed {
    Agreed::fixed(window_bits, server_no_context_takeover, &DeflateOptions::default())
}
