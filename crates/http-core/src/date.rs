//! The `Date` header value, formatted at most once a second per thread.

use std::cell::RefCell;
use std::time::{Duration, SystemTime};

struct CachedDate {
    value: [u8; 29],
    next_update: SystemTime,
}

thread_local! {
    static CACHED: RefCell<CachedDate> = const {
        RefCell::new(CachedDate { value: [0; 29], next_update: SystemTime::UNIX_EPOCH })
    };
}

/// Appends the current IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn extend(dst: &mut Vec<u8>) {
    CACHED.with(|cell| {
        let mut cached = cell.borrow_mut();
        let now = SystemTime::now();
        if now >= cached.next_update {
            let text = httpdate::fmt_http_date(now);
            if text.len() == 29 {
                cached.value.copy_from_slice(text.as_bytes());
            }
            let into_second = now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
            cached.next_update = now + Duration::from_secs(1) - Duration::from_nanos(u64::from(into_second));
        }
        dst.extend_from_slice(&cached.value);
    });
}

thread_local! {
    static CACHED_VALUE: RefCell<(u64, Option<http::HeaderValue>)> = const { RefCell::new((0, None)) };
}

/// The current date as a header value, made at most once a second per
/// thread (cloning it is a reference count, not a format).
pub(crate) fn header_value() -> http::HeaderValue {
    let second = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED_VALUE.with(|cell| {
        let mut cached = cell.borrow_mut();
        match &cached.1 {
            Some(value) if cached.0 == second => value.clone(),
            _ => {
                let mut text = Vec::with_capacity(29);
                extend(&mut text);
                let value = http::HeaderValue::from_bytes(&text).unwrap_or_else(|_| http::HeaderValue::from_static(""));
                *cached = (second, Some(value.clone()));
                value
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn date_is_imf_fixdate() {
        let mut out = Vec::new();
        super::extend(&mut out);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.ends_with(" GMT"), "{text}");
        assert!(httpdate::parse_http_date(text).is_ok());
    }
}
