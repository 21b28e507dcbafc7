//! The chunked decoder on arbitrary bytes, fed in pieces whose size the
//! first byte picks: it must never panic, and never produce more body bytes
//! than it was given.
#![no_main]

use bytes::BytesMut;
use kite_http_core::fuzzing::{ChunkedDecoder, Decoded, Decoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let step = usize::from(step.max(1));
    let mut decoder = Decoder::Chunked(ChunkedDecoder::new(1024));
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut produced = 0;
    loop {
        match decoder.decode(&mut buf) {
            Ok(Decoded::Data(bytes)) => {
                produced += bytes.len();
                assert!(produced <= fed);
            }
            Ok(Decoded::Trailers(_)) => {}
            Ok(Decoded::Done) | Err(_) => return,
            Ok(Decoded::NeedMore) => {
                if fed == input.len() {
                    return;
                }
                let end = (fed + step).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
            }
        }
    }
});
