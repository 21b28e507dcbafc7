//! A mio source registered with an event loop, and the readiness protocol
//! async code uses on it.

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

use mio::event::Source;
use mio::{Interest, Token};

use crate::event_loop::{Direction, IoState, LoopHandle};

/// Which way an operation goes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Way {
    Read,
    Write,
}

/// A source registered for read and write readiness with one loop;
/// deregistered when dropped.
pub(crate) struct Registered<S: Source> {
    io: S,
    state: Arc<IoState>,
    token: usize,
    event_loop: LoopHandle,
}

impl<S: Source> Registered<S> {
    pub fn new(mut io: S, event_loop: LoopHandle) -> io::Result<Self> {
        let state = Arc::new(IoState::default());
        let token = event_loop.insert(Arc::clone(&state));
        if let Err(e) = event_loop.registry().register(&mut io, Token(token), Interest::READABLE | Interest::WRITABLE) {
            event_loop.remove(token);
            return Err(e);
        }
        Ok(Self { io, state, token, event_loop })
    }

    pub fn io(&self) -> &S {
        &self.io
    }

    pub fn event_loop(&self) -> &LoopHandle {
        &self.event_loop
    }

    fn direction(&self, way: Way) -> &Direction {
        match way {
            Way::Read => self.state.read(),
            Way::Write => self.state.write(),
        }
    }

    /// The count of readiness events in direction `way`, to pass to
    /// [`poll_io`](Self::poll_io) later.
    pub fn events(&self, way: Way) -> usize {
        self.direction(way).events()
    }

    /// Runs `op` until it does not block. When it would block, waits for
    /// the next readiness event; an event that arrived since `op` started
    /// makes it try again at once.
    pub fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        way: Way,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            let seen = self.direction(way).events();
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.poll_event_since(cx, way, seen).is_pending() {
                        return Poll::Pending;
                    }
                    if self.event_loop.is_dead() {
                        return Poll::Ready(Err(loop_gone()));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
    }

    /// Ready once a readiness event in direction `way` came after `seen`.
    pub fn poll_event_since(&self, cx: &mut Context<'_>, way: Way, seen: usize) -> Poll<()> {
        let direction = self.direction(way);
        if direction.events() != seen || direction.is_closed() {
            return Poll::Ready(());
        }
        direction.register(cx);
        // An event may have come while the waker was being registered.
        if direction.events() != seen || direction.is_closed() || self.event_loop.is_dead() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

pub(crate) fn loop_gone() -> io::Error {
    io::Error::other("the mio event loop serving this socket has stopped")
}

impl<S: Source> Drop for Registered<S> {
    fn drop(&mut self) {
        let _ = self.event_loop.registry().deregister(&mut self.io);
        self.event_loop.remove(self.token);
    }
}
