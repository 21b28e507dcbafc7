//! The HTTP/1.1 connection state machine.

mod respond;
mod serving;

pub(crate) use serving::{Serving, StartStep, Stepped};

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::{pin, Pin};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, Version};
use kite_transport_core::{CloseWatch, ConnectionEndReason, ConnectionIo};
use tokio::io::AsyncWrite;

use super::decode::{ChunkedDecoder, Decoded, Decoder};
use super::encode::{self, HeadOptions};
use super::feed::BodyFeeder;
use super::parse::{BodyLength, ParsedHead};
use crate::body::shared::Want;
use crate::panic;
use crate::pooling::buffers;
use crate::served::ServedConnection;
use crate::timing::heartbeat::{ConnectionTimer, Timeout};
use crate::upgrade::{Detached, OnUpgrade, PendingUpgrade, UpgradeError, Upgraded};
use crate::HttpService;
use crate::{BoxError, ConnectionInfo, Error, HttpOptions, MaxRequestBodySize, RequestBody, RequestRejection};

/// How long, and how much, a rejected connection is read and discarded
/// before it is closed, so the client sees the error rather than a reset.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 4 * 1024 * 1024;

/// One HTTP/1.x connection. It lives as long as the connection, idle or
/// not, so it stays small: the options are borrowed, the buffers are
/// pooled while idle, and a request's state lives in a boxed future only
/// while the request runs.
pub(crate) struct H1Connection<'o, S> {
    io: Box<dyn ConnectionIo>,
    read_buf: BytesMut,
    write_buf: Vec<u8>,
    write_pos: usize,
    options: &'o HttpOptions,
    info: ConnectionInfo,
    close: CloseWatch,
    timer: ConnectionTimer,
    service: S,
    /// The connection was handed to the application by an upgrade.
    upgraded: bool,
}

