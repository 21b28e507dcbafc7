//! An accepted connection on the io_uring transport.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use kite_transport_core::{Admitted, ConnectionIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::conn::{Conn, ConnState, Recv, MAX_HELD_BUFFERS, MAX_QUEUED_SEND};
use crate::handle::{Command, LoopHandle};
use crate::send_pool;

/// A TCP or Unix stream served by an io_uring loop. It implements the same
/// async IO traits as the other transports' streams, so the HTTP core and
/// every middleware run on it unchanged.
///
/// Reads copy what the kernel received into the loop's buffers; writes
/// append to a queue the loop sends with one submission per loop turn for
/// all its connections. A write returns once its bytes are queued (up to
/// 256 KiB unsent, then it waits), as a socket's returns once they are in
/// its send buffer; a send error shows at the next write, flush or
/// shutdown. `poll_shutdown` returns at once and the end of the stream
/// follows the last queued byte. When the stream is dropped, the loop
/// still sends what is queued, for at most 10 s, then closes the socket.
pub struct UringStream {
    conn: Arc<Conn>,
    event_loop: LoopHandle,
    unix: bool,
    /// Counts this stream against the transport's connection limit.
    _admitted: Admitted,
}

impl UringStream {
    pub(crate) fn new(conn: Arc<Conn>, event_loop: LoopHandle, admitted: Admitted, unix: bool) -> Self {
        Self { conn, event_loop, unix, _admitted: admitted }
    }

    /// Which loop serves this stream.
    pub fn event_loop(&self) -> usize {
        self.event_loop.index()
    }

    /// Puts the connection on its loop's list, unless it is there.
    fn schedule(&self, state: &mut ConnState) {
        if state.schedule() {
            self.event_loop.shared().command(Command::Conn(Arc::clone(&self.conn)));
        }
    }

    fn dead(&self) -> bool {
        self.event_loop.shared().is_dead()
    }

    /// Queues as much of `bufs` as there is room for.
    fn poll_queue(&self, cx: &mut Context<'_>, bufs: &[&[u8]]) -> Poll<io::Result<usize>> {
        let mut state = self.conn.state();
        if let Some(errno) = state.write_error {
            return Poll::Ready(Err(crate::conn::os_error(errno)));
        }
        if state.write_shut {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "the stream was shut down for writing")));
        }
        if self.dead() {
            return Poll::Ready(Err(loop_gone()));
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        let room = MAX_QUEUED_SEND.saturating_sub(state.unsent());
        if room == 0 {
            state.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if state.queued.capacity() == 0 {
            state.queued = send_pool::take();
        }
        let mut left = room;
        for buf in bufs {
            let n = buf.len().min(left);
            state.queued.extend_from_slice(&buf[..n]);
            left -= n;
            if left == 0 {
                break;
            }
        }
        if state.send_op.is_none() {
            self.schedule(&mut state);
        }
        Poll::Ready(Ok(room - left))
    }
}

impl AsyncRead for UringStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut state = self.conn.state();
        if !state.received.is_empty() {
            let memory = &self.event_loop.shared().memory;
            let mut done = [0u16; MAX_HELD_BUFFERS];
            let mut finished = 0;
            while let Some(chunk) = state.received.front_mut() {
                if buf.remaining() == 0 || finished == done.len() {
                    break;
                }
                let n = buf.remaining().min((chunk.end - chunk.start) as usize);
                // SAFETY: the chunk's buffer was handed over by a
                // completion and goes back on the ring only below, after
                // this copy; its range is what the kernel wrote.
                let bytes = unsafe { memory.slice(chunk.id, chunk.start as usize..chunk.start as usize + n) };
                buf.put_slice(bytes);
                chunk.start += n as u32;
                if chunk.start == chunk.end {
                    done[finished] = chunk.id;
                    finished += 1;
                    state.received.pop_front();
                }
            }
            if state.recv == Recv::Paused && state.received.len() <= MAX_HELD_BUFFERS / 2 {
                self.schedule(&mut state);
            }
            drop(state);
            if finished > 0 {
                let shared = self.event_loop.shared();
                let mut buffers = crate::handle::lock(&shared.buffers);
                buffers.give_back_all(&done[..finished]);
                if buffers.starving {
                    drop(buffers);
                    shared.notify();
                }
            }
            return Poll::Ready(Ok(()));
        }
        if let Some(errno) = state.read_error {
            return Poll::Ready(Err(crate::conn::os_error(errno)));
        }
        if state.read_eof {
            return Poll::Ready(Ok(()));
        }
        if self.dead() {
            return Poll::Ready(Err(loop_gone()));
        }
        register(&mut state.read_waker, cx);
        Poll::Pending
    }
}

fn register(slot: &mut Option<std::task::Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl AsyncWrite for UringStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_queue(cx, &[buf])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut slices: [&[u8]; 8] = [&[]; 8];
        let count = bufs.len().min(slices.len());
        for (slot, buf) in slices.iter_mut().zip(bufs) {
            *slot = buf;
        }
        self.poll_queue(cx, &slices[..count])
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Ready once the written bytes are queued for the loop, which sends
    /// them without further help: the queue plays the socket send buffer's
    /// part. An earlier send's error is reported here.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.conn.state().write_error {
            Some(errno) => Poll::Ready(Err(crate::conn::os_error(errno))),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Shuts the stream down for writing: later writes fail, and the peer
    /// reads the end of the stream after the last byte written, which the
    /// loop sends without further help (as the kernel sends a socket's FIN
    /// after its send buffer). Ready at once, as `shutdown(2)` is.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.conn.state();
        if let Some(errno) = state.write_error {
            return Poll::Ready(Err(crate::conn::os_error(errno)));
        }
        if std::mem::replace(&mut state.write_shut, true) {
            return Poll::Ready(Ok(()));
        }
        if state.unsent() > 0 {
            // The loop sends the end after the last queued byte.
            if self.dead() {
                return Poll::Ready(Err(loop_gone()));
            }
            if state.send_op.is_none() {
                self.schedule(&mut state);
            }
            return Poll::Ready(Ok(()));
        }
        state.fin_sent = true;
        drop(state);
        // SAFETY: the loop closes the descriptor only after this stream is
        // dropped, so it is open for the borrow's whole (short) life.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.conn.raw_fd()) };
        match socket2::SockRef::from(&fd).shutdown(std::net::Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            other => Poll::Ready(other),
        }
    }
}

impl ConnectionIo for UringStream {
    /// Ready when received bytes wait, or the stream ended: an idle
    /// connection waits here holding no buffer at all.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.conn.state();
        if !state.received.is_empty() || state.read_eof || state.read_error.is_some() || self.dead() {
            return Poll::Ready(Ok(()));
        }
        register(&mut state.read_waker, cx);
        Poll::Pending
    }
}

impl Drop for UringStream {
    fn drop(&mut self) {
        let mut state = self.conn.state();
        state.closing = true;
        state.read_waker = None;
        state.write_waker = None;
        self.schedule(&mut state);
    }
}

impl std::fmt::Debug for UringStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringStream")
            .field("kind", &if self.unix { "unix" } else { "tcp" })
            .field("event_loop", &self.event_loop())
            .finish()
    }
}

pub(crate) fn loop_gone() -> io::Error {
    io::Error::other("the io_uring loop serving this socket has stopped")
}
