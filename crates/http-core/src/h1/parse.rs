//! The request head parser: httparse for the syntax, Kestrel's rules for
//! the meaning.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Uri, Version};

use crate::{Limits, RequestRejection};

/// How the body of a request is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLength {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head and what the connection must know about it.
#[derive(Debug)]
pub struct ParsedHead {
    /// Method, target, version and headers.
    pub request: Request<()>,
    /// How the body is framed.
    pub body: BodyLength,
    /// Whether the connection may serve another request after this one.
    pub keep_alive: bool,
    /// Whether the client sent `Expect: 100-continue`.
    pub expect_continue: bool,
    /// Whether the request asks to switch protocols: HTTP/1.1 with
    /// `Connection: upgrade`, an `Upgrade` header and no body.
    pub upgrade: bool,
}

/// Where a header's name and value lie within the head.
#[derive(Clone, Copy, Default)]
struct Span {
    name: (u32, u32),
    value: (u32, u32),
}

/// Header slots on the stack; a larger `max_request_header_count` uses the heap.
const STACK_HEADERS: usize = 100;
/// Requests with up to this many fields keep their field positions on the stack.
const SMALL_HEADERS: usize = 24;

/// Parses a request head from the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, and consumes the head
/// (and any blank lines before it) when it is complete. Header values and
/// the target share the buffer's memory rather than being copied.
pub fn parse_head(buf: &mut BytesMut, limits: &Limits) -> Result<Option<ParsedHead>, RequestRejection> {
    // Blank lines between pipelined requests are skipped, as Kestrel does.
    let blank = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    if blank > 0 {
        buf.advance(blank);
    }
    if buf.is_empty() {
        return Ok(None);
    }

    let scan = &buf[..buf.len().min(limits.max_request_line_size + 1)];
    let line_len = match scan.iter().position(|&b| b == b'\n') {
        Some(i) if i < limits.max_request_line_size => i + 1,
        Some(_) => return Err(RequestRejection::RequestLineTooLong),
        None if buf.len() > limits.max_request_line_size => return Err(RequestRejection::RequestLineTooLong),
        None => return Ok(None),
    };

    let count = limits.max_request_header_count;
    let mut stack_headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut heap_headers;
    let headers: &mut [MaybeUninit<httparse::Header<'_>>] = if count <= STACK_HEADERS {
        &mut stack_headers[..count]
    } else {
        heap_headers = vec![MaybeUninit::uninit(); count];
        &mut heap_headers
    };

    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() - line_len > limits.max_request_headers_total_size {
                return Err(RequestRejection::HeadersExceedMaxTotalSize);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(RequestRejection::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(version_rejection(&buf[..line_len])),
        Err(httparse::Error::Token) => return Err(RequestRejection::InvalidRequestLine),
        Err(_) if line_error(&buf[..line_len]) => return Err(RequestRejection::InvalidRequestLine),
        Err(_) => return Err(RequestRejection::InvalidRequestHeader),
    };
    if head_len - line_len > limits.max_request_headers_total_size + 2 {
        return Err(RequestRejection::HeadersExceedMaxTotalSize);
    }
    if has_bare_line_feed(&buf[..head_len]) {
        return Err(RequestRejection::BareLineFeed);
    }

    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| -> (u32, u32) {
        let start = s.as_ptr() as usize - base;
        (start as u32, (start + s.len()) as u32)
    };
    let version = if req.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    let method = req.method.unwrap_or_default();
    let method_span = offset(method.as_bytes());
    let path = req.path.unwrap_or_default();
    let path_span = offset(path.as_bytes());
    let header_count = req.headers.len();

    // Where each field lies, so values can share the frozen head's memory.
    let mut stack_spans = [Span::default(); SMALL_HEADERS];
    let mut heap_spans;
    let spans: &mut [Span] = if header_count <= SMALL_HEADERS {
        &mut stack_spans[..header_count]
    } else {
        heap_spans = vec![Span::default(); header_count];
        &mut heap_spans
    };
    let mut meta = HeaderMeta::default();
    for (span, header) in spans.iter_mut().zip(req.headers.iter()) {
        *span = Span { name: offset(header.name.as_bytes()), value: offset(header.value) };
        meta.observe(header.name.as_bytes(), header.value)?;
        if header.name.len() == 17
            && header.name.eq_ignore_ascii_case("transfer-encoding")
            && !plainly_spaced(&buf[..head_len], span)
        {
            return Err(RequestRejection::InvalidTransferEncoding);
        }
    }

    let head = buf.split_to(head_len).freeze();
    let slice = |(a, b): (u32, u32)| head.slice(a as usize..b as usize);

    let method = Method::from_bytes(&head[method_span.0 as usize..method_span.1 as usize])
        .map_err(|_| RequestRejection::InvalidRequestLine)?;
    let uri = parse_target(&method, slice(path_span))?;

    let mut headers = HeaderMap::with_capacity(header_count);
    for span in spans.iter() {
        let name = HeaderName::from_bytes(&head[span.name.0 as usize..span.name.1 as usize])
            .map_err(|_| RequestRejection::InvalidRequestHeader)?;
        // httparse took only bytes a field value may hold (HTAB, SP,
        // VCHAR, obs-text): the checked constructor would scan it again.
        // SAFETY: not memory safety; the bytes meet `HeaderValue`'s rule.
        let value = unsafe { HeaderValue::from_maybe_shared_unchecked(slice(span.value)) };
        headers.append(name, value);
    }

    let asks_upgrade = meta.connection_upgrade && meta.upgrade_header && version == Version::HTTP_11;
    meta.finish(&method, version, &uri, &mut headers).map(|(body, keep_alive, expect_continue)| {
        let mut request = Request::new(());
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.version_mut() = version;
        *request.headers_mut() = headers;
        let upgrade = asks_upgrade && body == BodyLength::Empty;
        Some(ParsedHead { request, body, keep_alive, expect_continue, upgrade })
    })
}

/// A well-formed `HTTP/x.y` that is not 1.0 or 1.1 is `505`; anything else
/// in the version position is a bad request line.
fn version_rejection(line: &[u8]) -> RequestRejection {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit() => {
            RequestRejection::UnrecognizedHttpVersion
        }
        _ => RequestRejection::InvalidRequestLine,
    }
}

