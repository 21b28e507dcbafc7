//! The request head parser on arbitrary bytes, as a pipelined connection
//! feeds it: it must consume a head, ask for more, or reject, and never
//! panic or consume more than it was given.
#![no_main]

use bytes::BytesMut;
use kite_http_core::fuzzing::parse_head;
use kite_http_core::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut limits = Limits::default();
    // Small limits reach the limit paths with small inputs too.
    limits.max_request_line_size = 64;
    limits.max_request_headers_total_size = 256;
    limits.max_request_header_count = 8;
    for limits in [Limits::default(), limits] {
        let mut buf = BytesMut::from(data);
        for _ in 0..32 {
            let before = buf.len();
            match parse_head(&mut buf, &limits) {
                Ok(Some(_)) => assert!(buf.len() < before),
                Ok(None) | Err(_) => break,
            }
        }
    }
});
