//! Listeners of the io_uring transport: a multishot accept on one loop,
//! each accepted socket handed to the next loop in turn.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use kite_socket::{self as socket, SocketFile, SocketOptions, UnixPathState};
use kite_transport_core::{Connection, ConnectionContext, ConnectionId, Endpoint, Listener};

use crate::accept::{Accept, ListenState, ListenerShared};
use crate::conn::Conn;
use crate::handle::{Command, LoopHandle};
use crate::stream::UringStream;
use crate::{RingLoops, TRANSPORT_NAME};

/// A bound TCP or Unix listener of the io_uring transport. One loop runs
/// its multishot accept; each accepted socket goes to the next loop in
/// turn, which serves it and runs its task.
///
/// Dropping it stops accepting: the accept is cancelled before the drop
/// returns (from any thread but the loop's own), and connections it had
/// accepted but not handed out are closed. A server that wants those
/// served takes them first with [`Listener::poll_close`]. A Unix socket
/// file it created is removed.
pub struct UringListener {
    shared: Arc<ListenerShared>,
    event_loop: LoopHandle,
    local: Endpoint,
    unix: bool,
    loops: Arc<RingLoops>,
    /// Removes the Unix socket file this listener created, last.
    _file: Option<SocketFile>,
}

impl UringListener {
    pub(crate) fn bind(endpoint: &Endpoint, loops: Arc<RingLoops>, options: &SocketOptions) -> io::Result<Self> {
        let (fd, local, unix, file): (OwnedFd, Endpoint, bool, Option<SocketFile>) = match endpoint {
            Endpoint::Tcp(addr) => {
                let listener = socket::bind_tcp(*addr, options)?;
                // Accepted sockets inherit these from the listener, so the
                // loop sets nothing per connection.
                options.apply_to_stream(&listener)?;
                let local = Endpoint::Tcp(listener.local_addr()?);
                (listener.into(), local, false, None)
            }
            Endpoint::Unix(path) => {
                let (listener, state) = socket::bind_unix(path, options)?;
                if state == UnixPathState::StaleRemoved {
                    tracing::info!(path = %path.display(), "replaced a stale unix socket file");
                }
                (listener.into(), endpoint.clone(), true, Some(SocketFile::new(path.clone())))
            }
            Endpoint::Inherited(fd) => match socket::adopt_listener(fd.take()?)? {
                socket::InheritedListener::Tcp(listener) => {
                    options.apply_to_stream(&listener)?;
                    let local = Endpoint::Tcp(listener.local_addr()?);
                    (listener.into(), local, false, None)
                }
                socket::InheritedListener::Unix(listener, path) => {
                    (listener.into(), path.map_or(Endpoint::Unnamed, Endpoint::Unix), true, None)
                }
            },
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("the io_uring transport cannot bind {other}"),
                ));
            }
        };
        let (event_loop, _) = loops.next();
        let shared = Arc::new(ListenerShared::new(fd, Arc::clone(loops.admission())));
        Ok(Self { shared, event_loop, local, unix, loops, _file: file })
    }

    /// How many accepted sockets wait for the consumer.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.shared.state().accepted.len()
    }

    /// Makes a connection of an accepted socket, served by the next loop.
    fn connection(&self, fd: OwnedFd) -> Connection {
        let sock = socket2::SockRef::from(&fd);
        let remote = match sock.peer_addr() {
            Ok(addr) => match addr.as_socket() {
                Some(addr) => Endpoint::Tcp(addr),
                None => addr.as_pathname().map_or(Endpoint::Unnamed, |p| Endpoint::Unix(p.to_path_buf())),
            },
            // The peer already left; its first read will say so.
            Err(_) if self.unix => Endpoint::Unnamed,
            Err(_) => Endpoint::Tcp(std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
        };
        let (event_loop, executor) = self.loops.next();
        let conn = Arc::new(Conn::new(fd));
        // The new connection is scheduled: its loop arms the receive now.
        event_loop.shared().command(Command::Conn(Arc::clone(&conn)));
        let stream = UringStream::new(conn, event_loop, self.loops.admission().admit(), self.unix);
        let mut context = ConnectionContext::new(ConnectionId::next(), self.local.clone(), remote, TRANSPORT_NAME);
        // The connection's task belongs on the loop that completes its IO.
        context.features_mut().insert(executor.clone());
        Connection::new(Box::new(stream), context)
    }

    fn schedule(&self, state: &mut ListenState) {
        if !std::mem::replace(&mut state.scheduled, true) {
            self.event_loop.shared().command(Command::Listener(Arc::clone(&self.shared)));
        }
    }
}

impl Listener for UringListener {
    fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }

    fn listening_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(self.shared.fd().as_fd())
    }

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Connection>> {
        // At the connection limit, leave new connections in the backlog.
        std::task::ready!(self.loops.admission().poll_room(cx));
        let fd = {
            let mut state = self.shared.state();
            match state.accepted.pop_front() {
                Some(fd) => {
                    if state.wants_accept() {
                        self.schedule(&mut state);
                    }
                    fd
                }
                None => {
                    if let Some(e) = state.error.take() {
                        return Poll::Ready(Err(e));
                    }
                    if self.event_loop.shared().is_dead() {
                        return Poll::Ready(Err(crate::stream::loop_gone()));
                    }
                    match &state.waker {
                        Some(waker) if waker.will_wake(cx.waker()) => {}
                        _ => state.waker = Some(cx.waker().clone()),
                    }
                    if state.wants_accept() {
                        self.schedule(&mut state);
                    }
                    return Poll::Pending;
                }
            }
        };
        Poll::Ready(Ok(self.connection(fd)))
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Vec<Connection>> {
        let fds = {
            let mut state = self.shared.state();
            if !state.closing {
                state.closing = true;
                self.schedule(&mut state);
            }
            if matches!(state.accept, Accept::Armed(_) | Accept::Cancelling(_)) && !self.event_loop.shared().is_dead() {
                state.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            std::mem::take(&mut state.accepted)
        };
        Poll::Ready(fds.into_iter().map(|fd| self.connection(fd)).collect())
    }
}

impl Drop for UringListener {
    fn drop(&mut self) {
        let shared = self.event_loop.shared();
        let mut state = self.shared.state();
        if !state.closing {
            state.closing = true;
            self.schedule(&mut state);
        }
        let left = std::mem::take(&mut state.accepted);
        if !left.is_empty() {
            tracing::debug!(count = left.len(), "closing connections the io_uring listener accepted and nobody took");
        }
        drop(left);
        // Wait (briefly) for the loop to cancel the accept, so nothing is
        // accepted once the drop returns: a process handing its sockets to
        // a successor must not take connections it will not serve. The
        // loop's own thread cannot wait for itself.
        if !shared.on_loop_thread() {
            let deadline = std::time::Instant::now() + Duration::from_secs(1);
            while state.accept != Accept::Idle && !shared.is_dead() {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    tracing::warn!("an io_uring listener's accept was not cancelled within 1 s");
                    break;
                }
                state = self.shared.wait_stopped(state, left);
            }
        }
    }
}

impl std::fmt::Debug for UringListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringListener")
            .field("local", &self.local)
            .field("event_loop", &self.event_loop.index())
            .finish()
    }
}
