//! The `Date` header value. The heartbeat formats it once per tick; each
//! thread copies it when the tick's generation changes, so a response pays
//! one relaxed atomic load. With no heartbeat running (a connection served
//! outside a server), the thread formats it itself, once a second.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

/// The Unix second of [`GLOBAL`]'s value; 0 until a heartbeat ticks.
static GENERATION: AtomicU64 = AtomicU64::new(0);
static GLOBAL: Mutex<[u8; 29]> = Mutex::new([0; 29]);

fn unix_second(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH).map_or(1, |d| d.as_secs().max(1))
}

fn format(now: SystemTime) -> [u8; 29] {
    let mut value = [b' '; 29];
    let text = httpdate::fmt_http_date(now);
    if text.len() == 29 {
        value.copy_from_slice(text.as_bytes());
    }
    value
}

/// Formats the current date for every thread; the heartbeat calls it.
pub(crate) fn refresh() {
    let now = SystemTime::now();
    let second = unix_second(now);
    if GENERATION.load(Ordering::Acquire) == second {
        return;
    }
    *GLOBAL.lock().unwrap_or_else(|e| e.into_inner()) = format(now);
    GENERATION.store(second, Ordering::Release);
}

struct Cached {
    generation: u64,
    value: [u8; 29],
    header: Option<http::HeaderValue>,
}

thread_local! {
    static CACHED: RefCell<Cached> = const { RefCell::new(Cached { generation: 0, value: [0; 29], header: None }) };
}

/// Brings this thread's copy up to date.
fn update(cached: &mut Cached) {
    let generation = GENERATION.load(Ordering::Acquire);
    if generation != 0 {
        if cached.generation != generation {
            cached.value = *GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
            cached.generation = generation;
            cached.header = None;
        }
        return;
    }
    // No heartbeat: format here, once a second.
    let now = SystemTime::now();
    let second = unix_second(now);
    if cached.generation != second {
        cached.value = format(now);
        cached.generation = second;
        cached.header = None;
    }
}

/// Appends the current IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn extend(dst: &mut Vec<u8>) {
    CACHED.with(|cell| {
        let mut cached = cell.borrow_mut();
        update(&mut cached);
        dst.extend_from_slice(&cached.value);
    });
}

/// The current date as a header value (cloning it is a reference count,
/// not a format).
pub(crate) fn header_value() -> http::HeaderValue {
    CACHED.with(|cell| {
        let mut cached = cell.borrow_mut();
        update(&mut cached);
        if cached.header.is_none() {
            cached.header = http::HeaderValue::from_bytes(&cached.value).ok();
        }
        cached.header.clone().unwrap_or_else(|| http::HeaderValue::from_static(""))
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
        super::refresh();
        let value = super::header_value();
        assert!(httpdate::parse_http_date(value.to_str().unwrap()).is_ok());
    }
}
