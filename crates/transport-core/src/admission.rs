//! Back-pressure: at its connection limit the transport stops accepting
//! and lets the kernel's backlog hold new connections, until one closes
//! (actix-server's `maxconn`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Counts a transport's live connections against its limit.
pub(crate) struct Admission {
    live: AtomicUsize,
    max: Option<usize>,
    waiting: Mutex<Vec<Waker>>,
}

impl Admission {
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

    /// How many connections are live.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }
}

/// One live connection; dropping it makes room.
pub(crate) struct Admitted {
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
