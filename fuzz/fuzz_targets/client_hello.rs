//! The ClientHello parser, the record scanner before it, and the
//! fingerprints on arbitrary bytes: parsing and scanning must never panic,
//! and whatever parses must fingerprint without panicking, into a JA4 of
//! the documented shape.
#![no_main]

use kite_connection_middleware::client_hello::{scan, ClientHello, TlsFingerprint};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = scan(data);
    if let Ok(hello) = ClientHello::parse(data) {
        let _ = hello.server_name();
        let fingerprint = TlsFingerprint::of(&hello);
        let parts: Vec<&str> = fingerprint.ja4.split('_').collect();
        assert_eq!(parts.len(), 3, "{}", fingerprint.ja4);
        assert_eq!(parts[1].len(), 12);
        assert_eq!(parts[2].len(), 12);
    }
});
