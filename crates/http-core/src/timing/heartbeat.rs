//! One heartbeat per server, as Kestrel has: a thread that ticks once a
//! second, refreshes the cached `Date`, and checks every connection's
//! deadline and request body data rate. Connections hold no timer of their
//! own: setting a deadline is two atomic stores.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;

use super::body_rate::{duration_ms, BodyRate, RateSlot};
use crate::MinDataRate;

/// No deadline, or no rate.
const NONE: u64 = u64::MAX;

/// What passed, when a connection's timer fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Timeout {
    /// The connection's deadline: KeepAliveTimeout between requests,
    /// RequestHeadersTimeout during a head, the drain or linger time.
    Deadline = 1,
    /// A pending write took longer than MinResponseDataRate allows.
    ResponseRate = 2,
    /// The request body arrived slower than MinRequestBodyDataRate.
    RequestBodyRate = 4,
    /// A beat passed, for a connection that asked for every one.
    Tick = 8,
}

/// A server's heartbeat; clones share it. The thread starts with the first
/// connection and ends once every clone is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Heartbeat {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    interval: Duration,
    start: Instant,
    /// Milliseconds since `start`, as of the last tick.
    now_ms: AtomicU64,
    started: AtomicBool,
    connections: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    slots: Vec<Option<Arc<TimerState>>>,
    free: Vec<usize>,
}

impl Heartbeat {
    /// A heartbeat ticking every `interval` (Kestrel: 1 s).
    pub fn new(interval: Duration) -> Self {
        let inner = Inner {
            interval: interval.max(Duration::from_millis(1)),
            start: Instant::now(),
            now_ms: AtomicU64::new(0),
            started: AtomicBool::new(false),
            connections: Mutex::new(Registry::default()),
        };
        Self { inner: Arc::new(inner) }
    }

    /// How often it ticks.
    pub fn interval(&self) -> Duration {
        self.inner.interval
    }

    /// Registers a connection; its timer unregisters on drop.
    pub fn register(&self) -> ConnectionTimer {
        self.start();
        let state = Arc::new(TimerState::default());
        let mut registry = self.inner.connections.lock().unwrap_or_else(|e| e.into_inner());
        let slot = match registry.free.pop() {
            Some(slot) => {
                registry.slots[slot] = Some(Arc::clone(&state));
                slot
            }
            None => {
                registry.slots.push(Some(Arc::clone(&state)));
                registry.slots.len() - 1
            }
        };
        drop(registry);
        ConnectionTimer { state, heartbeat: Arc::clone(&self.inner), slot }
    }

    /// Starts the thread once.
    fn start(&self) {
        if self.inner.started.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.tick();
        let weak = Arc::downgrade(&self.inner);
        let interval = self.inner.interval;
        let spawned = std::thread::Builder::new().name("kite-heartbeat".into()).spawn(move || run(weak, interval));
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the heartbeat thread; timeouts will not fire");
        }
    }
}

fn run(inner: Weak<Inner>, interval: Duration) {
    loop {
        std::thread::sleep(interval);
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let started = Instant::now();
        inner.tick();
        let took = started.elapsed();
        if took > interval {
            tracing::warn!(?took, "the heartbeat took longer than its interval");
        }
    }
}

impl Inner {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::Relaxed)
    }

    fn tick(&self) {
        super::date::refresh();
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1);
        self.now_ms.store(now, Ordering::Relaxed);
        let registry = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        for state in registry.slots.iter().flatten() {
            state.check(now);
        }
    }
}

/// What the heartbeat and a connection share.
#[derive(Debug)]
struct TimerState {
    deadline: AtomicU64,
    write_deadline: AtomicU64,
    /// The [`Timeout`]s that passed, as bits.
    expired: AtomicU8,
    waker: AtomicWaker,
    /// Whether the connection wants [`Timeout::Tick`] on every beat.
    ticks: AtomicBool,
    /// The current HTTP/1.x request body's rate (inline: one allocation
    /// per connection, not two).
    body: BodyRate,
    /// MinResponseDataRate in bytes per second (`NONE` is off).
    response: RateSlot,
}

impl Default for TimerState {
    fn default() -> Self {
        Self {
            deadline: AtomicU64::new(NONE),
            write_deadline: AtomicU64::new(NONE),
            expired: AtomicU8::new(0),
            waker: AtomicWaker::new(),
            ticks: AtomicBool::new(false),
            body: BodyRate::default(),
            response: RateSlot::default(),
        }
    }
}

impl TimerState {
    fn check(&self, now: u64) {
        let mut fired = 0;
        for (deadline, kind) in [(&self.deadline, Timeout::Deadline), (&self.write_deadline, Timeout::ResponseRate)] {
            let at = deadline.load(Ordering::Acquire);
            if at != NONE
                && now >= at
                && deadline.compare_exchange(at, NONE, Ordering::AcqRel, Ordering::Acquire).is_ok()
            {
                fired |= kind as u8;
            }
        }
        if self.body.check(now) {
            fired |= Timeout::RequestBodyRate as u8;
        }
        if self.ticks.load(Ordering::Relaxed) {
            fired |= Timeout::Tick as u8;
        }
        if fired != 0 {
            self.expired.fetch_or(fired, Ordering::AcqRel);
            self.waker.wake();
        }
    }

