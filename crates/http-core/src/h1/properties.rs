//! Property tests over the head parser and the chunked decoder: the same
//! code the fuzz targets drive, in the normal suite.

use bytes::BytesMut;
use proptest::prelude::*;

use super::decode::{ChunkedDecoder, Decoded, Decoder};
use super::parse::{parse_head, BodyLength};
use crate::Limits;

/// Encodes `chunks` with the chunked coding, an extension on odd chunks.
fn encode(chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().filter(|c| !c.is_empty()).enumerate() {
        out.extend_from_slice(format!("{:x}", chunk.len()).as_bytes());
        if i % 2 == 1 {
            out.extend_from_slice(b";name=value");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Decodes `input` fed `step` bytes at a time; returns the body and what
/// is left, or `None` if the decoder refused it or wanted more.
fn decode(input: &[u8], step: usize) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut decoder = Decoder::Chunked(ChunkedDecoder::new(8192));
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    loop {
        match decoder.decode(&mut buf).ok()? {
            Decoded::Data(data) => body.extend_from_slice(&data),
            Decoded::Trailers(_) => {}
            Decoded::Done => {
                buf.extend_from_slice(&input[fed..]);
                return Some((body, buf.to_vec()));
            }
            Decoded::NeedMore => {
                if fed == input.len() {
                    return None;
                }
                let end = (fed + step).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
            }
        }
    }
}

proptest! {
    #[test]
    fn chunked_round_trips_in_any_split(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
        step in 1usize..64,
        tail in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut input = encode(&chunks);
        input.extend_from_slice(&tail);
        let (body, rest) = decode(&input, step).expect("valid chunked input decodes");
        prop_assert_eq!(body, chunks.concat());
        prop_assert_eq!(rest, tail);
    }

    #[test]
    fn chunked_decoder_never_invents_bytes(input in proptest::collection::vec(any::<u8>(), 0..512), step in 1usize..32) {
        if let Some((body, _)) = decode(&input, step) {
            prop_assert!(body.len() <= input.len());
        }
    }

    #[test]
    fn head_parser_never_panics_and_only_consumes_what_it_has(input in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let limits = Limits { max_request_line_size: 64, max_request_header_count: 8, ..Limits::default() };
        let mut buf = BytesMut::from(&input[..]);
        if let Ok(Some(_)) = parse_head(&mut buf, &limits) {
            prop_assert!(buf.len() < input.len());
        }
    }

    #[test]
    fn a_valid_head_parses_the_same_however_it_arrives(
        path in "/[a-z0-9/._~-]{0,40}",
        values in proptest::collection::vec("[ -~]{0,30}", 0..6),
        split in 0usize..200,
    ) {
        let mut text = format!("POST {path} HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n");
        for (i, value) in values.iter().enumerate() {
            text.push_str(&format!("x-field-{i}: {}\r\n", value.trim()));
        }
        text.push_str("\r\nabc");
        let bytes = text.as_bytes();
        let split = split.min(bytes.len());
        let limits = Limits::default();

        let mut buf = BytesMut::from(&bytes[..split]);
        let early = parse_head(&mut buf, &limits).expect("a prefix of a valid head is not an error");
        buf.extend_from_slice(&bytes[split..]);
        let head = match early {
            Some(head) => head,
            None => parse_head(&mut buf, &limits).unwrap().expect("complete"),
        };
        prop_assert_eq!(head.request.uri().path(), if path.is_empty() { "/" } else { path.as_str() });
        prop_assert_eq!(head.body, BodyLength::Length(3));
        prop_assert_eq!(head.request.headers().len(), 2 + values.len());
        for (i, value) in values.iter().enumerate() {
            let got = head.request.headers()[format!("x-field-{i}").as_str()].as_bytes();
            prop_assert_eq!(got, value.trim().as_bytes());
        }
        prop_assert_eq!(&buf[..], b"abc");
    }
}
