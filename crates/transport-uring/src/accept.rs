//! The state a listener shares with the loop that accepts for it: the
//! sockets accepted ahead of the consumer, the accept op's stand, and the
//! signal that a closing listener's accept has ended.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use kite_transport_core::Admission;

/// How many accepted sockets a listener holds for its consumer before the
/// loop stops accepting and leaves new connections in the kernel's
/// backlog. Small: connections held here are accepted and not yet served.
pub(crate) const ACCEPT_QUEUE: usize = 16;

/// Where a listener's multishot accept stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Accept {
    /// Not armed: the consumer arms it when it waits.
    Idle,
    /// Armed, with its op's user data.
    Armed(u64),
    /// A cancel is on its way (the queue is full, the connection limit is
    /// reached, or the listener closes).
    Cancelling(u64),
}

pub(crate) struct ListenState {
    pub accepted: VecDeque<OwnedFd>,
    pub waker: Option<Waker>,
    pub accept: Accept,
    /// An accept failed (a full file table, say): the next poll reports it.
    pub error: Option<io::Error>,
    /// On the loop's list of things to service.
    pub scheduled: bool,
    /// The listener stops: the loop cancels the accept.
    pub closing: bool,
}

impl ListenState {
    /// Whether the consumer wants the accept armed: it waits, or the queue
    /// has room again.
    pub fn wants_accept(&self) -> bool {
        self.accept == Accept::Idle && !self.closing && self.accepted.len() < ACCEPT_QUEUE
    }
}

/// What a listener shares with the loop that accepts for it.
pub(crate) struct ListenerShared {
    fd: OwnedFd,
    pub admission: Arc<Admission>,
    state: Mutex<ListenState>,
    /// Signalled when a closing listener's accept has ended.
    stopped: Condvar,
}

impl ListenerShared {
    pub fn new(fd: OwnedFd, admission: Arc<Admission>) -> Self {
        Self {
            fd,
            admission,
            state: Mutex::new(ListenState {
                accepted: VecDeque::new(),
                waker: None,
                accept: Accept::Idle,
                error: None,
                scheduled: false,
                closing: false,
            }),
            stopped: Condvar::new(),
        }
    }

    /// The listening socket.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn state(&self) -> MutexGuard<'_, ListenState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits, at most `timeout`, for the loop's word that the accept ended.
    pub fn wait_stopped<'a>(
        &self,
        state: MutexGuard<'a, ListenState>,
        timeout: Duration,
    ) -> MutexGuard<'a, ListenState> {
        self.stopped.wait_timeout(state, timeout).unwrap_or_else(|p| p.into_inner()).0
    }

    /// The loop's word that no accept is armed any more.
    pub fn notify_stopped(&self) {
        self.stopped.notify_all();
    }
}
