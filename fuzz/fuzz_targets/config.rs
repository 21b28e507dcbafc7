//! The configuration reader: arbitrary JSON and TOML text read into a
//! server's options may be refused with an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (bool, &str)| {
    let (toml, text) = input;
    kite_server::config::fuzz(text, toml);
});
