//! Request body decoders: `Content-Length` and chunked.

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;

use crate::RequestRejection;

/// What a decoder produced from the buffer.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// Body bytes, split off the buffer without copying.
    Data(Bytes),
    /// The trailer fields of a chunked body (only when there are some).
    Trailers(HeaderMap),
    /// The body is complete.
    Done,
    /// The buffer holds no more of the body; read more.
    NeedMore,
}

/// Decodes one request body from a connection's read buffer.
#[derive(Debug)]
pub enum Decoder {
    /// A body of a known length; the field is what is left.
    Length(u64),
    /// A chunked body.
    Chunked(ChunkedDecoder),
}

impl Decoder {
    /// Takes the next piece of the body off the front of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, RequestRejection> {
        match self {
            Decoder::Length(0) => Ok(Decoded::Done),
            Decoder::Length(remaining) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = (*remaining).min(buf.len() as u64) as usize;
                *remaining -= n as u64;
                Ok(Decoded::Data(buf.split_to(n).freeze()))
            }
            Decoder::Chunked(chunked) => chunked.decode(buf),
        }
    }
}

/// The chunked transfer coding (RFC 9112 §7.1): hex size lines with
/// optional extensions, CRLF after each chunk, an optional trailer section.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// The size of the chunk whose size line is being read.
    size: u64,
    max_trailer_size: usize,
    trailer: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size { digits: u8 },
    Extension { len: usize },
    SizeLf,
    Data { remaining: u64 },
    DataCr,
    DataLf,
    Trailer,
    Done,
}

/// The longest chunk extension accepted; extensions are ignored.
const MAX_EXTENSION: usize = 4096;

impl ChunkedDecoder {
    /// A decoder whose trailer section may be up to `max_trailer_size`
    /// bytes (the headers limit).
    pub fn new(max_trailer_size: usize) -> Self {
        Self { state: State::Size { digits: 0 }, size: 0, max_trailer_size, trailer: Vec::new() }
    }

