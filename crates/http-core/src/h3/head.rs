//! The rules of RFC 9114 §4.2 that h3 leaves to the server: a request
//! head with a connection-specific field, or a `te` other than
//! `trailers`, or a `content-length` that is not one decimal number, is
//! malformed, a stream error H3_MESSAGE_ERROR.

use http::header::{CONTENT_LENGTH, TE};
use http::HeaderMap;

/// Fields that name a hop of an HTTP/1.1 connection, which HTTP/3 has
/// none of.
const CONNECTION_SPECIFIC: [&str; 5] = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"];

/// Why `headers` make a request malformed, if they do.
pub(super) fn malformed(headers: &HeaderMap) -> Option<&'static str> {
    if CONNECTION_SPECIFIC.iter().any(|name| headers.contains_key(*name)) {
        return Some("a connection-specific header field");
    }
    if headers.get_all(TE).iter().any(|value| !value.as_bytes().eq_ignore_ascii_case(b"trailers")) {
        return Some("a te field other than \"trailers\"");
    }
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
    if let Some(length) = lengths.next() {
        let bytes = length.as_bytes();
        if lengths.next().is_some() || bytes.is_empty() || bytes.len() > 19 || !bytes.iter().all(u8::is_ascii_digit) {
            return Some("a content-length that is not one decimal number");
        }
    }
    None
}

/// The declared length, once [`malformed`] has passed the head.
pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(fields: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn connection_fields_and_te_make_a_request_malformed() {
        assert_eq!(malformed(&head(&[("accept", "*/*"), ("te", "trailers")])), None);
        for field in CONNECTION_SPECIFIC {
            let mut headers = HeaderMap::new();
            headers.insert(http::HeaderName::from_static(field), "x".parse().unwrap());
            assert_eq!(malformed(&headers), Some("a connection-specific header field"), "{field}");
        }
        assert!(malformed(&head(&[("te", "gzip")])).is_some());
        assert!(malformed(&head(&[("te", "trailers"), ("te", "gzip")])).is_some());
    }

    #[test]
    fn content_length_is_one_decimal_number() {
        assert_eq!(malformed(&head(&[("content-length", "10")])), None);
        assert_eq!(content_length(&head(&[("content-length", "10")])), Some(10));
        for bad in [
            &[("content-length", "1x")][..],
            &[("content-length", "+1")],
            &[("content-length", "5"), ("content-length", "5")],
        ] {
            assert!(malformed(&head(bad)).is_some(), "{bad:?}");
        }
    }
}
