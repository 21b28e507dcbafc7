//! Property tests over both codecs: what the server compresses, a client
//! inflates to the same messages, and what a client sends, however split
//! across reads, inflates to what it compressed; arbitrary bytes never
//! panic the inflater or the offer parser.

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress};
use http::HeaderValue;
use proptest::prelude::*;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use super::testing::{agreed, deflate, frame, frames, inflate};
use super::{negotiate, DeflateOptions, Deflater, Inflater};

fn message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..3000),
        (proptest::collection::vec(any::<u8>(), 1..20), 1..400usize).prop_map(|(unit, n)| unit.repeat(n)),
    ]
}

proptest! {
    #[test]
    fn the_server_s_messages_inflate_to_what_was_sent(
        messages in proptest::collection::vec(message(), 1..6),
        window in 8u8..=15,
        reset in any::<bool>(),
        step in 1usize..5000,
    ) {
        let mut deflater = Deflater::new(&agreed(window, reset, &DeflateOptions::default()));
        let wire: Vec<u8> =
            messages.iter().flat_map(|m| frame(OpCode::Data(Data::Binary), true, false, None, m)).collect();
        let mut out = BytesMut::new();
        for piece in wire.chunks(step) {
            deflater.write(piece, &mut out).unwrap();
        }
        let mut decompress = Decompress::new_with_window_bits(false, window.max(9));
        let frames = frames(&out);
        prop_assert_eq!(frames.len(), messages.len());
        for ((header, payload), message) in frames.iter().zip(&messages) {
            prop_assert!(header.rsv1);
            prop_assert_eq!(&inflate(&mut decompress, payload), message);
        }
    }

    #[test]
    fn the_client_s_messages_inflate_however_they_are_read(
        messages in proptest::collection::vec(message(), 1..6),
        step in 1usize..5000,
    ) {
        let mut compress = Compress::new(Compression::default(), false);
        let mut wire = Vec::new();
        for message in &messages {
            let payload = deflate(&mut compress, message);
            wire.extend(frame(OpCode::Data(Data::Text), true, true, Some([9, 8, 7, 6]), &payload));
        }
        let mut inflater = Inflater::new(false, None);
        let (mut input, mut out) = (BytesMut::new(), BytesMut::new());
        for piece in wire.chunks(step) {
            input.extend_from_slice(piece);
            while inflater.process(&mut input, &mut out).unwrap() {}
        }
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut current = Vec::new();
        for (header, payload) in frames(&out) {
            prop_assert!(!header.rsv1 && payload.len() <= 16 * 1024);
            current.extend_from_slice(&payload);
            if header.is_final {
                got.push(std::mem::take(&mut current));
            }
        }
        prop_assert_eq!(got, messages);
    }

    #[test]
    fn arbitrary_bytes_never_panic(wire in proptest::collection::vec(any::<u8>(), 0..2000), step in 1usize..300) {
        let mut inflater = Inflater::new(false, Some(1 << 20));
        let (mut input, mut out) = (BytesMut::new(), BytesMut::new());
        'feed: for piece in wire.chunks(step) {
            input.extend_from_slice(piece);
            loop {
                match inflater.process(&mut input, &mut out) {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(_) => break 'feed,
                }
            }
        }
        if let Ok(text) = std::str::from_utf8(&wire) {
            if let Ok(value) = HeaderValue::from_str(text) {
                let _ = negotiate([&value], &DeflateOptions::default());
            }
        }
    }
}
