//! The loop thread: it owns one io_uring, runs the loop's tasks, and each
//! turn submits every connection's sends and receives with a single
//! `io_uring_enter` that also collects completions.
//!
//! A turn: run the woken tasks (up to `TASKS_PER_TURN`); service the
//! connections and listeners that asked for something (arm a receive or
//! an accept, submit queued bytes, cancel, close); re-arm receives that
//! ran out of buffers once buffers are back; then enter the kernel once,
//! waiting only if nothing else is left to do; then hand each completion
//! to its connection or listener, which wakes the task waiting on it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use kite_transport_core::loop_executor::TASKS_PER_TURN;

use crate::accept::{Accept, ListenState, ListenerShared, ACCEPT_QUEUE};
use crate::buffers::GROUP;
use crate::conn::{Conn, ConnState, Recv, MAX_HELD_BUFFERS};
use crate::handle::{lock, Command, Shared};
use crate::ops::{Op, Ops, IGNORED};
use crate::send_pool;

/// How long a dropped stream's last bytes may take to leave before the
/// loop gives up on them and closes the socket.
pub(crate) const CLOSE_DEADLINE: Duration = Duration::from_secs(10);

/// `IORING_ENTER_GETEVENTS`: an enter that also runs the completion work
/// the ring deferred (the crate keeps its constant private).
const ENTER_GETEVENTS: u32 = 1;
/// `IORING_ENTER_SQ_WAKEUP`: wakes a sleeping SQPOLL thread.
const ENTER_SQ_WAKEUP: u32 = 2;

/// How long a stopping loop waits for the kernel to end its ops before it
/// lets the ring go.
const STOP_WAIT: Duration = Duration::from_secs(1);

pub(crate) struct Driver {
    ring: IoUring,
    shared: Arc<Shared>,
    ops: Ops,
    /// Where the eventfd read lands; boxed, so its address is stable.
    wake_buf: Box<u64>,
    wake_armed: bool,
    /// The closing deadline, which the kernel reads at submission.
    deadline: Box<types::Timespec>,
    /// Connections whose receive ended for want of buffers.
    starved: Vec<Arc<Conn>>,
    /// This turn's commands, taken from the shared list.
    commands: Vec<Command>,
    completions: Vec<cqueue::Entry>,
    /// Sends in the kernel.
    sends: usize,
    /// The ring defers completion work until asked: enter with GETEVENTS.
    defer_taskrun: bool,
    /// A kernel thread polls the submission queue.
    sqpoll: bool,
    stopped: bool,
}

impl Driver {
    pub fn new(ring: IoUring, shared: Arc<Shared>, defer_taskrun: bool) -> Self {
        let sqpoll = ring.params().is_setup_sqpoll();
        Self {
            sqpoll,
            ring,
            shared,
            ops: Ops::default(),
            wake_buf: Box::new(0),
            wake_armed: false,
            deadline: Box::new(CLOSE_DEADLINE.into()),
            starved: Vec::new(),
            commands: Vec::new(),
            completions: Vec::with_capacity(1024),
            sends: 0,
            defer_taskrun,
            stopped: false,
        }
    }

    /// Runs turns until the last handle is gone or the ring fails.
    pub fn run(&mut self) {
        loop {
            let more = self.run_tasks();
            self.service_commands();
            self.rearm_starved();
            if !self.wake_armed {
                self.arm_wake();
            }
            let mut wait = !more;
            if wait {
                self.shared.parked.store(true, Ordering::SeqCst);
                if !lock(&self.shared.queue).is_empty()
                    || !lock(&self.shared.commands).is_empty()
                    || self.shared.handles.load(Ordering::Acquire) == 0
                    || (!self.starved.is_empty() && lock(&self.shared.buffers).free() > 0)
                {
                    wait = false;
                }
            }
            let entered = self.enter(wait);
            self.shared.parked.store(false, Ordering::SeqCst);
            if let Err(e) = entered {
                tracing::error!(event_loop = self.shared.index, error = %e, "io_uring_enter failed; stopping the loop");
                return;
            }
            self.reap();
            if self.shared.handles.load(Ordering::Acquire) == 0 {
                self.stop(true);
                tracing::debug!(event_loop = self.shared.index, "io_uring loop stopped");
                return;
            }
        }
    }

