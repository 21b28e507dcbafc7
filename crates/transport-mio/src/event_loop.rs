//! The event-loop threads: each owns a `mio::Poll` and turns readiness
//! events into waker calls.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Waker};

use mio::{Events, Poll, Registry, Token};

use kite_transport_core::loop_executor::{LoopTask, TaskLoop, TASKS_PER_TURN};

type Task = LoopTask<LoopHandle>;

/// The token of the loop's own waker: new tasks from other threads, or stop.
const NOTIFY: Token = Token(usize::MAX);

thread_local! {
    /// The loop the current thread runs, by the address of its state.
    static CURRENT_LOOP: Cell<usize> = const { Cell::new(0) };
}

/// The readiness of one registered source, shared between the loop thread
/// (which advances it) and the task that owns the source (which waits on
/// it). Each direction counts the readiness events seen; a task that found
/// the source not ready compares counts to tell whether an event arrived
/// while it was registering its waker, so no wake-up is lost.
#[derive(Default)]
pub(crate) struct IoState {
    read: Direction,
    write: Direction,
}

#[derive(Default)]
pub(crate) struct Direction {
    events: AtomicUsize,
    /// Sticky: the peer closed this direction or the socket failed, so an
    /// operation will not block again even though no further event comes.
    closed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Direction {
    /// The number of readiness events so far.
    pub fn events(&self) -> usize {
        self.events.load(Ordering::Acquire)
    }

    /// Whether this direction was closed or the socket failed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Registers `cx`'s waker for the next event.
    pub fn register(&self, cx: &Context<'_>) {
        let mut slot = lock(&self.waker);
        match &*slot {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
    }

    fn fire(&self, closed: bool) {
        if closed {
            self.closed.store(true, Ordering::Release);
        }
        self.events.fetch_add(1, Ordering::AcqRel);
        if let Some(waker) = lock(&self.waker).take() {
            waker.wake();
        }
    }
}

impl IoState {
    pub fn read(&self) -> &Direction {
        &self.read
    }

    pub fn write(&self) -> &Direction {
        &self.write
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The sources registered with one loop, by token.
#[derive(Default)]
struct Sources {
    slots: Vec<Option<Arc<IoState>>>,
    free: Vec<usize>,
}

struct Shared {
    index: usize,
    registry: Registry,
    notify: mio::Waker,
    /// Tasks woken and waiting to run on this loop.
    queue: Mutex<VecDeque<Arc<Task>>>,
    /// The runtime whose timers and spawner the loop's tasks use.
    runtime: Option<tokio::runtime::Handle>,
    sources: Mutex<Sources>,
    /// Live handles: the transport's, each listener's and each stream's.
    handles: AtomicUsize,
    /// The loop thread ended (stopped, or panicked): sources get errors.
    dead: AtomicBool,
}

/// A counted reference to one event loop. The loop thread runs while any
/// handle exists and stops when the last is dropped.
pub(crate) struct LoopHandle {
    shared: Arc<Shared>,
}

impl LoopHandle {
    /// Starts event loop number `index` of transport number `transport` on
    /// a thread of its own, named `kite-mio-{transport}-{index}`. Its tasks
    /// run inside `runtime`'s context, for timers and `tokio::spawn`.
    pub fn start(transport: usize, index: usize, runtime: Option<tokio::runtime::Handle>) -> io::Result<Self> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let notify = mio::Waker::new(poll.registry(), NOTIFY)?;
        let shared = Arc::new(Shared {
            index,
            registry,
            notify,
            queue: Mutex::new(VecDeque::new()),
            runtime,
            sources: Mutex::new(Sources::default()),
            handles: AtomicUsize::new(1),
            dead: AtomicBool::new(false),
        });
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new().name(format!("kite-mio-{transport}-{index}")).spawn(move || {
            CURRENT_LOOP.with(|current| current.set(Arc::as_ptr(&thread_shared) as usize));
            let _runtime = thread_shared.runtime.as_ref().map(|runtime| runtime.enter());
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&thread_shared, poll)));
            if let Err(panic) = outcome {
                let message = kite_transport_core::loop_executor::panic_message(panic.as_ref());
                tracing::error!(event_loop = index, panic = %message, "a mio event loop panicked; its connections fail");
            }
            thread_shared.die();
        })?;
        Ok(Self { shared })
    }

