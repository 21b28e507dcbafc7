//! One connection's state, shared by its stream (on any thread) and the
//! loop that owns its descriptor and its operations.
//!
//! The stream never makes a system call for data: it copies received
//! bytes out of the loop's buffers, appends what it writes to a queue,
//! and asks the loop (through [`Conn::schedule`]) to act. The loop arms
//! and cancels the receive, submits the queued bytes, and closes the
//! descriptor once the stream is gone and nothing is in flight.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;

/// How many received buffers a connection may hold unread before the loop
/// stops receiving for it, so one slow reader cannot take the whole ring;
/// the kernel's socket buffer and TCP's window hold the rest. Receiving
/// resumes when the reader is down to half.
pub(crate) const MAX_HELD_BUFFERS: usize = 16;

/// How many bytes a connection may have written and not yet sent before
/// a write waits for the loop to send some: the user-space part of the
/// socket's send buffer.
pub(crate) const MAX_QUEUED_SEND: usize = 256 * 1024;

/// A received buffer's unread part.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chunk {
    pub id: u16,
    pub start: u32,
    pub end: u32,
}

/// The received chunks a connection holds, in order: the first inline, so
/// the usual one (a request in one buffer) needs no allocation and an
/// idle connection holds none.
#[derive(Default)]
pub(crate) struct Chunks {
    first: Option<Chunk>,
    /// Empty while `first` is `None`.
    rest: VecDeque<Chunk>,
}

impl Chunks {
    pub fn push_back(&mut self, chunk: Chunk) {
        if self.first.is_none() {
            self.first = Some(chunk);
        } else {
            self.rest.push_back(chunk);
        }
    }

    pub fn front_mut(&mut self) -> Option<&mut Chunk> {
        self.first.as_mut()
    }

    pub fn pop_front(&mut self) -> Option<Chunk> {
        let first = self.first.take();
        self.first = self.rest.pop_front();
        first
    }

    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// Takes every chunk out, in order.
    pub fn drain(&mut self) -> impl Iterator<Item = Chunk> + '_ {
        self.first.take().into_iter().chain(self.rest.drain(..))
    }
}

/// Where a connection's multishot receive stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recv {
    /// Not armed yet: the loop arms it when it first services the
    /// connection.
    Idle,
    /// Armed: completions come as data arrives. The op's user data.
    Armed(u64),
    /// A cancel is on its way (the reader holds too many buffers, or the
    /// stream was dropped). The op's user data.
    Cancelling(u64),
    /// Stopped until the reader catches up.
    Paused,
    /// Ended because the loop's buffer ring was empty; the loop re-arms it
    /// when buffers come back.
    Starved,
    /// Ended for good: end of stream, an error, or the stream dropped.
    Done,
}

impl Recv {
    /// Whether an op of the receive is still in the kernel.
    pub fn in_flight(self) -> bool {
        matches!(self, Recv::Armed(_) | Recv::Cancelling(_))
    }
}

/// What the loop and the stream share, under one lock.
pub(crate) struct ConnState {
    /// Received bytes the reader has not taken, in order.
    pub received: Chunks,
    /// The peer closed its side (a zero-length receive).
    pub read_eof: bool,
    /// A receive failed with this OS error.
    pub read_error: Option<i32>,
    pub read_waker: Option<Waker>,
    pub recv: Recv,

    /// Bytes written and not yet submitted.
    pub queued: Vec<u8>,
    /// Bytes submitted, sent up to `sent`. Not touched while `send_op` is
    /// set: the kernel reads from it.
    pub inflight: Vec<u8>,
    pub sent: usize,
    /// The user data of the send in the kernel.
    pub send_op: Option<u64>,
    /// A send failed with this OS error; later writes fail with it too.
    pub write_error: Option<i32>,
    pub write_waker: Option<Waker>,
    /// The stream was shut down for writing: no more writes; the loop
    /// sends the end of the stream after the last queued byte.
    pub write_shut: bool,
    /// The end of the stream went to the kernel (`shutdown(SHUT_WR)`).
    pub fin_sent: bool,

    /// The connection is on its loop's list of connections to service.
    pub scheduled: bool,
    /// The stream was dropped: the loop sends what is queued, then closes.
    pub closing: bool,
    /// The user data of the timer that bounds a dropped stream's last send.
    pub deadline: Option<u64>,
    /// The loop closed the descriptor; nothing more happens.
    pub closed: bool,
}

impl ConnState {
    /// Bytes written and not yet sent.
    pub fn unsent(&self) -> usize {
        self.queued.len() + self.inflight.len() - self.sent
    }

    pub fn wake_reader(&mut self) {
        if let Some(waker) = self.read_waker.take() {
            waker.wake();
        }
    }

    pub fn wake_writer(&mut self) {
        if let Some(waker) = self.write_waker.take() {
            waker.wake();
        }
    }

    /// Marks the connection for its loop; returns whether the caller must
    /// put it on the loop's list (it was not there yet).
    #[must_use]
    pub fn schedule(&mut self) -> bool {
        !std::mem::replace(&mut self.scheduled, true)
    }
}

/// A connection: its descriptor (closed by the loop, never by the stream)
/// and its shared state.
pub(crate) struct Conn {
    fd: Mutex<Option<OwnedFd>>,
    raw: RawFd,
    state: Mutex<ConnState>,
}

impl Conn {
    pub fn new(fd: OwnedFd) -> Self {
        let raw = fd.as_raw_fd();
        Self {
            fd: Mutex::new(Some(fd)),
            raw,
            state: Mutex::new(ConnState {
                received: Chunks::default(),
                read_eof: false,
                read_error: None,
                read_waker: None,
                recv: Recv::Idle,
                queued: Vec::new(),
                inflight: Vec::new(),
                sent: 0,
                send_op: None,
                write_error: None,
                write_waker: None,
                write_shut: false,
                fin_sent: false,
                // The loop arms the first receive as soon as it sees it.
                scheduled: true,
                closing: false,
                deadline: None,
                closed: false,
            }),
        }
    }

    /// The descriptor's number, valid until the loop closes it (after the
    /// stream is dropped and every operation on it ended).
    pub fn raw_fd(&self) -> RawFd {
        self.raw
    }

    /// Takes the descriptor for closing; `None` once taken.
    pub fn take_fd(&self) -> Option<OwnedFd> {
        self.fd.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    pub fn state(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An OS error from a completion's negative result.
pub(crate) fn os_error(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}
