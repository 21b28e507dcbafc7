//! The rules of RFC 9114 §4.2 that h3 leaves to the server: a request
//! head with a connection-specific field, or a `te` other than
//! `trailers`, or a `content-length` that is not one decimal number, is
//! malformed, a stream error H3_MESSAGE_ERROR.

use http::header::{CONTENT_LENGTH, TE};
use http::HeaderMap;

/// Fields that name a hop of an HTTP/1.1 connection, which HTTP/3 has
/// none of.
const CONNECTION_SPECIFIC: [&str; 5] = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"];

/// Checks `headers` once: the declared `content-length` (`None` without
/// one), or why the request is malformed.
pub(super) fn checked(headers: &HeaderMap) -> Result<Option<u64>, &'static str> {
    if CONNECTION_SPECIFIC.iter().any(|name| headers.contains_key(*name)) {
        return Err("a connection-specific header field");
    }
    if headers.get_all(TE).iter().any(|value| !value.as_bytes().eq_ignore_ascii_case(b"trailers")) {
        return Err("a te field other than \"trailers\"");
    }
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
    let Some(length) = lengths.next() else { return Ok(None) };
    let bytes = length.as_bytes();
    if lengths.next().is_some() || bytes.is_empty() || bytes.len() > 19 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err("a content-length that is not one decimal number");
    }
    // At most 19 digits: always fits.
    Ok(Some(bytes.iter().fold(0u64, |n, digit| n * 10 + u64::from(digit - b'0'))))
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
        assert_eq!(checked(&head(&[("accept", "*/*"), ("te", "trailers")])), Ok(None));
        for field in CONNECTION_SPECIFIC {
            let mut headers = HeaderMap::new();
            headers.insert(http::HeaderName::from_static(field), "x".parse().unwrap());
            assert_eq!(checked(&headers), Err("a connection-specific header field"), "{field}");
        }
        assert!(checked(&head(&[("te", "gzip")])).is_err());
        assert!(checked(&head(&[("te", "trailers"), ("te", "gzip")])).is_err());
    }

    #[test]
    fn content_length_is_one_decimal_number() {
        assert_eq!(checked(&head(&[("content-length", "10")])), Ok(Some(10)));
        assert_eq!(checked(&head(&[("content-length", "9999999999999999999")])), Ok(Some(9_999_999_999_999_999_999)));
        for bad in [
            &[("content-length", "1x")][..],
            &[("content-length", "+1")],
            &[("content-length", "5"), ("content-length", "5")],
        ] {
            assert!(checked(&head(bad)).is_err(), "{bad:?}");
        }
    }
}