    /// Runs up to [`TASKS_PER_TURN`] queued tasks; returns whether more wait.
    fn run_tasks(&self) -> bool {
        for _ in 0..TASKS_PER_TURN {
            let next = lock(&self.shared.queue).pop_front();
            match next {
                Some(task) => task.run(),
                None => return false,
            }
        }
        !lock(&self.shared.queue).is_empty()
    }

    /// Submits what is queued and collects completions; with `wait`, sleeps
    /// until at least one comes.
    fn enter(&mut self, wait: bool) -> io::Result<()> {
        loop {
            let to_submit = self.ring.submission().len() as u32;
            let mut flags = if wait || self.defer_taskrun { ENTER_GETEVENTS } else { 0 };
            if self.sqpoll {
                // The kernel thread submits; it needs waking only once it
                // went to sleep, and the loop enters only to wait or wake.
                let sq = self.ring.submission();
                if sq.need_wakeup() {
                    flags |= ENTER_SQ_WAKEUP;
                } else if !wait && !sq.cq_overflow() {
                    return Ok(());
                }
            } else if !wait && to_submit == 0 && !self.work_pending() {
                return Ok(());
            }
            // SAFETY: every queued entry's buffers stay valid until its
            // completion (see the `push` calls); no argument is passed.
            let entered =
                unsafe { self.ring.submitter().enter::<libc::sigset_t>(to_submit, u32::from(wait), flags, None) };
            match entered {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // The completion queue is full: make room, then go on.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EAGAIN)) => {
                    self.reap();
                    if !wait {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the kernel holds completion work for us, so an enter is
    /// worth it even with nothing to submit.
    fn work_pending(&mut self) -> bool {
        let sq = self.ring.submission();
        sq.taskrun() || sq.cq_overflow() || !self.defer_taskrun
    }

    fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: the callers keep what `entry` points to alive until
            // its completion: a connection's in-flight bytes (held by the
            // op's `Arc<Conn>` and untouched while the send is set), the
            // boxed eventfd word and deadline, the buffer ring.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            // The submission queue is full: hand it to the kernel first.
            if let Err(e) = self.ring.submit() {
                if e.raw_os_error() != Some(libc::EBUSY) {
                    tracing::warn!(event_loop = self.shared.index, error = %e, "io_uring submit failed");
                }
                self.reap();
            }
        }
    }

    fn cancel(&mut self, user_data: u64) {
        self.push(opcode::AsyncCancel::new(user_data).build().user_data(IGNORED));
    }

    fn arm_wake(&mut self) {
        let user_data = self.ops.insert(Op::Wake);
        let fd = types::Fd(self.shared.wake_fd().as_raw_fd());
        let buf = (&mut *self.wake_buf as *mut u64).cast::<u8>();
        self.push(opcode::Read::new(fd, buf, 8).build().user_data(user_data));
        self.wake_armed = true;
    }

    fn service_commands(&mut self) {
        std::mem::swap(&mut self.commands, &mut *lock(&self.shared.commands));
        let mut commands = std::mem::take(&mut self.commands);
        for command in commands.drain(..) {
            match command {
                Command::Conn(conn) => self.service_conn(&conn),
                Command::Listener(listener) => self.service_listener(&listener),
            }
        }
        self.commands = commands;
    }

    fn service_conn(&mut self, conn: &Arc<Conn>) {
        let mut state = conn.state();
        state.scheduled = false;
        if state.closed {
            return;
        }
        if state.closing {
            tracing::trace!(event_loop = self.shared.index, fd = conn.raw_fd(), recv = ?state.recv, send = ?state.send_op, unsent = state.unsent(), "servicing a dropped stream");
            match state.recv {
                Recv::Armed(user_data) => {
                    self.cancel(user_data);
                    state.recv = Recv::Cancelling(user_data);
                }
                Recv::Cancelling(_) => {}
                _ => state.recv = Recv::Done,
            }
            self.give_back_received(&mut state);
            if state.write_error.is_none() && state.send_op.is_none() {
                self.start_send(conn, &mut state);
            }
            if state.send_op.is_some() && state.deadline.is_none() {
                let user_data = self.ops.insert(Op::Deadline(Arc::clone(conn)));
                let timespec: *const types::Timespec = &*self.deadline;
                self.push(opcode::Timeout::new(timespec).build().user_data(user_data));
                state.deadline = Some(user_data);
            }
            self.try_finish(&mut state, conn);
            return;
        }
        match state.recv {
            Recv::Idle => self.arm_recv(conn, &mut state),
            Recv::Paused if state.received.len() <= MAX_HELD_BUFFERS / 2 => self.arm_recv(conn, &mut state),
            _ => {}
        }
        if state.send_op.is_none() && state.write_error.is_none() {
            self.start_send(conn, &mut state);
            self.send_fin(conn, &mut state);
        }
    }

    fn arm_recv(&mut self, conn: &Arc<Conn>, state: &mut ConnState) {
        let user_data = self.ops.insert(Op::Recv(Arc::clone(conn)));
        self.push(opcode::RecvMulti::new(types::Fd(conn.raw_fd()), GROUP).build().user_data(user_data));
        state.recv = Recv::Armed(user_data);
    }

    /// Submits the connection's unsent bytes, if any and none are in flight.
    fn start_send(&mut self, conn: &Arc<Conn>, state: &mut ConnState) {
        debug_assert!(state.send_op.is_none());
        if state.sent == state.inflight.len() {
            state.inflight.clear();
            state.sent = 0;
            if state.queued.is_empty() {
                return;
            }
            std::mem::swap(&mut state.inflight, &mut state.queued);
        }
        let rest = &state.inflight[state.sent..];
        let len = rest.len().min(u32::MAX as usize) as u32;
        let user_data = self.ops.insert(Op::Send(Arc::clone(conn)));
        let entry = opcode::Send::new(types::Fd(conn.raw_fd()), rest.as_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data);
        state.send_op = Some(user_data);
        self.sends += 1;
        self.push(entry);
    }

    /// Sends the end of the stream once a stream shut down for writing has
    /// nothing left to send (a closing one's close does it instead).
    fn send_fin(&mut self, conn: &Conn, state: &mut ConnState) {
        if state.write_shut && !state.fin_sent && !state.closing && state.unsent() == 0 && state.send_op.is_none() {
            state.fin_sent = true;
            self.push(opcode::Shutdown::new(types::Fd(conn.raw_fd()), libc::SHUT_WR).build().user_data(IGNORED));
        }
    }

    /// Closes a dropped stream's connection once nothing is in flight.
    fn try_finish(&mut self, state: &mut ConnState, conn: &Conn) {
        if !state.closing || state.closed || state.recv.in_flight() || state.send_op.is_some() {
            return;
        }
        if state.unsent() > 0 && state.write_error.is_none() {
            return;
        }
        state.closed = true;
        tracing::trace!(event_loop = self.shared.index, fd = conn.raw_fd(), "closing a connection");
        self.give_back_received(state);
        send_pool::give(std::mem::take(&mut state.queued));
        send_pool::give(std::mem::take(&mut state.inflight));
        if let Some(user_data) = state.deadline.take() {
            self.push(opcode::TimeoutRemove::new(user_data).build().user_data(IGNORED));
        }
        if let Some(fd) = conn.take_fd() {
            self.push(opcode::Close::new(types::Fd(fd.into_raw_fd())).build().user_data(IGNORED));
        }
    }

    fn give_back_received(&mut self, state: &mut ConnState) {
        if state.received.is_empty() {
            return;
        }
        let mut buffers = lock(&self.shared.buffers);
        for chunk in state.received.drain() {
            buffers.give_back(chunk.id);
        }
        buffers.publish();
    }

    fn service_listener(&mut self, listener: &Arc<ListenerShared>) {
        let mut state = listener.state();
        state.scheduled = false;
        match state.accept {
            Accept::Armed(user_data) if state.closing => {
                self.cancel(user_data);
                state.accept = Accept::Cancelling(user_data);
            }
            Accept::Idle if state.closing => listener.notify_stopped(),
            Accept::Idle if state.accepted.len() < ACCEPT_QUEUE && listener.admission.has_room() => {
                self.arm_accept(listener, &mut state);
            }
            _ => {}
        }
    }

    fn arm_accept(&mut self, listener: &Arc<ListenerShared>, state: &mut ListenState) {
        let user_data = self.ops.insert(Op::Accept(Arc::clone(listener)));
        let entry = opcode::AcceptMulti::new(types::Fd(listener.raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data);
        self.push(entry);
        state.accept = Accept::Armed(user_data);
    }

    fn rearm_starved(&mut self) {
        if self.starved.is_empty() {
            return;
        }
        {
            let mut buffers = lock(&self.shared.buffers);
            if buffers.free() == 0 {
                buffers.starving = true;
                return;
            }
            buffers.starving = false;
        }
        for conn in std::mem::take(&mut self.starved) {
            let mut state = conn.state();
            if state.recv == Recv::Starved && !state.closing {
                self.arm_recv(&conn, &mut state);
            }
        }
    }

    fn reap(&mut self) {
        loop {
            let mut completions = std::mem::take(&mut self.completions);
            completions.extend(self.ring.completion().take(completions.capacity()));
            if completions.is_empty() {
                self.completions = completions;
                return;
            }
            for entry in completions.drain(..) {
                self.complete(entry.user_data(), entry.result(), entry.flags());
            }
            self.completions = completions;
        }
    }

    fn complete(&mut self, user_data: u64, result: i32, flags: u32) {
        if user_data == IGNORED {
            return;
        }
        let more = cqueue::more(flags);
        let op = if more {
            match self.ops.get(user_data) {
                Some(Op::Accept(listener)) => Op::Accept(Arc::clone(listener)),
                Some(Op::Recv(conn)) => Op::Recv(Arc::clone(conn)),
                _ => return,
            }
        } else {
            match self.ops.remove(user_data) {
                Some(op) => op,
                None => return,
            }
        };
        match op {
            Op::Wake => {
                self.wake_armed = false;
                if result < 0 {
                    tracing::warn!(event_loop = self.shared.index, error = %crate::conn::os_error(-result), "the io_uring loop's wake-up read failed");
                }
            }
            Op::Accept(listener) => self.on_accept(&listener, user_data, result, more),
            Op::Recv(conn) => self.on_recv(&conn, user_data, result, flags, more),
            Op::Send(conn) => {
                self.sends -= 1;
                self.on_send(&conn, result)
            }
            Op::Deadline(conn) => {
                let mut state = conn.state();
                if state.deadline == Some(user_data) {
                    state.deadline = None;
                    if let Some(send) = state.send_op {
                        tracing::debug!(
                            event_loop = self.shared.index,
                            "a closed connection's last bytes were not taken within 10 s; dropping them"
                        );
                        self.cancel(send);
                    }
                }
            }
        }
    }

    fn on_accept(&mut self, listener: &Arc<ListenerShared>, user_data: u64, result: i32, more: bool) {
        let mut state = listener.state();
        if result >= 0 {
            // SAFETY: a successful accept's result is a new descriptor
            // that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(result) };
            if state.closing {
                drop(fd);
            } else {
                state.accepted.push_back(fd);
                if let Some(waker) = state.waker.take() {
                    waker.wake();
                }
            }
        } else if result != -libc::ECANCELED {
            state.error = Some(crate::conn::os_error(-result));
            if let Some(waker) = state.waker.take() {
                waker.wake();
            }
        }
        let full = state.accepted.len() >= ACCEPT_QUEUE || !listener.admission.has_room();
        if more {
            if state.accept == Accept::Armed(user_data) && (full || state.closing) {
                self.cancel(user_data);
                state.accept = Accept::Cancelling(user_data);
            }
            return;
        }
        state.accept = Accept::Idle;
        if state.closing {
            listener.notify_stopped();
            if let Some(waker) = state.waker.take() {
                waker.wake();
            }
        } else if (result >= 0 || result == -libc::ECANCELED) && !full {
            // The kernel ended the accept on its own, or the cancel for a
            // queue that was full has completed after the consumer drained
            // it (and, waiting, will not ask again): arm it again. After an
            // error the consumer, woken with it, asks.
            self.arm_accept(listener, &mut state);
        }
    }

    fn on_recv(&mut self, conn: &Arc<Conn>, user_data: u64, result: i32, flags: u32, more: bool) {
        let mut state = conn.state();
        if let Some(id) = cqueue::buffer_select(flags) {
            lock(&self.shared.buffers).taken();
            if result > 0 && !state.closing {
                state.received.push_back(crate::conn::Chunk { id, start: 0, end: result as u32 });
            } else {
                lock(&self.shared.buffers).give_back_all(&[id]);
            }
        }
        match result {
            1.. => state.wake_reader(),
            0 => {
                state.read_eof = true;
                state.wake_reader();
            }
            _ if result == -libc::ENOBUFS || result == -libc::ECANCELED => {}
            _ => {
                state.read_error = Some(-result);
                state.wake_reader();
            }
        }
        if more {
            if state.recv == Recv::Armed(user_data) && state.received.len() >= MAX_HELD_BUFFERS {
                // The reader is behind: stop taking buffers for it.
                self.cancel(user_data);
                state.recv = Recv::Cancelling(user_data);
            }
            return;
        }
        if state.closing {
            state.recv = Recv::Done;
            self.try_finish(&mut state, conn);
            return;
        }
        state.recv = if result == -libc::ENOBUFS {
            self.starved.push(Arc::clone(conn));
            Recv::Starved
        } else if result > 0 || result == -libc::ECANCELED {
            // Paused by us, or ended by the kernel (an overflowing
            // completion queue ends multishot ops): resume when there is room.
            Recv::Paused
        } else {
            Recv::Done
        };
        if state.recv == Recv::Paused && state.received.len() <= MAX_HELD_BUFFERS / 2 {
            self.arm_recv(conn, &mut state);
        }
    }

    fn on_send(&mut self, conn: &Arc<Conn>, result: i32) {
        let mut state = conn.state();
        state.send_op = None;
        if result >= 0 {
            state.sent += result as usize;
            if state.write_error.is_none() {
                self.start_send(conn, &mut state);
            }
            if state.unsent() == 0 {
                // Everything left: an idle connection keeps no send memory.
                send_pool::give(std::mem::take(&mut state.inflight));
                state.sent = 0;
                if state.queued.is_empty() {
                    send_pool::give(std::mem::take(&mut state.queued));
                }
                self.send_fin(conn, &mut state);
            }
        } else {
            let errno = if result == -libc::ECANCELED { libc::ETIMEDOUT } else { -result };
            state.write_error.get_or_insert(errno);
            state.queued.clear();
            state.inflight.clear();
            state.sent = 0;
        }
        state.wake_writer();
        if state.closing {
            self.try_finish(&mut state, conn);
        }
    }

    /// Submits what is queued and waits up to 10 ms for completions,
    /// which go to their owners as in a turn.
    fn wait_briefly(&mut self) -> bool {
        let timeout = types::Timespec::from(Duration::from_millis(10));
        let args = types::SubmitArgs::new().timespec(&timeout);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => true,
            Err(e) => matches!(e.raw_os_error(), Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)),
        }
    }

    /// Ends every op and lets the ring go. After the last handle went
    /// (`graceful`), dropped streams' last bytes get up to a second to
    /// leave first. Then the loop is marked dead, each waiter is woken to
    /// see it, and the kernel is given (briefly) time to finish with the
    /// buffers before they can be unmapped.
    fn stop(&mut self, graceful: bool) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let deadline = std::time::Instant::now() + STOP_WAIT;
        if graceful {
            loop {
                self.service_commands();
                if self.sends == 0 || std::time::Instant::now() >= deadline || !self.wait_briefly() {
                    break;
                }
                self.reap();
            }
        }
        self.shared.dead.store(true, Ordering::Release);
        let queued = std::mem::take(&mut *lock(&self.shared.queue));
        drop(queued);
        self.push(opcode::AsyncCancel2::new(types::CancelBuilder::any()).build().user_data(IGNORED));
        // Submit at least once: closes queued last turn must reach the kernel.
        loop {
            let waited = self.wait_briefly();
            let entries: Vec<cqueue::Entry> = self.ring.completion().collect();
            for entry in entries {
                if entry.user_data() != IGNORED && !cqueue::more(entry.flags()) {
                    if let Some(op) = self.ops.remove(entry.user_data()) {
                        wake_for_stop(op);
                    }
                }
            }
            if self.ops.live() == 0 || !waited || std::time::Instant::now() >= deadline {
                break;
            }
        }
        for op in self.ops.drain() {
            wake_for_stop(op);
        }
    }
}

/// Wakes whoever waits on `op`'s object so it sees the loop is gone.
fn wake_for_stop(op: Op) {
    match op {
        Op::Recv(conn) | Op::Send(conn) | Op::Deadline(conn) => {
            let mut state = conn.state();
            state.wake_reader();
            state.wake_writer();
        }
        Op::Accept(listener) => {
            let mut state = listener.state();
            state.accept = Accept::Idle;
            listener.notify_stopped();
            if let Some(waker) = state.waker.take() {
                waker.wake();
            }
        }
        Op::Wake => {}
    }
}

impl Drop for Driver {
    /// Runs when the loop panics (a normal stop has stopped already): the
    /// loop's streams and listeners learn it is gone.
    fn drop(&mut self) {
        self.stop(false);
    }
}
