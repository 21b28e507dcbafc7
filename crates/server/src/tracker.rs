//! Live connections, for graceful shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use kite_transport_core::{AbortTask, CloseSignal, ConnectionExecutor, ConnectionId};
use tokio::sync::Notify;

type Live = HashMap<ConnectionId, (CloseSignal, Arc<AbortTask>)>;

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
            Some(executor) => executor.spawn(Box::pin(task)),
            None => {
                let handle = tokio::spawn(task).abort_handle();
                AbortTask::new(move || handle.abort())
            }
        };
        live.insert(id, (close, Arc::new(abort)));
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
        let aborts: Vec<Arc<AbortTask>> = self.lock().values().map(|(_, abort)| Arc::clone(abort)).collect();
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
        if live.is_empty() {
            self.tracker.emptied.notify_waiters();
        }
    }
}
