//! permessage-deflate: the offer parser, the inflater of a client's
//! frames and the server's deflater on arbitrary bytes (never a panic),
//! and a client's compressed message inflated back unchanged.
#![no_main]

use kite_server::websocket::deflate_fuzzing::{codecs, round_trip};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &[u8], u16, u8)| {
    let (header, wire, split, window_bits) = input;
    codecs(header, wire, usize::from(split));
    round_trip(wire, window_bits);
});
