//! Live connections, for graceful shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use kite_transport_core::{CloseSignal, ConnectionId};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// Every connection the server is serving: its close signal and its task.
#[derive(Default)]
pub(crate) struct Tracker {
    live: Mutex<HashMap<ConnectionId, (CloseSignal, AbortHandle)>>,
    closing: AtomicBool,
    emptied: Notify,
}

impl Tracker {
    fn lock(&self) -> MutexGuard<'_, HashMap<ConnectionId, (CloseSignal, AbortHandle)>> {
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Spawns `task` for connection `id`; it is tracked until it ends.
    pub fn spawn<F>(self: &Arc<Self>, id: ConnectionId, close: CloseSignal, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let tracker = Arc::clone(self);
        let mut live = self.lock();
        if self.closing.load(Ordering::Acquire) {
            close.request_close();
        }
        let handle = tokio::spawn(async move {
            let _guard = Deregister { tracker, id };
            task.await;
        });
        live.insert(id, (close, handle.abort_handle()));
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
        for (_, abort) in self.lock().values() {
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

struct Deregister {
    tracker: Arc<Tracker>,
    id: ConnectionId,
}

impl Drop for Deregister {
    fn drop(&mut self) {
        let mut live = self.tracker.lock();
        live.remove(&self.id);
        if live.is_empty() {
            self.tracker.emptied.notify_waiters();
        }
    }
}
