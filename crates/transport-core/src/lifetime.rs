//! The graceful-close request a server sends to its connections, and
//! the reason a connection ended, which travels back the same way.

use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::ConnectionEndReason;

/// A request to close a connection gracefully (Kestrel's
/// `IConnectionLifetimeNotificationFeature.RequestClose`).
///
/// The server keeps one clone per connection and calls
/// [`request_close`](Self::request_close) at shutdown; the protocol handling
/// the connection watches it and ends at the next safe point: HTTP/1.1 after
/// the response in flight, with `Connection: close`; an idle keep-alive
/// connection at once. Clones share one state. A new signal is not requested.
///
/// The same shared state carries the answer back: the layer that ends the
/// connection for a reason records it with
/// [`set_end_reason`](Self::set_end_reason), and the server reads it when
/// the connection is gone (the `error.type` tag of
/// `kite.connection.duration`).
///
/// # Examples
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use kite_transport_core::CloseSignal;
///
/// let signal = CloseSignal::new();
/// let watcher = signal.clone();
/// signal.request_close();
/// watcher.requested().await; // returns at once: close was requested
/// assert!(watcher.is_requested());
/// # });
/// ```
#[derive(Clone, Default)]
pub struct CloseSignal {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    requested: AtomicBool,
    /// A [`ConnectionEndReason`]'s code; 0 while none is recorded.
    end_reason: AtomicU8,
    wakers: Mutex<Wakers>,
}

/// The tasks to wake on close. Nearly always one (the connection's own), so
/// the first is kept inline: no allocation per connection.
#[derive(Default)]
struct Wakers {
    first: Option<Waker>,
    rest: Vec<Waker>,
}

impl Wakers {
    fn register(&mut self, waker: &Waker) {
        match &self.first {
            None => self.first = Some(waker.clone()),
            Some(first) if first.will_wake(waker) => {}
            Some(_) if self.rest.iter().any(|w| w.will_wake(waker)) => {}
            Some(_) => self.rest.push(waker.clone()),
        }
    }

    fn wake_all(&mut self) {
        let first = self.first.take();
        let rest = std::mem::take(&mut self.rest);
        first.into_iter().chain(rest).for_each(Waker::wake);
    }
}

impl CloseSignal {
    /// A signal on which close has not been requested.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the connection to close at its next safe point. Idempotent.
    pub fn request_close(&self) {
        if self.inner.requested.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut wakers = std::mem::take(&mut *lock(&self.inner.wakers));
        wakers.wake_all();
    }

    /// Whether close has been requested.
    pub fn is_requested(&self) -> bool {
        self.inner.requested.load(Ordering::Acquire)
    }

    /// Polls for the close request; registers `cx`'s waker until it comes.
    pub fn poll_requested(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_requested() {
            return Poll::Ready(());
        }
        lock(&self.inner.wakers).register(cx.waker());
        // Close may have been requested between the check and the push.
        if self.is_requested() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Waits until close is requested.
    pub async fn requested(&self) {
        poll_fn(|cx| self.poll_requested(cx)).await
    }

    /// Records why the connection is ending. The first reason recorded is
    /// kept: the layer that saw the cause first knows it best (an HTTP/1.1
    /// 413 before the I/O error that follows it).
    pub fn set_end_reason(&self, reason: ConnectionEndReason) {
        let _ = self.inner.end_reason.compare_exchange(0, reason as u8, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Why the connection ended, if a layer recorded a reason; `None` for
    /// a clean close.
    pub fn end_reason(&self) -> Option<ConnectionEndReason> {
        ConnectionEndReason::from_code(self.inner.end_reason.load(Ordering::Acquire))
    }

    /// A watcher for one task that polls often: it registers its waker
    /// only when the waker changes, so a poll is one atomic load, not a lock.
    pub fn watch(&self) -> CloseWatch {
        CloseWatch { signal: self.clone(), registered: None }
    }
}

/// Watches a [`CloseSignal`] from one task (see [`CloseSignal::watch`]).
#[derive(Debug)]
pub struct CloseWatch {
    signal: CloseSignal,
    registered: Option<Waker>,
}

impl CloseWatch {
    /// Polls for the close request, registering `cx`'s waker only if it is
    /// not the one already registered.
    pub fn poll_requested(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.is_requested() {
            return Poll::Ready(());
        }
        if self.registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        self.registered = Some(cx.waker().clone());
        self.signal.poll_requested(cx)
    }

    /// Whether close has been requested.
    pub fn is_requested(&self) -> bool {
        self.signal.is_requested()
    }

    /// The signal watched, to record an end reason on it.
    pub fn signal(&self) -> &CloseSignal {
        &self.signal
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A waker list stays valid even if a holder panicked.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl fmt::Debug for CloseSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloseSignal").field("requested", &self.is_requested()).finish()
    }
}
