//! The state a request body shares with the connection that feeds it.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Waker};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http::HeaderMap;

use crate::BodyError;

/// One request body's hand-off point: the connection decodes at most one
/// chunk ahead of the application, and only once the application has
/// started reading.
#[derive(Default)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// An HTTP/2 stream's reset request (`StreamReset`).
    pub reset: ResetState,
}

#[derive(Default)]
pub(crate) struct State {
    pub chunk: Option<Bytes>,
    pub trailers: Option<HeaderMap>,
    pub finished: bool,
    pub error: Option<BodyError>,
    pub read_started: bool,
    pub reader_dropped: bool,
    pub reader_waker: Option<Waker>,
    pub conn_waker: Option<Waker>,
    pub limit: Option<u64>,
    pub content_length: Option<u64>,
    pub delivered: u64,
    /// An HTTP/2 body the application let go of before the client ended
    /// it, kept so that the stream can drain it after the response
    /// instead of resetting it.
    pub unread_h2: Option<h2::RecvStream>,
}

/// What the connection may do for the body now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// The reader is gone: stop feeding; drain what is left.
    Dropped,
    /// The reader has not asked yet, or has not taken the last chunk.
    Wait,
    /// Decode and deliver the next piece; `limit` is the body-size limit now.
    Data { limit: Option<u64> },
}

impl Shared {
    pub fn new(limit: Option<u64>, content_length: Option<u64>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State { limit, content_length, ..State::default() }),
            reset: Default::default(),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the connection should feed the body, registering `cx` to be
    /// woken when that changes.
    pub fn poll_want(&self, cx: &mut Context<'_>) -> Want {
        let mut state = self.lock();
        if state.reader_dropped {
            return Want::Dropped;
        }
        if !state.read_started || state.chunk.is_some() || state.trailers.is_some() {
            set_waker(&mut state.conn_waker, cx);
            return Want::Wait;
        }
        Want::Data { limit: state.limit }
    }

    /// Whether the application has started reading and still holds the
    /// body, which has not ended: it may be waiting for the client.
    pub fn is_being_read(&self) -> bool {
        let state = self.lock();
        state.read_started && !state.reader_dropped && !state.finished
    }

    /// Hands the reader a chunk. The connection feeding from its own task
    /// (`cx`) does not wake a reader in that task: it polls it next.
    pub fn deliver_data(&self, data: Bytes, cx: &Context<'_>) {
        let mut state = self.lock();
        state.chunk = Some(data);
        wake_other(&mut state.reader_waker, cx);
    }

    /// Hands the reader the trailers; as [`deliver_data`](Self::deliver_data).
    pub fn deliver_trailers(&self, trailers: http::HeaderMap, cx: &Context<'_>) {
        let mut state = self.lock();
        state.trailers = Some(trailers);
        wake_other(&mut state.reader_waker, cx);
    }

    /// The body ended; `cx` is the feeding task's, if it has one.
    pub fn finish(&self, cx: Option<&Context<'_>>) {
        let mut state = self.lock();
        state.finished = true;
        wake_unless(&mut state.reader_waker, cx);
    }

    /// The body failed; `cx` is the feeding task's, if it has one.
    pub fn fail(&self, error: BodyError, cx: Option<&Context<'_>>) {
        let mut state = self.lock();
        state.error = Some(error);
        state.finished = true;
        wake_unless(&mut state.reader_waker, cx);
    }
}

/// Wakes the waker in `slot`, unless it is `cx`'s own task's: a task that
/// polls both sides looks at the other side again itself, and waking it
/// would only poll it once more for nothing.
pub(crate) fn wake_other(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot.take() {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        Some(waker) => waker.wake(),
        None => {}
    }
}

fn wake_unless(slot: &mut Option<Waker>, cx: Option<&Context<'_>>) {
    match cx {
        Some(cx) => wake_other(slot, cx),
        None => wake(slot),
    }
}

pub(crate) fn set_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

pub(crate) fn wake(slot: &mut Option<Waker>) {
    if let Some(waker) = slot.take() {
        waker.wake();
    }
}

/// No reset was asked for: outside the range of an HTTP/2 error code.
pub(crate) const NOT_REQUESTED: u64 = u64::MAX;

/// A stream's reset request, kept in its body state.
#[derive(Debug)]
pub(crate) struct ResetState {
    pub code: AtomicU64,
    pub waker: AtomicWaker,
}

impl Default for ResetState {
    fn default() -> Self {
        Self { code: AtomicU64::new(NOT_REQUESTED), waker: AtomicWaker::new() }
    }
}
