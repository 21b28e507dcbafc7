//! Each event loop runs the tasks of the connections it serves, so a
//! readiness event wakes its task on the same thread (libuv's model).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use kite_transport_core::{AbortTask, BoxTask, TaskSpawner};

use crate::event_loop::LoopHandle;

/// How many tasks one turn of the loop runs before it polls for events
/// again, so a busy loop still picks up new readiness.
pub(crate) const TASKS_PER_TURN: usize = 256;

/// A task on a loop: its future (with a handle that keeps the loop alive
/// while the future does) and whether it is queued.
pub(crate) struct Task {
    slot: Mutex<Option<(BoxTask, LoopHandle)>>,
    queued: AtomicBool,
    event_loop: LoopHandle,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Task {
    fn schedule(self: Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let event_loop = self.event_loop.clone();
        event_loop.enqueue(self);
    }

    /// Polls the task once; on the loop thread only.
    pub(crate) fn run(self: Arc<Self>) {
        self.queued.store(false, Ordering::Release);
        let waker = Waker::from(Arc::clone(&self));
        let mut cx = Context::from_waker(&waker);
        let mut slot = lock(&self.slot);
        let Some((future, _)) = slot.as_mut() else {
            return;
        };
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
        match polled {
            Ok(Poll::Pending) => {}
            Ok(Poll::Ready(())) => *slot = None,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                tracing::error!(event_loop = self.event_loop.index(), panic = %message, "a connection task panicked");
                *slot = None;
            }
        }
    }
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.schedule();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        Arc::clone(self).schedule();
    }
}

/// Spawns connection tasks onto one event loop.
pub(crate) struct LoopSpawner {
    pub(crate) event_loop: LoopHandle,
}

impl TaskSpawner for LoopSpawner {
    fn spawn(&self, task: BoxTask) -> AbortTask {
        let task = Arc::new(Task {
            slot: Mutex::new(Some((task, self.event_loop.clone()))),
            queued: AtomicBool::new(false),
            event_loop: self.event_loop.clone(),
        });
        let weak = Arc::downgrade(&task);
        task.schedule();
        AbortTask::new(move || {
            if let Some(task) = weak.upgrade() {
                // Waits for a poll in progress, then drops the future here.
                let dropped = lock(&task.slot).take();
                drop(dropped);
            }
        })
    }
}