    /// The registry to register sources with.
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// Which loop this is.
    pub fn index(&self) -> usize {
        self.shared.index
    }

    /// Whether the loop thread has ended.
    pub fn is_dead(&self) -> bool {
        self.shared.dead.load(Ordering::Acquire)
    }

    /// Adds `state` to the loop's table; returns its token.
    pub fn insert(&self, state: Arc<IoState>) -> usize {
        let mut sources = lock(&self.shared.sources);
        match sources.free.pop() {
            Some(token) => {
                sources.slots[token] = Some(state);
                token
            }
            None => {
                sources.slots.push(Some(state));
                sources.slots.len() - 1
            }
        }
    }

    /// Removes the source with `token`.
    pub fn remove(&self, token: usize) {
        let mut sources = lock(&self.shared.sources);
        if let Some(slot) = sources.slots.get_mut(token) {
            if slot.take().is_some() {
                sources.free.push(token);
            }
        }
    }
}

impl TaskLoop for LoopHandle {
    /// Queues `task` to run on this loop, waking the loop if the caller is
    /// another thread.
    fn enqueue(&self, task: Arc<Task>) {
        lock(&self.shared.queue).push_back(task);
        let here = CURRENT_LOOP.with(|current| current.get()) == Arc::as_ptr(&self.shared) as usize;
        if !here {
            if let Err(e) = self.shared.notify.wake() {
                tracing::warn!(event_loop = self.shared.index, error = %e, "could not wake a mio event loop");
            }
        }
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
            // The last user is gone: stop the thread.
            if let Err(e) = self.shared.notify.wake() {
                tracing::warn!(event_loop = self.shared.index, error = %e, "could not wake a mio event loop to stop it");
            }
        }
    }
}

impl Shared {
    /// Marks the loop dead and wakes every waiter, so tasks see errors
    /// rather than wait for events that will never come.
    fn die(&self) {
        self.dead.store(true, Ordering::Release);
        // Queued tasks hold handles to this loop: let them go.
        let queued = std::mem::take(&mut *lock(&self.queue));
        drop(queued);
        let states: Vec<Arc<IoState>> = lock(&self.sources).slots.iter().flatten().cloned().collect();
        for state in states {
            state.read.fire(true);
            state.write.fire(true);
        }
    }
}

/// What one event says, taken out of the event batch.
struct Readiness {
    readable: bool,
    writable: bool,
    read_closed: bool,
    write_closed: bool,
}

impl Readiness {
    fn of(event: &mio::event::Event) -> Self {
        Self {
            readable: event.is_readable(),
            writable: event.is_writable(),
            read_closed: event.is_read_closed() || event.is_error(),
            write_closed: event.is_write_closed() || event.is_error(),
        }
    }
}

/// Runs up to [`TASKS_PER_TURN`] queued tasks; returns whether more wait.
fn run_tasks(shared: &Shared) -> bool {
    for _ in 0..TASKS_PER_TURN {
        let next = lock(&shared.queue).pop_front();
        match next {
            Some(task) => task.run(),
            None => return false,
        }
    }
    !lock(&shared.queue).is_empty()
}

fn run(shared: &Shared, mut poll: Poll) {
    let mut events = Events::with_capacity(1024);
    let mut ready: Vec<(Arc<IoState>, Readiness)> = Vec::with_capacity(1024);
    loop {
        let more = run_tasks(shared);
        // With tasks still queued, only look for events; do not sleep.
        let timeout = more.then_some(std::time::Duration::ZERO);
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::error!(event_loop = shared.index, error = %e, "mio poll failed; stopping the event loop");
            return;
        }
        {
            // One lock per batch of events, not per event.
            let sources = lock(&shared.sources);
            for event in events.iter() {
                if event.token() == NOTIFY {
                    continue;
                }
                if let Some(Some(state)) = sources.slots.get(event.token().0) {
                    ready.push((Arc::clone(state), Readiness::of(event)));
                }
            }
        }
        for (state, readiness) in ready.drain(..) {
            if readiness.readable || readiness.read_closed {
                state.read.fire(readiness.read_closed);
            }
            if readiness.writable || readiness.write_closed {
                state.write.fire(readiness.write_closed);
            }
        }
        if shared.handles.load(Ordering::Acquire) == 0 {
            tracing::debug!(event_loop = shared.index, "mio event loop stopped");
            return;
        }
    }
}
