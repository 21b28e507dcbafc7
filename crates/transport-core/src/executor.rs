//! Where a connection's task runs.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A connection's whole task, boxed.
pub type BoxTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs tasks: what a transport with threads of its own implements so the
/// connections it accepts are served on those threads.
pub trait TaskSpawner: Send + Sync + 'static {
    /// Starts `task`; it runs to completion on the spawner's threads unless
    /// aborted through the returned handle.
    fn spawn(&self, task: BoxTask) -> AbortTask;
}

/// Stops a spawned task: its future is dropped without finishing. What a
/// server uses when graceful shutdown times out.
pub struct AbortTask {
    abort: Box<dyn Fn() + Send + Sync>,
}

impl AbortTask {
    /// A handle that calls `abort` to stop the task.
    pub fn new(abort: impl Fn() + Send + Sync + 'static) -> Self {
        Self { abort: Box::new(abort) }
    }

    /// Stops the task. Calling it after the task ended does nothing.
    pub fn abort(&self) {
        (self.abort)()
    }
}

impl fmt::Debug for AbortTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortTask").finish_non_exhaustive()
    }
}

/// A connection feature: the executor the connection's task should run on.
///
/// A transport whose sockets are driven by threads of its own (the mio
/// transport) adds it, so readiness wakes the task on the same thread, as
/// in libuv. A server that finds it spawns the connection's task with it;
/// without it the server uses its own runtime.
///
/// ```
/// use kite_transport_core::{AbortTask, BoxTask, ConnectionExecutor, TaskSpawner};
///
/// /// Runs each task to completion on the calling thread.
/// struct Inline;
/// impl TaskSpawner for Inline {
///     fn spawn(&self, task: BoxTask) -> AbortTask {
///         tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(task);
///         AbortTask::new(|| {})
///     }
/// }
///
/// let executor = ConnectionExecutor::new(Inline);
/// executor.spawn(Box::pin(async {})).abort();
/// ```
#[derive(Clone)]
pub struct ConnectionExecutor {
    spawner: Arc<dyn TaskSpawner>,
}

impl ConnectionExecutor {
    /// An executor feature that spawns with `spawner`.
    pub fn new(spawner: impl TaskSpawner) -> Self {
        Self { spawner: Arc::new(spawner) }
    }

    /// An executor feature from a shared spawner.
    pub fn from_arc(spawner: Arc<dyn TaskSpawner>) -> Self {
        Self { spawner }
    }

    /// Starts `task` on this executor.
    pub fn spawn(&self, task: BoxTask) -> AbortTask {
        self.spawner.spawn(task)
    }
}

impl fmt::Debug for ConnectionExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionExecutor").finish_non_exhaustive()
    }
}
