//! MinRequestBodyDataRate for one request body: the bytes received over
//! the time the server waited for them, checked by the heartbeat.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;

use crate::MinDataRate;

/// No rate, or no wait.
const NONE: u64 = u64::MAX;

/// One body's rate state, shared by the reader, the application's
/// [`MinDataRates`](crate::MinDataRates) and the heartbeat. Times are the
/// heartbeat's milliseconds.
#[derive(Debug)]
pub(crate) struct BodyRate {
    limit: RateSlot,
    bytes: AtomicU64,
    /// Milliseconds spent waiting before the current wait.
    waited_ms: AtomicU64,
    /// Since when the reader waits (`NONE`: not waiting).
    waiting_since: AtomicU64,
    expired: AtomicBool,
    waker: AtomicWaker,
}

impl Default for BodyRate {
    fn default() -> Self {
        Self {
            limit: RateSlot::default(),
            bytes: AtomicU64::new(0),
            waited_ms: AtomicU64::new(0),
            waiting_since: AtomicU64::new(NONE),
            expired: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }
}

pub(crate) fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(NONE - 1)
}

/// A minimum data rate in two atomics, so the application can change it
/// while the connection and the heartbeat read it.
#[derive(Debug)]
pub(crate) struct RateSlot {
    /// Bytes per second; `NONE` is off.
    rate: AtomicU64,
    grace_ms: AtomicU64,
}

impl Default for RateSlot {
    fn default() -> Self {
        Self { rate: AtomicU64::new(NONE), grace_ms: AtomicU64::new(0) }
    }
}

impl RateSlot {
    /// Changes or turns off the rate.
    pub fn set(&self, rate: Option<MinDataRate>) {
        match rate {
            Some(rate) => {
                self.grace_ms.store(duration_ms(rate.grace_period), Ordering::Release);
                self.rate.store(rate.bytes_per_second.max(1), Ordering::Release);
            }
            None => self.rate.store(NONE, Ordering::Release),
        }
    }

    /// Bytes per second and the grace period in milliseconds, if on.
    pub fn get(&self) -> Option<(u64, u64)> {
        let rate = self.rate.load(Ordering::Acquire);
        (rate != NONE).then(|| (rate, self.grace_ms.load(Ordering::Acquire)))
    }
}

impl BodyRate {
    /// A new body: counts from zero under `rate`.
    pub fn start(&self, rate: Option<MinDataRate>) {
        self.bytes.store(0, Ordering::Relaxed);
        self.waited_ms.store(0, Ordering::Relaxed);
        self.waiting_since.store(NONE, Ordering::Relaxed);
        self.expired.store(false, Ordering::Release);
        self.set(rate);
    }

    /// Changes or turns off the rate.
    pub fn set(&self, rate: Option<MinDataRate>) {
        self.limit.set(rate);
    }

    /// Whether a rate is in force.
    pub fn is_on(&self) -> bool {
        self.limit.get().is_some()
    }

    /// The reader waits for bytes the application asked for.
    pub fn waiting(&self, now: u64) {
        if self.waiting_since.load(Ordering::Relaxed) == NONE {
            self.waiting_since.store(now, Ordering::Release);
        }
    }

    /// Bytes arrived; the wait, if any, ends.
    pub fn received(&self, bytes: u64, now: u64) {
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        let since = self.waiting_since.swap(NONE, Ordering::AcqRel);
        if since != NONE {
            self.waited_ms.fetch_add(now.saturating_sub(since), Ordering::AcqRel);
        }
    }

    /// The body is done: its rate no longer applies.
    pub fn end(&self) {
        self.limit.set(None);
        self.waiting_since.store(NONE, Ordering::Release);
    }

    /// Kestrel's rule, on a heartbeat: after the grace period, the bytes
    /// received over the time spent waiting must reach the rate. A body
    /// found too slow is marked, its reader woken, and its rate turned off.
    /// Returns whether it was too slow.
    pub fn check(&self, now: u64) -> bool {
        let Some((rate, grace_ms)) = self.limit.get() else {
            return false;
        };
        let since = self.waiting_since.load(Ordering::Acquire);
        let current = if since == NONE { 0 } else { now.saturating_sub(since) };
        let waited = self.waited_ms.load(Ordering::Acquire) + current;
        if waited <= grace_ms {
            return false;
        }
        // bytes / (waited / 1000) < rate, without division.
        if self.bytes.load(Ordering::Acquire).saturating_mul(1000) >= rate.saturating_mul(waited) {
            return false;
        }
        self.limit.set(None);
        self.expired.store(true, Ordering::Release);
        self.waker.wake();
        true
    }

    /// The reader found no bytes and waits at `now`: whether the stream's
    /// body has fallen below its rate (the heartbeat decides), logged under
    /// `kite::bad_requests` with the bytes `received` so far.
    pub fn poll_too_slow(&self, now: u64, received: u64, cx: &mut Context<'_>) -> bool {
        self.waiting(now);
        if self.poll_expired(cx).is_pending() {
            return false;
        }
        tracing::debug!(
            target: "kite::bad_requests",
            received,
            "request body slower than MinRequestBodyDataRate"
        );
        true
    }

    /// Ready once the body was found too slow.
    pub fn poll_expired(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.expired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.expired.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    #[cfg(test)]
    pub fn pretend(&self, waited_ms: u64, bytes: u64) {
        self.waited_ms.store(waited_ms, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
    }
}
