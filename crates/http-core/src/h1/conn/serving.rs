//! The connection's life as a state machine written by hand: waiting for
//! a head, a request (or a rejection) in a boxed future that owns the
//! connection while it runs, and the close.
//!
//! An idle keep-alive connection is this struct and nothing else: the
//! connection's fields and a few flags. `async fn`s nested for the same
//! loop kept room for their arguments, their own copy of `self`, and the
//! largest of the states they awaited, for as long as the connection
//! lived.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use kite_transport_core::ConnectionEndReason;
use tokio::io::AsyncWrite;

use super::H1Connection;
use crate::h1::parse::{parse_head, ParsedHead};
use crate::pooling::reused::Reused;
use crate::timing::heartbeat::Timeout;
use crate::HttpService;
use crate::{Error, RequestRejection};

/// What the boxed step does with the connection. A head is moved, not
/// boxed: it lives once, in the step's box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Step {
    /// Serves the request with this head.
    Request(ParsedHead),
    /// Answers a refused head with its status, and closes.
    Reject(RequestRejection),
}

/// The boxed step's result: the connection back, and whether it stays
/// open.
pub(crate) type Stepped<'o, S> = (H1Connection<'o, S>, Result<bool, Error>);

/// The future that serves an HTTP/1.x connection to its end.
pub(crate) struct Serving<'o, S, M: StartStep<'o, S>> {
    /// The connection; `None` while a step owns it.
    conn: Option<H1Connection<'o, S>>,
    state: State<M::Future>,
    /// Starts a step: the connection's `step`, a function item (no size,
    /// and inlined), which names the step future's type.
    step: M,
}

/// A function that starts a step with the connection.
pub(crate) trait StartStep<'o, S> {
    /// The step's future.
    type Future: Future<Output = Stepped<'o, S>>;

    fn start(&self, conn: H1Connection<'o, S>, step: Step) -> Self::Future;
}