impl<'o, S> H1Connection<'o, S>
where
    S: HttpService,
{
    pub fn new(io: Box<dyn ConnectionIo>, read_buf: BytesMut, conn: ServedConnection<'o>, service: S) -> Self {
        let ServedConnection { info, close, timer, options } = conn;
        Self {
            io,
            read_buf,
            write_buf: Vec::new(),
            write_pos: 0,
            options,
            info,
            close: close.watch(),
            timer,
            service,
            upgraded: false,
        }
    }

    /// Serves one request. Returns whether the connection stays open. An
    /// `async` block, not an `async fn`, which would keep a second copy of
    /// the head in the request's box.
    #[allow(clippy::manual_async_fn)] // deliberate, for the box's size
    fn dispatch(&mut self, head: ParsedHead) -> impl Future<Output = Result<bool, Error>> + use<'_, 'o, S> {
        async move {
            if let Err(error) = poll_fn(|cx| self.service.poll_ready(cx)).await {
                let error = error.into();
                tracing::error!(connection_id = %self.info.id(), %error, "service is not ready; closing the connection");
                self.write_empty(StatusCode::SERVICE_UNAVAILABLE, None, false);
                return Err(Error::Service(error));
            }
            // The request is made and handed to the application in a block
            // with no await in it: the head, its parts and the request then
            // take no room in this future beside the application's.
            let (call, mut feeder, pending_upgrade, is_head, version, mut keep_alive) = {
                let ParsedHead { request, body: length, keep_alive, expect_continue, upgrade } = head;
                let is_head = request.method() == Method::HEAD;
                let version = request.version();
                let limit = self.options.limits.max_request_body_size;
                let feeder = match length {
                    BodyLength::Empty => None,
                    BodyLength::Length(n) => Some(BodyFeeder::new(Decoder::Length(n), Some(n), limit, expect_continue)),
                    BodyLength::Chunked => Some(BodyFeeder::new(
                        Decoder::Chunked(ChunkedDecoder::new(self.options.limits.max_request_headers_total_size)),
                        None,
                        limit,
                        expect_continue,
                    )),
                };
                let (mut parts, ()) = request.into_parts();
                let body = match &feeder {
                    Some(f) => RequestBody::incoming(f.shared.clone()),
                    None => RequestBody::empty(),
                };
                parts.extensions.insert(self.info.clone());
                self.timer.start_request(
                    self.options.limits.min_request_body_data_rate,
                    self.options.limits.min_response_data_rate,
                );
                parts.extensions.insert(self.timer.rates());
                if let Some(f) = &feeder {
                    parts.extensions.insert(MaxRequestBodySize::new(f.shared.clone()));
                }
                let mut pending_upgrade = None;
                if upgrade {
                    let (on_upgrade, pending) = OnUpgrade::pending();
                    parts.extensions.insert(on_upgrade);
                    pending_upgrade = Some(pending);
                }
                let request = Request::from_parts(parts, body);
                // The application runs in the request's span. Only its future
                // is wrapped: wrapping the whole dispatch would copy that larger
                // future once more per request.
                let span = tracing::debug_span!(
                    "request",
                    connection_id = %self.info.id(),
                    method = %request.method(),
                    path = %request.uri().path(),
                );
                let call = tracing::Instrument::instrument(self.service.call(request), span);
                (call, feeder, pending_upgrade, is_head, version, keep_alive)
            };
            let mut call = pin!(call);
            let outcome = poll_fn(|cx| loop {
                // A panic in the application is its request's 500, not the
                // connection's end.
                match panic::catch(|| call.as_mut().poll(cx)) {
                    Ok(Poll::Ready(result)) => return Poll::Ready(result.map_err(Into::<BoxError>::into)),
                    Ok(Poll::Pending) => {}
                    Err(panicked) => return Poll::Ready(Err(panicked)),
                }
                // Body bytes for a reader in the application: poll it again.
                if !feeder.as_mut().is_some_and(|f| self.poll_feed(cx, f)) {
                    return Poll::Pending;
                }
            })
            .await;

            keep_alive &= !self.close.is_requested();
            if let Some(f) = &feeder {
                keep_alive &= f.reusable();
            }

            let rejection = feeder.as_ref().and_then(|f| f.rejection);
            match (outcome, rejection) {
                // The body was refused (too large, malformed): answer with its
                // status, as for a refused head, and close.
                (_, Some(rejection)) => return Err(self.reject(rejection).await),
                (Err(error), None) => {
                    tracing::error!(connection_id = %self.info.id(), %error, "the application failed; sending 500");
                    keep_alive &= feeder.as_ref().is_none_or(BodyFeeder::continue_settled);
                    self.write_empty(StatusCode::INTERNAL_SERVER_ERROR, None, keep_alive);
                }
                (Ok(response), None) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
                    return self.switch(response, pending_upgrade).await;
                }
                (Ok(response), None) => {
                    keep_alive = match self.write_response(response, is_head, version, keep_alive, &mut feeder).await {
                        Ok(keep_alive) => keep_alive,
                        // The body was refused while the head was held back.
                        Err(Error::Rejected(rejection)) => return Err(self.reject(rejection).await),
                        Err(error) => return Err(error),
                    };
                }
            }
            // MinRequestBodyDataRate ends with the response: what is left of
            // the body is drained under the drain timeout.
            self.timer.end_body();

            if let Some(f) = feeder.as_mut() {
                if !f.finished && keep_alive {
                    keep_alive = self.drain(f).await?;
                }
            }
            if keep_alive && self.write_buf.len() >= self.options.limits.max_response_buffer_size {
                self.flush().await?;
            }
            Ok(keep_alive)
        }
    }

    /// Writes a `101 Switching Protocols` head and hands the connection,
    /// with the bytes read past the request head, to the application's
    /// [`OnUpgrade`]. Returns `false`: HTTP is over on this connection.
    async fn switch(&mut self, response: Response<S::Body>, pending: Option<PendingUpgrade>) -> Result<bool, Error> {
        let Some(pending) = pending else {
            tracing::error!(
                connection_id = %self.info.id(),
                "the application answered 101 to a request that cannot be upgraded; sending 500"
            );
            self.write_empty(StatusCode::INTERNAL_SERVER_ERROR, None, false);
            return Ok(false);
        };
        let Some(permit) = self.options.upgrades.try_acquire(self.options.limits.max_concurrent_upgraded_connections)
        else {
            tracing::warn!(
                connection_id = %self.info.id(),
                limit = self.options.limits.max_concurrent_upgraded_connections,
                "MaxConcurrentUpgradedConnections reached; the upgrade is refused with 503"
            );
            self.write_empty(StatusCode::SERVICE_UNAVAILABLE, None, false);
            pending.fail(UpgradeError::LimitReached);
            return Ok(false);
        };
        let (parts, _) = response.into_parts();
        let options = HeadOptions {
            keep_alive: true,
            request_version: Version::HTTP_11,
            server_header: self.options.add_server_header,
        };
        let facts = encode::HeaderFacts::of(&parts.headers);
        encode::write_head(self.write_buf(), parts.status, &parts.headers, &facts, None, &options);
        self.flush().await?;
        let io = std::mem::replace(&mut self.io, Box::new(Detached));
        let prefix = self.read_buf.split().freeze();
        self.upgraded = true;
        tracing::debug!(connection_id = %self.info.id(), "connection upgraded");
        pending.fulfill(Upgraded::http1(io, prefix, self.info.clone(), permit));
        Ok(false)
    }

    /// Decodes request body bytes for the application when it wants them.
    /// Returns whether the reader has something new to see: a reader in
    /// this task is not woken for it (see `wake_other`), so the caller polls
    /// it again.
    fn poll_feed(&mut self, cx: &mut Context<'_>, f: &mut BodyFeeder) -> bool {
        let mut progressed = false;
        while !f.finished {
            let limit = match f.shared.poll_want(cx) {
                Want::Wait => return progressed,
                Want::Dropped => {
                    // No reader is waiting: no rate to keep.
                    self.timer.end_body();
                    return progressed;
                }
                Want::Data { limit } => limit,
            };
            if let Err(rejection) = f.meter.check_declared(limit, f.content_length) {
                f.reject(rejection, cx);
                return true;
            }
            if f.expect_continue {
                f.expect_continue = false;
                if !f.head_written {
                    self.write_buf().extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
            }
            if !f.head_written && !self.write_buf.is_empty() {
                match self.poll_flush(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => {
                        f.fail_io(e, cx);
                        return true;
                    }
                    Poll::Pending => return progressed,
                }
            }
            match f.decoder.decode(&mut self.read_buf) {
                Ok(Decoded::Data(data)) => {
                    if let Err(rejection) = f.meter.count(data.len() as u64, limit, &self.timer) {
                        f.reject(rejection, cx);
                        return true;
                    }
                    f.shared.deliver_data(data, cx);
                    progressed = true;
                }
                Ok(Decoded::Trailers(trailers)) => {
                    f.shared.deliver_trailers(trailers, cx);
                    progressed = true;
                }
                Ok(Decoded::Done) => {
                    f.finished = true;
                    f.shared.finish(Some(cx));
                    progressed = true;
                }
                Ok(Decoded::NeedMore) => match self.poll_fill(cx) {
                    Poll::Ready(Ok(0)) => {
                        f.reject(RequestRejection::UnexpectedEndOfRequestContent, cx);
                        return true;
                    }
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(e)) => {
                        f.fail_io(e, cx);
                        return true;
                    }
                    Poll::Pending => {
                        // The application waits for bytes: MinRequestBodyDataRate counts.
                        if let Err(rejection) = f.meter.poll_waiting(&self.timer, cx) {
                            tracing::debug!(
                                target: "kite::bad_requests",
                                connection_id = %self.info.id(),
                                received = f.meter.received(),
                                "request body slower than MinRequestBodyDataRate"
                            );
                            f.reject(rejection, cx);
                            return true;
                        }
                        return progressed;
                    }
                },
                Err(rejection) => {
                    f.reject(rejection, cx);
                    return true;
                }
            }
        }
        progressed
    }

    /// Reads and discards what is left of a request body the application
    /// did not read, for up to the drain timeout. Returns whether the whole
    /// body arrived, so the connection can be reused.
    async fn drain(&mut self, f: &mut BodyFeeder) -> Result<bool, Error> {
        self.flush().await?;
        self.timer.set_deadline(self.options.request_drain_timeout);
        let drained = poll_fn(|cx| loop {
            match f.decoder.decode(&mut self.read_buf) {
                Ok(Decoded::Data(_)) | Ok(Decoded::Trailers(_)) => {}
                Ok(Decoded::Done) => return Poll::Ready(true),
                Err(_) => return Poll::Ready(false),
                Ok(Decoded::NeedMore) => match self.poll_fill(cx) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(false),
                    Poll::Ready(Ok(_)) => {}
                    Poll::Pending => {
                        if self.timer.poll_timeout(Timeout::Deadline, cx).is_ready() {
                            return Poll::Ready(false);
                        }
                        return Poll::Pending;
                    }
                },
            }
        })
        .await;
        if !drained {
            tracing::debug!(connection_id = %self.info.id(), "request body not drained in time; closing the connection");
        }
        f.finished = true;
        f.shared.finish(None);
        Ok(drained)
    }

    /// Answers a rejected request and closes the connection.
    async fn reject(&mut self, rejection: RequestRejection) -> Error {
        rejection.log(&self.info, "HTTP/1.x");
        self.close.signal().set_end_reason(rejection.end_reason());
        self.write_empty(rejection.status(), rejection.allow(), false);
        if let Err(e) = self.flush().await {
            return Error::Io(e);
        }
        self.linger().await;
        Error::Rejected(rejection)
    }

    /// Closes our side, then reads and discards for a while, so that unread
    /// request bytes do not make the kernel reset the connection before the
    /// client has read our answer.
    async fn linger(&mut self) {
        if poll_fn(|cx| Pin::new(&mut self.io).poll_shutdown(cx)).await.is_err() {
            return;
        }
        self.timer.set_deadline(LINGER_TIME);
        let mut discarded = 0usize;
        // Discard through the connection's own read buffer: a scratch array
        // here would make every connection's future larger.
        let _ = poll_fn(|cx| loop {
            if self.timer.poll_timeout(Timeout::Deadline, cx).is_ready() || discarded > LINGER_BYTES {
                return Poll::Ready(());
            }
            self.read_buf.clear();
            match self.poll_fill(cx) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(n)) => discarded += n,
                Poll::Pending => return Poll::Pending,
            }
        })
        .await;
        self.read_buf.clear();
    }

    fn write_empty(&mut self, status: StatusCode, allow: Option<&str>, keep_alive: bool) {
        let options = HeadOptions {
            keep_alive,
            request_version: Version::HTTP_11,
            server_header: self.options.add_server_header,
        };
        encode::write_empty(self.write_buf(), status, allow, &options);
    }

    /// Reads more into the read buffer. An idle connection holds no buffer:
    /// it waits for readability first, and gives its buffers back when a
    /// read finds nothing.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read_buf.capacity() - self.read_buf.len() < 512 {
            if self.read_buf.capacity() == 0 {
                // Idle: wait for data before taking a buffer.
                ready!(self.io.poll_read_ready(cx))?;
                self.read_buf = buffers::take_read();
            } else {
                self.read_buf.reserve(buffers::READ_BUFFER);
            }
        }
        match buffers::poll_read_into(&mut self.io, &mut self.read_buf, cx) {
            Poll::Pending => {
                if self.read_buf.is_empty() && self.write_buf.is_empty() {
                    self.release_buffers();
                }
                Poll::Pending
            }
            ready => ready,
        }
    }

    /// Gives both buffers back to the pool while the connection waits.
    fn release_buffers(&mut self) {
        buffers::give_read(std::mem::take(&mut self.read_buf));
        buffers::give_write(std::mem::take(&mut self.write_buf));
    }

    /// The write buffer, taken from the pool if the connection has none.
    fn write_buf(&mut self) -> &mut Vec<u8> {
        if self.write_buf.capacity() == 0 {
            self.write_buf = buffers::take_write();
        }
        &mut self.write_buf
    }

    /// Writes the whole write buffer, then flushes the stream.
    /// A write the client does not take in time for MinResponseDataRate
    /// fails with `TimedOut`, which aborts the connection.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.write_pos < self.write_buf.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.write_buf[self.write_pos..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.write_pos += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.write_blocked(cx, self.write_buf.len() - self.write_pos),
            }
        }
        self.timer.write_done();
        self.write_buf.clear();
        self.write_pos = 0;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Writes what is gathered and then `chunk`, in one vectored write
    /// where the stream takes one, and flushes: a large body chunk leaves
    /// from the application's buffer without a copy into `write_buf`.
    fn poll_write_through(&mut self, cx: &mut Context<'_>, chunk: &mut Bytes) -> Poll<io::Result<()>> {
        while self.write_pos < self.write_buf.len() || !chunk.is_empty() {
            let gathered = &self.write_buf[self.write_pos..];
            let io = Pin::new(&mut self.io);
            let polled = if gathered.is_empty() {
                io.poll_write(cx, chunk)
            } else if io.is_write_vectored() {
                io.poll_write_vectored(cx, &[IoSlice::new(gathered), IoSlice::new(chunk)])
            } else {
                io.poll_write(cx, gathered)
            };
            match polled {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    let from_gathered = n.min(gathered.len());
                    self.write_pos += from_gathered;
                    chunk.advance(n - from_gathered);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    let left = self.write_buf.len() - self.write_pos + chunk.len();
                    return self.write_blocked(cx, left);
                }
            }
        }
        self.timer.write_done();
        self.write_buf.clear();
        self.write_pos = 0;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// The client is not reading: `left` bytes wait. Aborts the
    /// connection once it reads slower than MinResponseDataRate.
    fn write_blocked(&mut self, cx: &mut Context<'_>, left: usize) -> Poll<io::Result<()>> {
        self.timer.write_pending(left);
        if self.timer.poll_timeout(Timeout::ResponseRate, cx).is_ready() {
            tracing::debug!(
                connection_id = %self.info.id(),
                "the client reads slower than MinResponseDataRate; aborting the connection"
            );
            self.close.signal().set_end_reason(ConnectionEndReason::MinResponseDataRate);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read the response slower than MinResponseDataRate",
            )));
        }
        Poll::Pending
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.write_buf.is_empty() {
            return Ok(());
        }
        poll_fn(|cx| self.poll_flush(cx)).await
    }
}