    fn forget(&self, kind: Timeout) {
        self.expired.fetch_and(!(kind as u8), Ordering::AcqRel);
    }
}

/// A connection's registration with the heartbeat.
#[derive(Debug)]
pub(crate) struct ConnectionTimer {
    state: Arc<TimerState>,
    heartbeat: Arc<Inner>,
    slot: usize,
}

impl ConnectionTimer {
    /// Arms the deadline `after` from now (to the heartbeat's precision),
    /// replacing the previous one and forgetting it if it had passed.
    pub fn set_deadline(&self, after: Duration) {
        self.state.forget(Timeout::Deadline);
        let at = self.heartbeat.now_ms().saturating_add(duration_ms(after)).min(NONE - 1);
        self.state.deadline.store(at, Ordering::Release);
    }

    /// Disarms the deadline.
    pub fn clear_deadline(&self) {
        self.state.deadline.store(NONE, Ordering::Release);
        self.state.forget(Timeout::Deadline);
    }

    /// Ready once `kind` has passed; registers `cx` to be woken by the
    /// heartbeat otherwise.
    pub fn poll_timeout(&self, kind: Timeout, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.expired.load(Ordering::Acquire) & kind as u8 != 0 {
            return Poll::Ready(());
        }
        self.state.waker.register(cx.waker());
        if self.state.expired.load(Ordering::Acquire) & kind as u8 != 0 {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Sets the rates for the next request: MinRequestBodyDataRate applies
    /// from its first body read, MinResponseDataRate to its writes.
    pub fn start_request(&self, body: Option<MinDataRate>, response: Option<MinDataRate>) {
        let state = &self.state;
        state.forget(Timeout::RequestBodyRate);
        state.body.start(body);
        state.response.set(response);
    }

    /// The connection waits for body bytes the application asked for.
    pub fn body_waiting(&self) {
        self.state.body.waiting(self.heartbeat.now_ms());
    }

    /// Body bytes arrived; the wait, if any, ends.
    pub fn body_received(&self, bytes: u64) {
        self.state.body.received(bytes, self.heartbeat.now_ms());
    }

    /// The body is done (or abandoned): its rate no longer applies.
    pub fn end_body(&self) {
        self.state.body.end();
    }

    /// Asks for (or stops asking for) [`Timeout::Tick`] on every beat: an
    /// HTTP/2 connection checks its streams' body rates then.
    pub fn want_ticks(&self, enabled: bool) {
        self.state.ticks.store(enabled, Ordering::Relaxed);
    }

    /// Forgets a tick, once handled.
    pub fn take_tick(&self) {
        self.state.forget(Timeout::Tick);
    }

    /// The heartbeat's clock, for readers of their own.
    pub fn clock(&self) -> Clock {
        Clock(Arc::clone(&self.heartbeat))
    }

    /// A write of `pending` bytes could not finish at once: unless one is
    /// already timed, it must finish within max(grace, pending / rate).
    pub fn write_pending(&self, pending: usize) {
        let state = &self.state;
        let Some((rate, grace_ms)) = state.response.get() else { return };
        if state.write_deadline.load(Ordering::Acquire) != NONE {
            return;
        }
        let needed = (pending as u64).saturating_mul(1000) / rate;
        let allowed = needed.max(grace_ms);
        state.write_deadline.store(self.heartbeat.now_ms().saturating_add(allowed).min(NONE - 1), Ordering::Release);
    }

    /// The pending write finished.
    pub fn write_done(&self) {
        self.state.write_deadline.store(NONE, Ordering::Release);
    }

    /// The application's handle on the current HTTP/1.x request's rates.
    pub fn rates(&self) -> MinDataRates {
        MinDataRates(Rates::Connection(Arc::clone(&self.state)))
    }
}

/// The heartbeat's clock: milliseconds as of its last beat.
#[derive(Clone, Debug)]
pub(crate) struct Clock(Arc<Inner>);

impl Clock {
    pub fn now_ms(&self) -> u64 {
        self.0.now_ms()
    }
}

impl Drop for ConnectionTimer {
    fn drop(&mut self) {
        let mut registry = self.heartbeat.connections.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = registry.slots.get_mut(self.slot) {
            *slot = None;
            registry.free.push(self.slot);
        }
        // Every connection has gone: give a burst's slots back.
        if registry.free.len() == registry.slots.len() && registry.slots.capacity() > 64 {
            registry.slots = Vec::new();
            registry.free = Vec::new();
        }
    }
}

/// A request extension that changes or turns off the request's minimum
/// data rates (Kestrel's `IHttpMinRequestBodyDataRateFeature` and
/// `IHttpMinResponseDataRateFeature`). Every HTTP/1.x request carries one;
/// the rates start from [`Limits`](crate::Limits) for each request.
///
/// ```
/// use http::Request;
/// use kite_http_core::{MinDataRates, RequestBody};
///
/// /// A long-poll upload may trickle: no minimum for its body.
/// fn relax(request: &Request<RequestBody>) {
///     if let Some(rates) = request.extensions().get::<MinDataRates>() {
///         rates.set_request_body(None).expect("HTTP/1.x allows any change");
///     }
/// }
/// ```
#[derive(Clone, Debug)]
pub struct MinDataRates(Rates);

/// One reference either way: cloned and dropped once per request.
#[derive(Clone, Debug)]
enum Rates {
    /// An HTTP/1.x connection's timer: the body and the response rates.
    Connection(Arc<TimerState>),
    /// An HTTP/2 stream's body rate.
    Stream(Arc<BodyRate>),
}

impl MinDataRates {
    /// Sets MinRequestBodyDataRate for this request; `None` turns it off.
    ///
    /// # Errors
    ///
    /// On HTTP/2 a request may only turn it off, as in Kestrel; any other
    /// value is refused.
    pub fn set_request_body(&self, rate: Option<MinDataRate>) -> Result<(), RateChangeRefused> {
        match &self.0 {
            Rates::Connection(state) => state.body.set(rate),
            Rates::Stream(_) if rate.is_some() => return Err(RateChangeRefused),
            Rates::Stream(body) => body.set(None),
        }
        Ok(())
    }

    /// Sets MinResponseDataRate for this request; `None` turns it off.
    /// HTTP/2 leaves response pacing to flow control, so there it does
    /// nothing.
    pub fn set_response(&self, rate: Option<MinDataRate>) {
        if let Rates::Connection(state) = &self.0 {
            state.response.set(rate);
        }
    }

    /// The handle of an HTTP/2 stream's body rate.
    pub(crate) fn http2(body: Arc<BodyRate>) -> Self {
        Self(Rates::Stream(body))
    }
}

/// An HTTP/2 request tried to set a request body rate; it may only turn it
/// off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("on HTTP/2 a request may only turn MinRequestBodyDataRate off")]
pub struct RateChangeRefused;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_gives_its_room_back_once_every_connection_is_gone() {
        let heartbeat = Heartbeat::new(Duration::from_secs(3600));
        let timers: Vec<ConnectionTimer> = (0..1_000).map(|_| heartbeat.register()).collect();
        assert_eq!(heartbeat.inner.connections.lock().unwrap().slots.len(), 1_000);
        drop(timers);
        let registry = heartbeat.inner.connections.lock().unwrap();
        assert_eq!((registry.slots.capacity(), registry.free.capacity()), (0, 0));
    }

    #[test]
    fn a_deadline_fires_on_the_tick_after_it_passes() {
        let heartbeat = Heartbeat::new(Duration::from_secs(3600));
        let timer = heartbeat.register();
        timer.set_deadline(Duration::from_millis(0));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(timer.poll_timeout(Timeout::Deadline, &mut cx).is_pending(), "nothing fires between ticks");
        heartbeat.inner.tick();
        assert!(timer.poll_timeout(Timeout::Deadline, &mut cx).is_ready());
        assert!(timer.poll_timeout(Timeout::ResponseRate, &mut cx).is_pending());
        timer.set_deadline(Duration::from_secs(60));
        heartbeat.inner.tick();
        assert!(timer.poll_timeout(Timeout::Deadline, &mut cx).is_pending(), "a new deadline forgets the old expiry");
    }

    #[test]
    fn a_slow_body_fails_its_rate_after_the_grace_period() {
        let heartbeat = Heartbeat::new(Duration::from_secs(3600));
        let timer = heartbeat.register();
        let rate = Some(MinDataRate::new(240, Duration::from_secs(5)));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let state = &timer.state;
        // 6 s of waiting for 1,000 bytes is 166 B/s: too slow.
        timer.start_request(rate, None);
        state.body.pretend(6_000, 1_000);
        state.check(0);
        assert!(timer.poll_timeout(Timeout::RequestBodyRate, &mut cx).is_ready());
        // 2,000 bytes in the same time is fast enough.
        timer.start_request(rate, None);
        state.body.pretend(6_000, 2_000);
        state.check(0);
        assert!(timer.poll_timeout(Timeout::RequestBodyRate, &mut cx).is_pending());
        // Within the grace period nothing is checked.
        timer.start_request(rate, None);
        state.body.pretend(4_000, 0);
        state.check(0);
        assert!(timer.poll_timeout(Timeout::RequestBodyRate, &mut cx).is_pending());
        // A request that turned its rate off is never cut.
        timer.start_request(rate, None);
        timer.rates().set_request_body(None).unwrap();
        state.body.pretend(60_000, 0);
        state.check(0);
        assert!(timer.poll_timeout(Timeout::RequestBodyRate, &mut cx).is_pending());
        let stream = MinDataRates::http2(Arc::default());
        assert!(stream.set_request_body(rate).is_err(), "HTTP/2 may only turn it off");
        assert!(stream.set_request_body(None).is_ok());
    }

    #[test]
    fn slots_are_reused() {
        let heartbeat = Heartbeat::new(Duration::from_secs(3600));
        let a = heartbeat.register();
        drop(a);
        let _b = heartbeat.register();
        assert_eq!(heartbeat.inner.connections.lock().unwrap().slots.len(), 1);
    }
}
