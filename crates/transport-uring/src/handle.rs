//! What a loop shares with every thread: its task queue, the list of
//! connections and listeners it must service, its buffer ring, and the
//! eventfd that wakes it; and [`LoopHandle`], the counted reference that
//! keeps the loop thread running.

use std::cell::Cell;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use kite_transport_core::loop_executor::{LoopTask, TaskLoop};

use crate::accept::ListenerShared;
use crate::buffers::{BufferMemory, BufferRing};
use crate::conn::Conn;

pub(crate) type Task = LoopTask<LoopHandle>;

thread_local! {
    /// The loop the current thread runs, by the address of its state.
    static CURRENT_LOOP: Cell<usize> = const { Cell::new(0) };
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Something the loop must look at on its next tick.
pub(crate) enum Command {
    /// A connection asked for its receive, a send, or its close.
    Conn(Arc<Conn>),
    /// A listener asked for its accept to be armed, or to stop.
    Listener(Arc<ListenerShared>),
}

pub(crate) struct Shared {
    pub index: usize,
    /// Tasks woken and waiting to run on this loop.
    pub queue: Mutex<VecDeque<Arc<Task>>>,
    /// Connections and listeners to service.
    pub commands: Mutex<Vec<Command>>,
    /// The receive buffers: the loop takes them, readers give them back.
    pub buffers: Mutex<BufferRing>,
    pub memory: Arc<BufferMemory>,
    /// An eventfd the loop always has a read armed on: writing it wakes a
    /// loop that waits for completions.
    wake_fd: OwnedFd,
    /// The loop is about to wait, or waits, for completions: a thread that
    /// gives it work must write `wake_fd`.
    pub parked: AtomicBool,
    /// The runtime whose timers and spawner the loop's tasks use.
    pub runtime: Option<tokio::runtime::Handle>,
    /// Live handles: the transport's, each listener's, stream's and task's.
    pub handles: AtomicUsize,
    /// The loop thread ended (stopped, or panicked): streams get errors.
    pub dead: AtomicBool,
}

impl Shared {
    pub fn new(index: usize, buffers: BufferRing, wake_fd: OwnedFd, runtime: Option<tokio::runtime::Handle>) -> Self {
        Self {
            index,
            queue: Mutex::new(VecDeque::new()),
            commands: Mutex::new(Vec::new()),
            memory: Arc::clone(buffers.memory()),
            buffers: Mutex::new(buffers),
            wake_fd,
            parked: AtomicBool::new(false),
            runtime,
            handles: AtomicUsize::new(1),
            dead: AtomicBool::new(false),
        }
    }

    pub fn wake_fd(&self) -> &OwnedFd {
        &self.wake_fd
    }

    /// Marks the current thread as this loop's thread.
    pub fn enter_thread(self: &Arc<Self>) {
        CURRENT_LOOP.with(|current| current.set(Arc::as_ptr(self) as usize));
    }

    pub fn on_loop_thread(&self) -> bool {
        CURRENT_LOOP.with(|current| current.get()) == self as *const Self as usize
    }

    /// Wakes the loop if it waits and the caller is another thread. The
    /// caller has already published the work (under a lock), and the loop
    /// sets `parked` before it looks for work the last time, so one of the
    /// two sees the other.
    pub fn notify(&self) {
        if self.on_loop_thread() {
            return;
        }
        if self.parked.swap(false, Ordering::SeqCst) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to an eventfd we own.
            let written = unsafe { libc::write(self.wake_fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
            if written != 8 {
                let e = std::io::Error::last_os_error();
                // EAGAIN: the counter is full, so the loop is woken anyway.
                if e.raw_os_error() != Some(libc::EAGAIN) {
                    tracing::warn!(event_loop = self.index, error = %e, "could not wake an io_uring loop");
                }
            }
        }
    }

    /// Puts `command` on the loop's list and wakes it.
    pub fn command(&self, command: Command) {
        lock(&self.commands).push(command);
        self.notify();
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }
}

/// A counted reference to one loop. The loop thread runs while any handle
/// exists and stops when the last is dropped.
pub(crate) struct LoopHandle {
    shared: Arc<Shared>,
}

impl LoopHandle {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Which loop this is.
    pub fn index(&self) -> usize {
        self.shared.index
    }
}

impl TaskLoop for LoopHandle {
    /// Queues `task` to run on this loop, waking the loop if the caller is
    /// another thread.
    fn enqueue(&self, task: Arc<Task>) {
        lock(&self.shared.queue).push_back(task);
        self.shared.notify();
    }

    fn task_panicked(&self, message: &str) {
        tracing::error!(event_loop = self.shared.index, panic = %message, "a connection task panicked");
    }
}

impl Clone for LoopHandle {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        Self { shared: Arc::clone(&self.shared) }
    }
}

impl Drop for LoopHandle {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last user is gone: let the thread see it and stop.
            self.shared.parked.store(true, Ordering::SeqCst);
            self.shared.notify();
        }
    }
}
