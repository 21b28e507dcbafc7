//! Tasks on a transport's own loop threads: the executor half of a
//! libuv-style transport (mio, io_uring), so the loop that completes a
//! socket's IO also runs the task that waits on it.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use crate::{AbortTask, Admission, BoxTask, ConnectionExecutor, TaskSpawner};

/// How many tasks one turn of a loop should run before it looks for IO
/// again, so a busy loop still picks up new events.
pub const TASKS_PER_TURN: usize = 256;

/// A loop thread that runs [`LoopTask`]s: what a transport's loop handle
/// implements to take part in [`LoopSpawner`].
///
/// A handle is cloned into every task it runs, so a loop that counts its
/// handles stays alive while a task does.
pub trait TaskLoop: Clone + Send + Sync + 'static {
    /// Queues `task` to run on the loop's thread, and wakes the loop if the
    /// caller is another thread. The loop calls [`LoopTask::run`] on it.
    fn enqueue(&self, task: Arc<LoopTask<Self>>);

    /// Reports that a task panicked with `message` (the task is dropped
    /// and the loop goes on): where the transport logs it.
    fn task_panicked(&self, message: &str);
}

/// A task on a loop: its future (with a loop handle that lives as long as
/// the future) and whether it is queued.
pub struct LoopTask<L: TaskLoop> {
    slot: Mutex<Option<(BoxTask, L)>>,
    queued: AtomicBool,
    event_loop: L,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<L: TaskLoop> LoopTask<L> {
    fn schedule(self: Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let event_loop = self.event_loop.clone();
        event_loop.enqueue(self);
    }

    /// Polls the task once. Call it on the loop's thread only. A task that
    /// panics is dropped and reported through
    /// [`TaskLoop::task_panicked`]; the loop goes on.
    pub fn run(self: Arc<Self>) {
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
                self.event_loop.task_panicked(&panic_message(panic.as_ref()));
                *slot = None;
            }
        }
    }
}

impl<L: TaskLoop> Wake for LoopTask<L> {
    fn wake(self: Arc<Self>) {
        self.schedule();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        Arc::clone(self).schedule();
    }
}

/// Spawns connection tasks onto one loop: the [`TaskSpawner`] behind the
/// [`ConnectionExecutor`](crate::ConnectionExecutor) feature a loop
/// transport adds to its connections.
pub struct LoopSpawner<L: TaskLoop> {
    event_loop: L,
}

impl<L: TaskLoop> LoopSpawner<L> {
    /// A spawner onto `event_loop`.
    pub fn new(event_loop: L) -> Self {
        Self { event_loop }
    }
}

impl<L: TaskLoop> TaskSpawner for LoopSpawner<L> {
    fn spawn(&self, task: BoxTask) -> AbortTask {
        let task = Arc::new(LoopTask {
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

/// The text of a caught panic's payload: what a loop logs when a task or
/// the loop itself panicked.
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// A loop transport's loops, handed out in turn to the connections it
/// accepts, each with the [`ConnectionExecutor`] feature that runs tasks
/// on it, and the transport's connection count against its limit.
pub struct LoopSet<L: TaskLoop> {
    admission: Arc<Admission>,
    loops: Vec<L>,
    executors: Vec<ConnectionExecutor>,
    next: AtomicUsize,
}

impl<L: TaskLoop> LoopSet<L> {
    /// The set of `loops` (at least one), with room for `max_connections`
    /// open at once (`None`: no limit).
    pub fn new(loops: Vec<L>, max_connections: Option<usize>) -> Self {
        assert!(!loops.is_empty(), "a loop transport has at least one loop");
        let executors = loops.iter().map(|l| ConnectionExecutor::new(LoopSpawner::new(l.clone()))).collect();
        Self { admission: Admission::new(max_connections), loops, executors, next: AtomicUsize::new(0) }
    }

    /// The next loop, round-robin, and its executor feature.
    pub fn next(&self) -> (L, &ConnectionExecutor) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.loops.len();
        (self.loops[i].clone(), &self.executors[i])
    }

    /// The transport's open connections against its limit.
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// How many loops there are.
    pub fn len(&self) -> usize {
        self.loops.len()
    }

    /// Always false: a set has at least one loop.
    pub fn is_empty(&self) -> bool {
        self.loops.is_empty()
    }
}
