//! Counting a request body against its size limit and its minimum data
//! rate: the one check HTTP/1.1, HTTP/2 and HTTP/3 share.

use std::sync::Arc;
use std::task::Context;

use crate::timing::body_rate::BodyRate;
use crate::timing::heartbeat::{Clock, ConnectionTimer, Timeout};
use crate::RequestRejection;

/// Where a body's MinRequestBodyDataRate is kept: on HTTP/1.1 the
/// connection's timer (one request at a time); on HTTP/2 and HTTP/3 each
/// stream's own rate, read against the heartbeat's clock (`None` when no
/// rate is set).
pub(crate) trait RateMeter {
    /// `bytes` arrived; a wait, if any, ends.
    fn received(&self, bytes: u64);
    /// The reader waits for bytes: whether the body has fallen below its
    /// rate, registering `cx` to be woken when it does.
    fn poll_too_slow(&self, received: u64, cx: &mut Context<'_>) -> bool;
    /// The body ended: its rate no longer applies.
    fn end(&self);
}

impl RateMeter for ConnectionTimer {
    fn received(&self, bytes: u64) {
        self.body_received(bytes);
    }

    fn poll_too_slow(&self, _received: u64, cx: &mut Context<'_>) -> bool {
        self.body_waiting();
        self.poll_timeout(Timeout::RequestBodyRate, cx).is_ready()
    }

    fn end(&self) {
        self.end_body();
    }
}

impl RateMeter for Option<(Arc<BodyRate>, Clock)> {
    fn received(&self, bytes: u64) {
        if let Some((rate, clock)) = self {
            rate.received(bytes, clock.now_ms());
        }
    }

    fn poll_too_slow(&self, received: u64, cx: &mut Context<'_>) -> bool {
        self.as_ref().is_some_and(|(rate, clock)| rate.poll_too_slow(clock.now_ms(), received, cx))
    }

    fn end(&self) {
        if let Some((rate, _)) = self {
            rate.end();
        }
    }
}

/// The bytes a request body has delivered, checked against the body-size
/// limit in force (`MaxRequestBodySize`, which the application may change
/// until it starts reading) and the body's minimum data rate.
#[derive(Debug, Default)]
pub(crate) struct BodyMeter {
    received: u64,
}

impl BodyMeter {
    /// The body bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Before the next read: a declared `content-length`, or what already
    /// came, past `limit` refuses the body with 413.
    pub fn check_declared(&self, limit: Option<u64>, content_length: Option<u64>) -> Result<(), RequestRejection> {
        match limit {
            Some(limit) if content_length.unwrap_or(self.received) > limit => {
                Err(RequestRejection::RequestBodyTooLarge)
            }
            _ => Ok(()),
        }
    }

    /// `bytes` arrived: counted for the rate, and refused with 413 once
    /// the body passes `limit`.
    pub fn count(&mut self, bytes: u64, limit: Option<u64>, rate: &impl RateMeter) -> Result<(), RequestRejection> {
        self.received += bytes;
        rate.received(bytes);
        match limit {
            Some(limit) if self.received > limit => Err(RequestRejection::RequestBodyTooLarge),
            _ => Ok(()),
        }
    }

    /// The reader waits for bytes that have not come: refused with 408
    /// once the body is slower than its minimum data rate.
    pub fn poll_waiting(&self, rate: &impl RateMeter, cx: &mut Context<'_>) -> Result<(), RequestRejection> {
        if rate.poll_too_slow(self.received, cx) {
            return Err(RequestRejection::RequestBodyTimeout);
        }
        Ok(())
    }
}