/// Whether the request line itself is malformed (not three parts).
fn line_error(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.split(|&b| b == b' ').count() != 3
}

fn parse_target(method: &Method, target: Bytes) -> Result<Uri, RequestRejection> {
    let invalid = |_| RequestRejection::InvalidRequestTarget;
    match target.first() {
        Some(b'/') if method != Method::CONNECT => Uri::from_maybe_shared(target).map_err(invalid),
        Some(b'*') if target.len() == 1 => {
            if method == Method::OPTIONS {
                Uri::from_maybe_shared(target).map_err(invalid)
            } else {
                Err(RequestRejection::OptionsMethodRequired)
            }
        }
        _ if method == Method::CONNECT => {
            let uri = Uri::from_maybe_shared(target).map_err(invalid)?;
            if uri.scheme().is_none() && uri.authority().is_some() && uri.path_and_query().is_none() {
                Ok(uri)
            } else {
                Err(RequestRejection::InvalidRequestTarget)
            }
        }
        _ if starts_with_scheme(&target) => {
            let uri = Uri::from_maybe_shared(target).map_err(invalid)?;
            if uri.authority().is_none() {
                return Err(RequestRejection::InvalidRequestTarget);
            }
            Ok(uri)
        }
        Some(_) => Err(RequestRejection::ConnectMethodRequired),
        None => Err(RequestRejection::InvalidRequestTarget),
    }
}

fn starts_with_scheme(target: &[u8]) -> bool {
    let lower = |n: usize| target.get(..n).map(|p| p.to_ascii_lowercase());
    lower(7).as_deref() == Some(b"http://") || lower(8).as_deref() == Some(b"https://")
}

/// What the framing headers say, gathered in one pass over the raw fields.
#[derive(Default)]
struct HeaderMeta {
    hosts: u8,
    host_valid: bool,
    content_lengths: u8,
    content_length: Option<u64>,
    chunked: Option<bool>,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    connection_upgrade: bool,
    upgrade_header: bool,
}

