//! Listeners of the mio transport.

use std::io;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use kite_socket::{self as socket, SocketOptions, UnixPathState};
use kite_transport_core::{Connection, ConnectionContext, ConnectionId, Endpoint, Listener};

use crate::registration::{Registered, Way};
use crate::{EventLoops, MioStream, TRANSPORT_NAME};

/// A bound TCP or Unix listener of the mio transport. Its readiness comes
/// from one event loop; each accepted socket is handed to the next loop in
/// turn. Dropping it stops accepting and removes the Unix socket file it
/// created.
pub struct MioListener {
    kind: Kind,
    local: Endpoint,
    loops: Arc<EventLoops>,
    options: SocketOptions,
    /// The Unix socket file this listener created, removed after it closes.
    _file: Option<socket::SocketFile>,
}

enum Kind {
    Tcp(Registered<mio::net::TcpListener>),
    Unix(Registered<mio::net::UnixListener>),
}

impl MioListener {
    pub(crate) fn bind(endpoint: &Endpoint, loops: Arc<EventLoops>, options: &SocketOptions) -> io::Result<Self> {
        let mut file = None;
        let (kind, local) = match endpoint {
            Endpoint::Tcp(addr) => {
                let listener = mio::net::TcpListener::from_std(socket::bind_tcp(*addr, options)?);
                let local = Endpoint::Tcp(listener.local_addr()?);
                (Kind::Tcp(Registered::new(listener, loops.next().0)?), local)
            }
            Endpoint::Unix(path) => {
                let (std_listener, state) = socket::bind_unix(path, options)?;
                if state == UnixPathState::StaleRemoved {
                    tracing::info!(path = %path.display(), "replaced a stale unix socket file");
                }
                let listener = mio::net::UnixListener::from_std(std_listener);
                file = Some(socket::SocketFile::new(path.clone()));
                (Kind::Unix(Registered::new(listener, loops.next().0)?), endpoint.clone())
            }
            Endpoint::Inherited(fd) => match socket::adopt_listener(fd.take()?)? {
                socket::InheritedListener::Tcp(std_listener) => {
                    let listener = mio::net::TcpListener::from_std(std_listener);
                    let local = Endpoint::Tcp(listener.local_addr()?);
                    (Kind::Tcp(Registered::new(listener, loops.next().0)?), local)
                }
                socket::InheritedListener::Unix(std_listener, path) => {
                    let local = path.map_or(Endpoint::Unnamed, Endpoint::Unix);
                    let listener = mio::net::UnixListener::from_std(std_listener);
                    (Kind::Unix(Registered::new(listener, loops.next().0)?), local)
                }
            },
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("the mio transport cannot bind {other}"),
                ));
            }
        };
        Ok(Self { kind, local, loops, options: options.clone(), _file: file })
    }
}

impl Listener for MioListener {
    fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }

    fn listening_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(match &self.kind {
            Kind::Tcp(listener) => listener.io().as_fd(),
            Kind::Unix(listener) => listener.io().as_fd(),
        })
    }

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Connection>> {
        // At the connection limit, leave new connections in the backlog.
        ready!(self.loops.admission().poll_room(cx));
        let (io, remote, executor) = match &self.kind {
            Kind::Tcp(listener) => {
                let (stream, remote) = ready!(listener.poll_io(cx, Way::Read, |l| l.accept()))?;
                if let Err(e) = self.options.apply_to_stream(&stream) {
                    tracing::debug!(error = %e, %remote, "failed to set socket options on accepted connection");
                }
                let (event_loop, executor) = self.loops.next();
                let admitted = self.loops.admission().admit();
                (
                    MioStream::tcp(Registered::new(stream, event_loop)?, admitted),
                    Endpoint::Tcp(remote),
                    executor.clone(),
                )
            }
            Kind::Unix(listener) => {
                let (stream, remote) = ready!(listener.poll_io(cx, Way::Read, |l| l.accept()))?;
                let remote = match remote.as_pathname() {
                    Some(path) => Endpoint::Unix(path.to_path_buf()),
                    None => Endpoint::Unnamed,
                };
                let (event_loop, executor) = self.loops.next();
                let admitted = self.loops.admission().admit();
                (MioStream::unix(Registered::new(stream, event_loop)?, admitted), remote, executor.clone())
            }
        };
        let mut context = ConnectionContext::new(ConnectionId::next(), self.local.clone(), remote, TRANSPORT_NAME);
        // The connection's task belongs on the loop that serves its socket.
        context.features_mut().insert(executor);
        Poll::Ready(Ok(Connection::new(Box::new(io), context)))
    }
}

impl std::fmt::Debug for MioListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MioListener").field("local", &self.local).finish()
    }
}
