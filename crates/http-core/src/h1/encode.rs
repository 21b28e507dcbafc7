//! Writing response heads and body framing.

use http::header::{CONNECTION, CONTENT_LENGTH, DATE, SERVER, TRANSFER_ENCODING};
use http::{HeaderMap, StatusCode, Version};
use http_body::SizeHint;

/// How a response body is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body bytes are written (HEAD, 1xx, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Bytes until the connection closes (HTTP/1.0 without a length).
    CloseDelimited,
}

/// What Kite must know of a response's own headers, gathered in one pass
/// over them instead of a map lookup for each.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HeaderFacts {
    /// The first `content-length`, when it is a number.
    pub content_length: Option<u64>,
    /// A `transfer-encoding` is set, and whether its last coding is
    /// `chunked`.
    pub transfer_encoding: Option<bool>,
    /// A `connection` field says `close`.
    pub close: bool,
    /// The application set `date`.
    pub date: bool,
    /// The application set `server`.
    pub server: bool,
}

impl HeaderFacts {
    /// Reads `headers` once.
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let mut facts = Self::default();
        let mut seen_length = false;
        for (name, value) in headers {
            if name == CONTENT_LENGTH {
                if !std::mem::replace(&mut seen_length, true) {
                    facts.content_length = value.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok());
                }
            } else if name == TRANSFER_ENCODING {
                if facts.transfer_encoding.is_none() {
                    let chunked = value
                        .as_bytes()
                        .rsplit(|&b| b == b',')
                        .next()
                        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                    facts.transfer_encoding = Some(chunked);
                }
            } else if name == CONNECTION {
                facts.close |=
                    value.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
            } else if name == DATE {
                facts.date = true;
            } else if name == SERVER {
                facts.server = true;
            }
        }
        facts
    }
}

/// Decides the framing, and which framing header Kite must add.
pub(crate) fn framing(
    status: StatusCode,
    is_head: bool,
    facts: &HeaderFacts,
    hint: &SizeHint,
    is_end_stream: bool,
    version: Version,
) -> (Framing, Option<FramingHeader>) {
    if status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return (Framing::None, None);
    }
    if let Some(chunked) = facts.transfer_encoding {
        let framing = match (is_head, chunked && version == Version::HTTP_11) {
            (true, _) => Framing::None,
            (false, true) => Framing::Chunked,
            (false, false) => Framing::CloseDelimited,
        };
        return (framing, None);
    }
    if let Some(length) = facts.content_length {
        return (if is_head { Framing::None } else { Framing::Length(length) }, None);
    }
    let exact = if is_end_stream { Some(0) } else { hint.exact() };
    match (exact, is_head) {
        (Some(n), true) => (Framing::None, Some(FramingHeader::Length(n))),
        (Some(n), false) => (Framing::Length(n), Some(FramingHeader::Length(n))),
        (None, true) => (Framing::None, None),
        (None, false) if version == Version::HTTP_11 => (Framing::Chunked, Some(FramingHeader::Chunked)),
        (None, false) => (Framing::CloseDelimited, None),
    }
}

/// A framing header Kite adds to the application's headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FramingHeader {
    Length(u64),
    Chunked,
}

/// Everything a response head needs besides the application's headers.
pub(crate) struct HeadOptions {
    pub keep_alive: bool,
    pub request_version: Version,
    pub server_header: bool,
}