impl HeaderMeta {
    fn observe(&mut self, name: &[u8], value: &[u8]) -> Result<(), RequestRejection> {
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                self.hosts = self.hosts.saturating_add(1);
                self.host_valid = is_valid_host(value);
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                self.content_lengths = self.content_lengths.saturating_add(1);
                self.content_length = Some(parse_content_length(value)?);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                // One field only, in its plain spelling: smuggling lives in
                // the odd ones.
                if self.chunked.is_some() {
                    return Err(RequestRejection::InvalidTransferEncoding);
                }
                self.chunked = Some(final_coding_is_chunked(value)?);
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for token in value.split(|&b| b == b',').map(trim) {
                    if token.eq_ignore_ascii_case(b"close") {
                        self.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        self.keep_alive = true;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        self.connection_upgrade = true;
                    }
                }
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => self.upgrade_header = true,
            6 if name.eq_ignore_ascii_case(b"expect") => {
                self.expect_continue = trim(value).eq_ignore_ascii_case(b"100-continue");
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(
        self,
        method: &Method,
        version: Version,
        uri: &Uri,
        headers: &mut HeaderMap,
    ) -> Result<(BodyLength, bool, bool), RequestRejection> {
        match self.hosts {
            0 if version == Version::HTTP_11 => return Err(RequestRejection::MissingHostHeader),
            0 => {}
            1 if !self.host_valid => return Err(RequestRejection::InvalidHostHeader),
            1 => {
                if let Some(authority) = uri.authority().filter(|_| uri.scheme().is_some()) {
                    let host = headers.get(http::header::HOST).map(|v| v.as_bytes()).unwrap_or_default();
                    if !host.eq_ignore_ascii_case(authority.as_str().as_bytes()) {
                        return Err(RequestRejection::InvalidHostHeader);
                    }
                }
            }
            _ => return Err(RequestRejection::MultipleHostHeaders),
        }
        if self.content_lengths > 1 {
            return Err(RequestRejection::MultipleContentLengths);
        }
        let keep_alive = match version {
            Version::HTTP_10 => self.keep_alive && !self.close,
            _ => !self.close,
        };
        let body = match (self.chunked, self.content_length) {
            // HTTP/1.0 has no transfer codings: faulty framing (RFC 9112 §6.1).
            (Some(_), _) if version == Version::HTTP_10 => return Err(RequestRejection::TransferEncodingHttp10),
            (Some(false), _) => return Err(RequestRejection::FinalTransferCodingNotChunked),
            // Both framings: refused, as RFC 9112 §6.3 allows, since a
            // proxy in front that reads the other one is the root of
            // CL.TE request smuggling.
            (Some(true), Some(_)) => return Err(RequestRejection::TransferEncodingWithContentLength),
            (Some(true), None) => BodyLength::Chunked,
            (None, Some(0)) => BodyLength::Empty,
            (None, Some(n)) => BodyLength::Length(n),
            (None, None) => {
                if version == Version::HTTP_10 && (method == Method::POST || method == Method::PUT) {
                    return Err(RequestRejection::LengthRequiredHttp10);
                }
                BodyLength::Empty
            }
        };
        let expect_continue = self.expect_continue && version == Version::HTTP_11 && body != BodyLength::Empty;
        Ok((body, keep_alive, expect_continue))
    }
}

/// Whether a field is written `Name: value` or `Name:value`: httparse
/// trims other whitespace around values, which must not hide an odd
/// `Transfer-Encoding`.
fn plainly_spaced(head: &[u8], span: &Span) -> bool {
    let (name_end, (start, end)) = (span.name.1 as usize, span.value);
    let leading = head.get(name_end + 1..start as usize).unwrap_or_default();
    let trailing = head.get(end as usize).copied();
    (leading.is_empty() || leading == b" ") && matches!(trailing, Some(b'\r') | Some(b'\n'))
}

/// Whether a line of `head` ends in LF alone: an LF first, or after a
/// byte other than CR. One pass without an early exit, over byte pairs, so
/// the compiler compares 16 or 32 at a time.
pub(crate) fn has_bare_line_feed(head: &[u8]) -> bool {
    let Some((&first, rest)) = head.split_first() else {
        return false;
    };
    let bare = head
        .iter()
        .zip(rest)
        .fold(0u8, |bare, (&before, &byte)| bare | (u8::from(byte == b'\n') & u8::from(before != b'\r')));
    first == b'\n' || bare != 0
}

/// The transfer codings of IANA's registry, in the spelling clients send.
const KNOWN_CODINGS: [&[u8]; 6] = [b"chunked", b"gzip", b"deflate", b"compress", b"x-gzip", b"x-compress"];

/// Kite's strict reading of `Transfer-Encoding`, against request
/// smuggling: a comma-separated list of registered codings in lowercase
/// (`, ` or `,` between them), no parameters, no whitespace around the
/// value, and `chunked` at most once. Returns whether the last coding is
/// `chunked`.
fn final_coding_is_chunked(value: &[u8]) -> Result<bool, RequestRejection> {
    const INVALID: RequestRejection = RequestRejection::InvalidTransferEncoding;
    let mut chunked = 0;
    let mut last_chunked = false;
    for (i, coding) in value.split(|&b| b == b',').enumerate() {
        let coding = if i > 0 { coding.strip_prefix(b" ").unwrap_or(coding) } else { coding };
        if !KNOWN_CODINGS.contains(&coding) {
            return Err(INVALID);
        }
        last_chunked = coding == b"chunked";
        chunked += usize::from(last_chunked);
    }
    if chunked > 1 {
        return Err(INVALID);
    }
    Ok(last_chunked)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(start, |i| i + 1);
    &bytes[start..end]
}

fn parse_content_length(value: &[u8]) -> Result<u64, RequestRejection> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(RequestRejection::InvalidContentLength);
    }
    Ok(value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Kestrel's host rule: a reg-name or IPv4 address with an optional port,
/// or a bracketed IPv6 literal with an optional port. Empty is allowed.
fn is_valid_host(host: &[u8]) -> bool {
    let (name, port) = if host.first() == Some(&b'[') {
        match host.iter().position(|&b| b == b']') {
            Some(end) => {
                let literal = &host[1..end];
                if literal.is_empty() || !literal.iter().all(|b| b.is_ascii_hexdigit() || b":.%".contains(b)) {
                    return false;
                }
                match &host[end + 1..] {
                    [] => return true,
                    [b':', port @ ..] => (&[][..], port),
                    _ => return false,
                }
            }
            None => return false,
        }
    } else {
        match host.iter().rposition(|&b| b == b':') {
            Some(i) => (&host[..i], &host[i + 1..]),
            None => (host, &[][..]),
        }
    };
    let name_ok = name.iter().all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b));
    let port_ok = port.iter().all(u8::is_ascii_digit) && port.len() <= 5;
    name_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use RequestRejection::*;

