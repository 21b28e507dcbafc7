//! Live connections, for graceful shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use kite_transport_core::{AbortTask, CloseSignal, ConnectionExecutor, ConnectionId};
use tokio::sync::Notify;

type Live = HashMap<ConnectionId, (CloseSignal, Abort)>;

/// How to stop a connection's task: tokio's handle itself (no allocation
/// per connection), or what a transport's executor gave.
#[derive(Clone)]
enum Abort {
    Tokio(tokio::task::AbortHandle),
    Executor(Arc<AbortTask>),
}

impl Abort {
    fn abort(&self) {
        match self {
            Abort::Tokio(handle) => handle.abort(),
            Abort::Executor(task) => task.abort(),
        }
    }
}

/// Every connection the server is serving: its close signal and its task.
#[derive(Default)]
pub(crate) struct Tracker {
    live: Mutex<Live>,
    closing: AtomicBool,
    emptied: Notify,
}

impl Tracker {
    fn lock(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Spawns `task` for connection `id`, on `executor` when the transport
    /// gave the connection one, else on the current tokio runtime. It is
    /// tracked until it ends.
    pub fn spawn<F>(
        self: &Arc<Self>,
        id: ConnectionId,
        close: CloseSignal,
        executor: Option<ConnectionExecutor>,
        task: F,
    ) where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let tracker = Arc::clone(self);
        let mut live = self.lock();
        if self.closing.load(Ordering::Acquire) {
            close.request_close();
        }
        let task = Tracked { task, _guard: Deregister { tracker, id } };
        let abort = match executor {
            Some(executor) => Abort::Executor(Arc::new(executor.spawn(Box::pin(task)))),
            None => Abort::Tokio(tokio::spawn(task).abort_handle()),
        };
        live.insert(id, (close, abort));
    }

    /// How many connections are live.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Asks every connection, and any accepted from now on, to close.
    pub fn request_close_all(&self) {
        self.closing.store(true, Ordering::Release);
        for (close, _) in self.lock().values() {
            close.request_close();
        }
    }

    /// Aborts every connection still live.
    pub fn abort_all(&self) {
        // An abort may drop the task at once, and its guard takes the lock:
        // collect first, abort after.
        let aborts: Vec<Abort> = self
            .lock()
            .values()
            .map(|(close, abort)| {
                close.set_end_reason(kite_transport_core::ConnectionEndReason::AppShutdownTimeout);
                abort.clone()
            })
            .collect();
        for abort in aborts {
            abort.abort();
        }
    }

    /// Waits until no connection is live.
    pub async fn wait_empty(&self) {
        loop {
            let emptied = self.emptied.notified();
            if self.len() == 0 {
                return;
            }
            emptied.await;
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection's task, deregistered when it ends or is dropped. A
    /// struct rather than an `async` block: a block that awaits the task it
    /// captured holds it twice, and this state lives as long as the
    /// connection.
    struct Tracked<F> {
        #[pin]
        task: F,
        _guard: Deregister,
    }
}

impl<F: std::future::Future<Output = ()>> std::future::Future for Tracked<F> {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.project().task.poll(cx)
    }
}

struct Deregister {
    tracker: Arc<Tracker>,
    id: ConnectionId,
}

impl Drop for Deregister {
    fn drop(&mut self) {
        let mut live = self.tracker.lock();
        live.remove(&self.id);
        // After a burst, give the table's room back (a quarter full: half
        // of it), so memory returns once connections close.
        if live.capacity() > 64 && live.len() * 4 < live.capacity() {
            let keep = live.len() * 2;
            live.shrink_to(keep);
        }
        if live.is_empty() {
            self.tracker.emptied.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_table_gives_its_room_back_after_a_burst() {
        let tracker = Arc::new(Tracker::default());
        let (release, released) = tokio::sync::watch::channel(false);
        for _ in 0..1_000 {
            let mut released = released.clone();
            tracker.spawn(ConnectionId::next(), CloseSignal::new(), None, async move {
                let _ = released.wait_for(|go| *go).await;
            });
        }
        assert_eq!(tracker.len(), 1_000);
        let burst = tracker.lock().capacity();
        release.send(true).unwrap();
        tracker.wait_empty().await;
        let after = tracker.lock().capacity();
        assert!(after <= 128, "the table kept room for {after} connections after a burst of {burst}");
    }
}
