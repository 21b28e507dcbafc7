//! Back-pressure for transports: at its connection limit a transport
//! stops accepting and lets the kernel's backlog hold new connections,
//! until one closes (actix-server's `maxconn`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Counts a transport's live connections against its limit: a listener
/// waits on [`poll_room`](Self::poll_room) before it accepts, and each
/// accepted connection holds an [`Admitted`] until it closes.
///
/// ```
/// use kite_transport_core::Admission;
///
/// let admission = Admission::new(Some(1));
/// let first = admission.admit();
/// assert_eq!(admission.live(), 1);
/// drop(first);
/// assert_eq!(admission.live(), 0);
/// ```
#[derive(Debug)]
pub struct Admission {
    live: AtomicUsize,
    max: Option<usize>,
    waiting: Mutex<Vec<Waker>>,
}

impl Admission {
    /// A counter with room for `max` connections; `None` is no limit.
    pub fn new(max: Option<usize>) -> Arc<Self> {
        Arc::new(Self { live: AtomicUsize::new(0), max, waiting: Mutex::new(Vec::new()) })
    }

    /// Ready while there is room for another connection; otherwise waits
    /// until one closes.
    pub fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(max) = self.max else {
            return Poll::Ready(());
        };
        if self.live.load(Ordering::Acquire) < max {
            return Poll::Ready(());
        }
        {
            let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
                waiting.push(cx.waker().clone());
            }
        }
        // A connection may have closed while the waker was registered.
        if self.live.load(Ordering::Acquire) < max {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Counts one more live connection until the guard drops.
    pub fn admit(self: &Arc<Self>) -> Admitted {
        self.live.fetch_add(1, Ordering::AcqRel);
        Admitted { admission: Arc::clone(self) }
    }

    /// Whether another connection fits under the limit now.
    pub fn has_room(&self) -> bool {
        match self.max {
            Some(max) => self.live.load(Ordering::Acquire) < max,
            None => true,
        }
    }

    /// How many connections are live.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }
}

/// One live connection; dropping it makes room and wakes a listener that
/// waits for it.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let admission = &self.admission;
        let before = admission.live.fetch_sub(1, Ordering::AcqRel);
        if admission.max.is_some_and(|max| before >= max) {
            let waiting = std::mem::take(&mut *admission.waiting.lock().unwrap_or_else(|p| p.into_inner()));
            for waker in waiting {
                waker.wake();
            }
        }
    }
}