    fn parse(input: &str) -> Result<Option<ParsedHead>, RequestRejection> {
        parse_head(&mut BytesMut::from(input), &Limits::default())
    }

    fn reject(input: &str) -> RequestRejection {
        parse(input).expect_err(input)
    }

    #[test]
    fn simple_get_is_parsed_and_consumed() {
        let mut buf = BytesMut::from("\r\nGET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\n\r\nNEXT");
        let head = parse_head(&mut buf, &Limits::default()).unwrap().unwrap();
        assert_eq!(head.request.method(), Method::GET);
        assert_eq!(head.request.uri().path(), "/a");
        assert_eq!(head.request.uri().query(), Some("b=1"));
        assert_eq!(head.request.version(), Version::HTTP_11);
        assert_eq!(head.request.headers()["x-a"], "1");
        assert_eq!(head.body, BodyLength::Empty);
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"NEXT");
    }

    #[test]
    fn partial_heads_wait_for_more() {
        assert!(parse("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
        assert!(parse("GET / HT").unwrap().is_none());
        assert!(parse("\r\n").unwrap().is_none());
    }

    #[test]
    fn framing() {
        let h = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.body, BodyLength::Length(5));
        let h = parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.body, BodyLength::Chunked);
        let h =
            parse("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n").unwrap().unwrap();
        assert!(h.expect_continue);
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap().unwrap().keep_alive);
        assert!(!parse("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().keep_alive);
        assert!(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap().unwrap().keep_alive);
    }

    #[test]
    fn rejections_match_kestrel() {
        assert_eq!(reject("GET / HTTP/1.1\r\n\r\n"), MissingHostHeader);
        assert_eq!(reject("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), MultipleHostHeaders);
        assert_eq!(reject("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), InvalidHostHeader);
        assert_eq!(reject("GET / HTTP/1.1\r\nHost: a:x\r\n\r\n"), InvalidHostHeader);
        assert_eq!(reject("GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n"), InvalidHostHeader);
        assert_eq!(reject("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), UnrecognizedHttpVersion);
        assert_eq!(reject("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), UnrecognizedHttpVersion);
        assert_eq!(reject("GET / HTXP/1.1\r\nHost: a\r\n\r\n"), InvalidRequestLine);
        assert_eq!(reject("GET /\r\n\r\n"), InvalidRequestLine);
        assert_eq!(
            reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
            MultipleContentLengths
        );
        assert_eq!(reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), InvalidContentLength);
        assert_eq!(reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n"), InvalidContentLength);
        assert_eq!(
            reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            FinalTransferCodingNotChunked
        );
        assert_eq!(reject("POST / HTTP/1.0\r\n\r\n"), LengthRequiredHttp10);
        assert_eq!(
            reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
            TransferEncodingWithContentLength
        );
        // HTTP/1.0 has no Transfer-Encoding, with or without a length.
        assert_eq!(reject("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), TransferEncodingHttp10);
        assert_eq!(
            reject("POST / HTTP/1.0\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            TransferEncodingHttp10
        );
        assert_eq!(reject("POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n"), TransferEncodingHttp10);
        // A line ending in LF alone, anywhere in the head.
        for bare in [
            "POST / HTTP/1.1\r\nHost: a\r\nX: y\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\n\n",
            "GET / HTTP/1.1\r\nHost: a\r\n\n",
        ] {
            assert_eq!(reject(bare), BareLineFeed, "{bare:?}");
        }
        // Odd Transfer-Encoding spellings, the stuff of request smuggling.
        for odd in [
            "Transfer-Encoding: Chunked\r\n",
            "Transfer-Encoding: CHUNKED\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked, chunked\r\n",
            "Transfer-Encoding: xchunked\r\n",
            "Transfer-Encoding: chunked;q=1\r\n",
            "Transfer-Encoding: \"chunked\"\r\n",
            "Transfer-Encoding: gzip,  chunked\r\n",
            "Transfer-Encoding: gzip ,chunked\r\n",
            "Transfer-Encoding: ,chunked\r\n",
            "Transfer-Encoding: chu nked\r\n",
            "Transfer-Encoding: chunked \r\n",
            "Transfer-Encoding:\tchunked\t\r\n",
        ] {
            let head = format!("POST / HTTP/1.1\r\nHost: a\r\n{odd}\r\n");
            assert_eq!(reject(&head), InvalidTransferEncoding, "{odd:?}");
        }
        // What httparse refuses before we look: whitespace before the
        // colon, obs-fold, a bare CR.
        for broken in [
            "Transfer-Encoding : chunked\r\n",
            "X: a\r\n Transfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chun\rked\r\n",
            "Transfer-Encoding: chunked\x0b\r\n",
        ] {
            let head = format!("POST / HTTP/1.1\r\nHost: a\r\n{broken}\r\n");
            assert_eq!(reject(&head), InvalidRequestHeader, "{broken:?}");
        }
        assert_eq!(reject("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), OptionsMethodRequired);
        assert_eq!(reject("GET a.com:80 HTTP/1.1\r\nHost: a\r\n\r\n"), ConnectMethodRequired);
        assert_eq!(reject("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n"), InvalidRequestTarget);
        assert_eq!(reject("GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n"), InvalidRequestHeader);
        assert_eq!(reject("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"), InvalidRequestHeader);
    }

    #[test]
    fn accepted_target_forms() {
        assert!(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().is_some());
        let h = parse("CONNECT a.com:443 HTTP/1.1\r\nHost: a.com:443\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.request.uri().authority().unwrap(), "a.com:443");
        let h = parse("GET http://a.com/x HTTP/1.1\r\nHost: a.com\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.request.uri().path(), "/x");
        assert!(parse("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n").unwrap().is_some());
        assert!(parse("GET / HTTP/1.1\r\nHost:\r\n\r\n").unwrap().is_some());
    }

    #[test]
    fn limits() {
        let limits = Limits::default();
        let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(limits.max_request_line_size));
        assert_eq!(reject(&long), RequestLineTooLong);
        // Too long even before the line ends.
        assert_eq!(reject(&"a".repeat(limits.max_request_line_size + 1)), RequestLineTooLong);
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(reject(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")), TooManyHeaders);
        let big =
            format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(limits.max_request_headers_total_size));
        assert_eq!(reject(&big), HeadersExceedMaxTotalSize);
        // Too large while still incomplete.
        let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "v".repeat(limits.max_request_headers_total_size + 1));
        assert_eq!(reject(&big), HeadersExceedMaxTotalSize);
    }
}