impl<'o, S, M, F> StartStep<'o, S> for M
where
    M: Fn(H1Connection<'o, S>, Step) -> F,
    F: Future<Output = Stepped<'o, S>>,
{
    type Future = F;

    #[inline]
    fn start(&self, conn: H1Connection<'o, S>, step: Step) -> F {
        self(conn, step)
    }
}

enum State<F> {
    /// Waiting for, or reading, a request head.
    Head(HeadState),
    /// A request, or a rejection, runs with the connection.
    Step(Reused<F>),
    /// Sending what is left, then closing our side.
    Closing {
        result: Option<Result<(), Error>>,
        flushed: bool,
    },
    Done,
}

/// Where the wait for a head stands.
struct HeadState {
    /// The connection's first request: its headers are timed from accept.
    first: bool,
    /// The deadline for this head is set.
    armed: bool,
    /// No byte of this head has arrived; the keep-alive timeout runs.
    awaiting_first_byte: bool,
    /// Bytes arrived since the last parse.
    fresh: bool,
}

impl HeadState {
    fn new(first: bool) -> Self {
        Self { first, armed: false, awaiting_first_byte: false, fresh: true }
    }
}

/// How the wait for a head ended (a return value, never stored).
#[allow(clippy::large_enum_variant)]
enum HeadOutcome {
    /// A request to serve, or a head to refuse.
    Step(Step),
    /// The connection ends: cleanly (the peer closed between requests, a
    /// timeout while idle, a close request) or with an error.
    End(Result<(), Error>),
}

impl<'o, S> H1Connection<'o, S>
where
    S: HttpService,
{
    /// Serves requests until the connection ends.
    pub fn serve(self) -> Serving<'o, S, impl StartStep<'o, S, Future = impl Future<Output = Stepped<'o, S>>>> {
        Serving { conn: Some(self), state: State::Head(HeadState::new(true)), step: Self::step }
    }

    /// Runs one step with the connection, then hands it back. An `async`
    /// block, not an `async fn`: that would keep a second copy of the
    /// connection and the head in the step's box.
    #[allow(clippy::manual_async_fn)] // deliberate, for the box's size
    fn step(mut self, step: Step) -> impl Future<Output = Stepped<'o, S>> {
        async move {
            let result = match step {
                Step::Request(head) => self.dispatch(head).await,
                Step::Reject(rejection) => Err(self.reject(rejection).await),
            };
            (self, result)
        }
    }

    /// Waits for the next request head. A clean end is the peer closing
    /// between requests, the keep-alive timeout, or a close request while
    /// idle.
    fn poll_head(&mut self, st: &mut HeadState, cx: &mut Context<'_>) -> Poll<HeadOutcome> {
        let limits = &self.options.limits;
        let headers_timeout = limits.request_headers_timeout;
        if !st.armed {
            // The first request's headers are timed from accept; later
            // ones get the keep-alive timeout until their first byte.
            st.armed = true;
            st.awaiting_first_byte = !st.first && self.read_buf.is_empty();
            let deadline = if st.awaiting_first_byte { limits.keep_alive_timeout } else { headers_timeout };
            self.timer.set_deadline(deadline);
        }
        loop {
            if st.fresh && !self.read_buf.is_empty() {
                st.fresh = false;
                match parse_head(&mut self.read_buf, limits) {
                    Ok(Some(head)) => {
                        self.timer.clear_deadline();
                        return Poll::Ready(HeadOutcome::Step(Step::Request(head)));
                    }
                    Ok(None) => {}
                    Err(rejection) => return Poll::Ready(HeadOutcome::Step(Step::Reject(rejection))),
                }
                if st.awaiting_first_byte {
                    st.awaiting_first_byte = false;
                    self.timer.set_deadline(headers_timeout);
                }
            }
            // Pipelined responses leave together, before we wait for more.
            if !self.write_buf.is_empty() {
                if let Err(e) = ready!(self.poll_flush(cx)) {
                    return Poll::Ready(HeadOutcome::End(Err(Error::Io(e))));
                }
            }
            // Even when a close is requested, read first: a request already
            // received (a client that wrote as it connected) is answered,
            // with `Connection: close`, whatever the timing of the close.
            match self.poll_fill(cx) {
                Poll::Ready(Ok(0)) if self.read_buf.is_empty() => return Poll::Ready(HeadOutcome::End(Ok(()))),
                Poll::Ready(Ok(0)) => {
                    tracing::debug!(
                        target: "kite::bad_requests",
                        connection_id = %self.info.id(),
                        "connection closed in the middle of a request head"
                    );
                    return Poll::Ready(HeadOutcome::End(Err(Error::IncompleteHead)));
                }
                Poll::Ready(Ok(_)) => {
                    st.fresh = true;
                    continue;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(HeadOutcome::End(Err(Error::Io(e)))),
                Poll::Pending => {}
            }
            if self.timer.poll_timeout(Timeout::Deadline, cx).is_ready() {
                if !self.read_buf.is_empty() {
                    return Poll::Ready(HeadOutcome::Step(Step::Reject(RequestRejection::RequestHeadersTimeout)));
                }
                let (reason, why) = if st.awaiting_first_byte {
                    (ConnectionEndReason::KeepAliveTimeout, "keep-alive timeout")
                } else {
                    (ConnectionEndReason::RequestHeadersTimeout, "no request before RequestHeadersTimeout")
                };
                tracing::debug!(connection_id = %self.info.id(), reason = why, "closing idle connection");
                self.close.signal().set_end_reason(reason);
                return Poll::Ready(HeadOutcome::End(Ok(())));
            }
            if self.read_buf.is_empty() && self.close.poll_requested(cx).is_ready() {
                return Poll::Ready(HeadOutcome::End(Ok(())));
            }
            return Poll::Pending;
        }
    }

    /// Sends what is left and closes our side cleanly, unless the
    /// connection failed; then gives the buffers back.
    fn poll_close(&mut self, result: &Result<(), Error>, flushed: &mut bool, cx: &mut Context<'_>) -> Poll<()> {
        if let Err(e) = result {
            self.close.signal().set_end_reason(e.end_reason());
        }
        if !self.upgraded && !matches!(result, Err(Error::Io(_)) | Err(Error::ResponseBody(_))) {
            if !*flushed {
                if !self.write_buf.is_empty() && ready!(self.poll_flush(cx)).is_err() {
                    return self.finish();
                }
                *flushed = true;
            }
            let _ = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
        }
        self.finish()
    }

    fn finish(&mut self) -> Poll<()> {
        if !self.upgraded {
            self.read_buf.clear();
            self.write_buf.clear();
            self.release_buffers();
        }
        Poll::Ready(())
    }
}

impl<'o, S, M> Future for Serving<'o, S, M>
where
    S: HttpService,
    M: StartStep<'o, S>,
{
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Head(st) => {
                    let conn = this.conn.as_mut().expect("the connection is home while waiting for a head");
                    let step = match ready!(conn.poll_head(st, cx)) {
                        HeadOutcome::Step(step) => step,
                        HeadOutcome::End(result) => {
                            this.state = State::Closing { result: Some(result), flushed: false };
                            continue;
                        }
                    };
                    let conn = this.conn.take().expect("the connection is home");
                    // On the heap: a request's state (the application's
                    // future, the body feeder, the response) exists only
                    // while it runs, in a block the thread reuses.
                    let start = &this.step;
                    this.state = State::Step(Reused::with(|| start.start(conn, step)));
                }
                State::Step(running) => {
                    let (conn, result) = ready!(Pin::new(running).poll(cx));
                    this.conn = Some(conn);
                    this.state = match result {
                        Ok(true) => State::Head(HeadState::new(false)),
                        Ok(false) => State::Closing { result: Some(Ok(())), flushed: false },
                        Err(e) => State::Closing { result: Some(Err(e)), flushed: false },
                    };
                }
                State::Closing { result, flushed } => {
                    let conn = this.conn.as_mut().expect("the connection is home while closing");
                    let ended = result.as_ref().expect("a result until the end");
                    ready!(conn.poll_close(ended, flushed, cx));
                    let result = result.take().expect("a result until the end");
                    this.state = State::Done;
                    return Poll::Ready(result);
                }
                State::Done => panic!("HTTP/1.x connection polled after it ended"),
            }
        }
    }
}

/// The step is boxed and nothing pins the connection or its service (a
/// `Service` is called through `&mut`), so `Serving` moves freely.
impl<'o, S, M: StartStep<'o, S>> Unpin for Serving<'o, S, M> {}