    /// Takes the next piece of the body off the front of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, RequestRejection> {
        use RequestRejection::{BadChunkSizeData, BadChunkSuffix, BadChunkTrailers};
        loop {
            match self.state {
                State::Done => return Ok(Decoded::Done),
                State::Data { remaining } => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = remaining.min(buf.len() as u64) as usize;
                    self.state = match remaining - n as u64 {
                        0 => State::DataCr,
                        left => State::Data { remaining: left },
                    };
                    return Ok(Decoded::Data(buf.split_to(n).freeze()));
                }
                _ => {}
            }
            let Some(&b) = buf.first() else {
                return Ok(Decoded::NeedMore);
            };
            buf.advance(1);
            self.state = match self.state {
                State::Size { digits } => match (b as char).to_digit(16) {
                    Some(_) if digits >= 16 => return Err(BadChunkSizeData),
                    Some(d) => {
                        self.size = self.size << 4 | u64::from(d);
                        State::Size { digits: digits + 1 }
                    }
                    None if digits == 0 => return Err(BadChunkSizeData),
                    None => match b {
                        b';' => State::Extension { len: 0 },
                        b'\r' => State::SizeLf,
                        _ => return Err(BadChunkSizeData),
                    },
                },
                State::Extension { len } => match b {
                    b'\r' => State::SizeLf,
                    b'\n' => return Err(BadChunkSizeData),
                    _ if len >= MAX_EXTENSION => return Err(BadChunkSizeData),
                    _ => State::Extension { len: len + 1 },
                },
                State::SizeLf => match b {
                    b'\n' if self.size == 0 => State::Trailer,
                    b'\n' => State::Data { remaining: std::mem::take(&mut self.size) },
                    _ => return Err(BadChunkSizeData),
                },
                State::DataCr => match b {
                    b'\r' => State::DataLf,
                    _ => return Err(BadChunkSuffix),
                },
                State::DataLf => match b {
                    b'\n' => State::Size { digits: 0 },
                    _ => return Err(BadChunkSuffix),
                },
                State::Trailer => {
                    self.trailer.push(b);
                    if self.trailer.len() > self.max_trailer_size + 2 {
                        return Err(BadChunkTrailers);
                    }
                    if self.trailer == b"\r\n" {
                        self.state = State::Done;
                        return Ok(Decoded::Done);
                    }
                    if self.trailer.ends_with(b"\r\n\r\n") {
                        self.state = State::Done;
                        return self.parse_trailers();
                    }
                    State::Trailer
                }
                State::Data { .. } | State::Done => unreachable!("handled above"),
            };
        }
    }

    fn parse_trailers(&mut self) -> Result<Decoded, RequestRejection> {
        if crate::h1::parse::has_bare_line_feed(&self.trailer) {
            return Err(RequestRejection::BadChunkTrailers);
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        match httparse::parse_headers(&self.trailer, &mut headers) {
            Ok(httparse::Status::Complete((_, fields))) => {
                let mut map = HeaderMap::with_capacity(fields.len());
                for field in fields {
                    let name = http::HeaderName::from_bytes(field.name.as_bytes())
                        .map_err(|_| RequestRejection::BadChunkTrailers)?;
                    let value =
                        http::HeaderValue::from_bytes(field.value).map_err(|_| RequestRejection::BadChunkTrailers)?;
                    map.append(name, value);
                }
                self.trailer = Vec::new();
                Ok(Decoded::Trailers(map))
            }
            _ => Err(RequestRejection::BadChunkTrailers),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body, the trailers, and what is left in the buffer.
    type DecodedAll = (Vec<u8>, Option<HeaderMap>, Vec<u8>);

    /// Decodes `input` fed in pieces of `step` bytes.
    pub(crate) fn decode_all(input: &[u8], step: usize) -> Result<DecodedAll, RequestRejection> {
        let mut decoder = Decoder::Chunked(ChunkedDecoder::new(1024));
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut trailers = None;
        let mut fed = 0;
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Data(d) => body.extend_from_slice(&d),
                Decoded::Trailers(t) => trailers = Some(t),
                Decoded::Done => return Ok((body, trailers, buf.to_vec())),
                Decoded::NeedMore => {
                    if fed >= input.len() {
                        return Err(RequestRejection::UnexpectedEndOfRequestContent);
                    }
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_in_any_split() {
        let input = b"5\r\nhello\r\nA;ext=1\r\n0123456789\r\n0\r\n\r\nGET";
        for step in 1..input.len() {
            let (body, trailers, rest) = decode_all(input, step).unwrap();
            assert_eq!(body, b"hello0123456789");
            assert!(trailers.is_none());
            assert!(b"GET".starts_with(&rest), "only the next request is left");
        }
    }

    #[test]
    fn trailers_are_returned() {
        let (body, trailers, _) = decode_all(b"3\r\nabc\r\n0\r\nX-Sum: 9\r\n\r\n", 4).unwrap();
        assert_eq!(body, b"abc");
        assert_eq!(trailers.unwrap()["x-sum"], "9");
    }

    #[test]
    fn malformed_chunks_are_rejected() {
        use RequestRejection::*;
        assert_eq!(decode_all(b"x\r\n", 8).unwrap_err(), BadChunkSizeData);
        assert_eq!(decode_all(b"\r\n", 8).unwrap_err(), BadChunkSizeData);
        assert_eq!(decode_all(b"5\nhello", 8).unwrap_err(), BadChunkSizeData);
        assert_eq!(decode_all(b"3\r\nabcX\r\n", 8).unwrap_err(), BadChunkSuffix);
        assert_eq!(decode_all(b"11111111111111111\r\n", 32).unwrap_err(), BadChunkSizeData);
        assert_eq!(decode_all(b"3\r\nab", 8).unwrap_err(), UnexpectedEndOfRequestContent);
        let long_trailer = format!("0\r\nX: {}\r\n\r\n", "v".repeat(2000));
        assert_eq!(decode_all(long_trailer.as_bytes(), 64).unwrap_err(), BadChunkTrailers);
        // A trailer line ending in LF alone.
        assert_eq!(decode_all(b"0\r\nX: a\nY: b\r\n\r\n", 8).unwrap_err(), BadChunkTrailers);
    }

    #[test]
    fn length_decoder_stops_at_its_length() {
        let mut decoder = Decoder::Length(3);
        let mut buf = BytesMut::from("abcdef");
        assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::Data(Bytes::from_static(b"abc")));
        assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::Done);
        assert_eq!(&buf[..], b"def");
    }
}
