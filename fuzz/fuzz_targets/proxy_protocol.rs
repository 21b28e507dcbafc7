//! The PROXY protocol v1/v2 reader on arbitrary first bytes, read in
//! pieces of every size: it must never panic, read past a header it
//! accepts, or replay other bytes than it read.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &[u8])| {
    let (piece, data) = input;
    kite_connection_middleware::proxy_protocol::fuzz(data, usize::from(piece));
});