/// Appends a response head to `dst`.
pub(crate) fn write_head(
    dst: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    facts: &HeaderFacts,
    framing_header: Option<FramingHeader>,
    options: &HeadOptions,
) {
    write_status_line(dst, status);
    for (name, value) in headers {
        if name == CONNECTION && !options.keep_alive {
            continue; // replaced by `connection: close` below
        }
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    match framing_header {
        Some(FramingHeader::Length(n)) => {
            dst.extend_from_slice(b"content-length: ");
            write_decimal(dst, n);
            dst.extend_from_slice(b"\r\n");
        }
        Some(FramingHeader::Chunked) => dst.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        None => {}
    }
    write_common(dst, facts, options);
}

/// Appends the head of a response Kite makes itself (errors, rejections):
/// no body, `content-length: 0`.
pub(crate) fn write_empty(dst: &mut Vec<u8>, status: StatusCode, allow: Option<&str>, options: &HeadOptions) {
    write_status_line(dst, status);
    dst.extend_from_slice(b"content-length: 0\r\n");
    if let Some(allow) = allow {
        dst.extend_from_slice(b"allow: ");
        dst.extend_from_slice(allow.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    write_common(dst, &HeaderFacts::default(), options);
}

fn write_common(dst: &mut Vec<u8>, facts: &HeaderFacts, options: &HeadOptions) {
    if !facts.date {
        dst.extend_from_slice(b"date: ");
        crate::timing::date::extend(dst);
        dst.extend_from_slice(b"\r\n");
    }
    if options.server_header && !facts.server {
        dst.extend_from_slice(b"server: kite\r\n");
    }
    if !options.keep_alive {
        dst.extend_from_slice(b"connection: close\r\n");
    } else if options.request_version == Version::HTTP_10 {
        dst.extend_from_slice(b"connection: keep-alive\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

fn write_status_line(dst: &mut Vec<u8>, status: StatusCode) {
    if status == StatusCode::OK {
        dst.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    dst.extend_from_slice(b"HTTP/1.1 ");
    dst.extend_from_slice(status.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    dst.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal.
pub(crate) fn write_decimal(dst: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&digits[i..]);
}

/// Appends a chunk-size line for `len` bytes.
pub(crate) fn write_chunk_size(dst: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = len;
    loop {
        i -= 1;
        digits[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&digits[i..]);
    dst.extend_from_slice(b"\r\n");
}

/// Appends the last chunk and the trailer section.
pub(crate) fn write_last_chunk(dst: &mut Vec<u8>, trailers: Option<&HeaderMap>) {
    dst.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(keep_alive: bool) -> HeadOptions {
        HeadOptions { keep_alive, request_version: Version::HTTP_11, server_header: true }
    }

    #[test]
    fn framing_rules() {
        let none = HeaderFacts::default();
        let unknown = SizeHint::default();
        let v11 = Version::HTTP_11;
        assert_eq!(
            framing(StatusCode::OK, false, &none, &unknown, false, v11),
            (Framing::Chunked, Some(FramingHeader::Chunked))
        );
        assert_eq!(
            framing(StatusCode::OK, false, &none, &unknown, false, Version::HTTP_10),
            (Framing::CloseDelimited, None)
        );
        assert_eq!(
            framing(StatusCode::OK, false, &none, &unknown, true, v11),
            (Framing::Length(0), Some(FramingHeader::Length(0)))
        );
        assert_eq!(
            framing(StatusCode::OK, false, &none, &SizeHint::with_exact(5), false, v11),
            (Framing::Length(5), Some(FramingHeader::Length(5)))
        );
        assert_eq!(
            framing(StatusCode::OK, true, &none, &SizeHint::with_exact(5), false, v11),
            (Framing::None, Some(FramingHeader::Length(5)))
        );
        assert_eq!(framing(StatusCode::NO_CONTENT, false, &none, &unknown, false, v11), (Framing::None, None));
        assert_eq!(framing(StatusCode::NOT_MODIFIED, false, &none, &unknown, false, v11), (Framing::None, None));
        let mut declared = HeaderMap::new();
        declared.insert(CONTENT_LENGTH, "7".parse().unwrap());
        declared.append(CONTENT_LENGTH, "8".parse().unwrap());
        let declared = HeaderFacts::of(&declared);
        assert_eq!(framing(StatusCode::OK, false, &declared, &unknown, false, v11), (Framing::Length(7), None));
        let mut chunked = HeaderMap::new();
        chunked.insert(TRANSFER_ENCODING, "gzip, chunked".parse().unwrap());
        chunked.insert(CONTENT_LENGTH, "7".parse().unwrap());
        let chunked = HeaderFacts::of(&chunked);
        assert_eq!(framing(StatusCode::OK, false, &chunked, &unknown, false, v11), (Framing::Chunked, None));
        assert_eq!(
            framing(StatusCode::OK, false, &chunked, &unknown, false, Version::HTTP_10),
            (Framing::CloseDelimited, None)
        );
    }

    #[test]
    fn head_bytes() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "text/plain".parse().unwrap());
        let mut out = Vec::new();
        let facts = HeaderFacts::of(&headers);
        write_head(&mut out, StatusCode::NOT_FOUND, &headers, &facts, Some(FramingHeader::Length(12)), &opts(false));
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 12\r\ndate: "));
        assert!(text.ends_with("server: kite\r\nconnection: close\r\n\r\n"), "{text}");
    }

    #[test]
    fn facts_of_the_headers() {
        let mut headers = HeaderMap::new();
        headers.append(CONNECTION, "keep-alive".parse().unwrap());
        headers.append(CONNECTION, "Upgrade, CLOSE".parse().unwrap());
        headers.insert(SERVER, "app".parse().unwrap());
        let facts = HeaderFacts::of(&headers);
        assert!(facts.close && facts.server && !facts.date);
        assert_eq!((facts.content_length, facts.transfer_encoding), (None, None));
        let mut out = Vec::new();
        write_head(&mut out, StatusCode::OK, &headers, &facts, None, &opts(true));
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("server: kite") && text.contains("server: app") && text.contains("date: "), "{text}");
    }

    #[test]
    fn numbers() {
        let mut out = Vec::new();
        write_decimal(&mut out, 0);
        out.push(b' ');
        write_decimal(&mut out, 30_000_000);
        out.push(b' ');
        write_chunk_size(&mut out, 0x1f4a);
        assert_eq!(out, b"0 30000000 1f4a\r\n");
    }
}
