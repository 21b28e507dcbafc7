//! An HTTP/3 request body: DATA frames, then trailers, with the body-size
//! limit and MinRequestBodyDataRate as on HTTP/2.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use h3::server::RequestStream;
use http_body::Frame;

use super::quic::H3Recv;
use crate::body::meter::{BodyMeter, RateMeter};
use crate::body::shared::Shared;
use crate::timing::body_rate::BodyRate;
use crate::timing::heartbeat::Clock;
use crate::BodyError;

/// Where a request stream goes when the application drops its body before
/// the end: the stream's answer asks the client to stop sending once the
/// response is complete (RFC 9114 §4.1.2), not before.
pub(crate) type Parked = Arc<Mutex<Option<RequestStream<H3Recv, Bytes>>>>;

/// Asks the client to stop sending the rest of a body nobody reads.
pub(crate) fn stop_parked(parked: &Parked) {
    let stream = parked.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(mut stream) = stream {
        stream.stop_sending(h3::error::Code::H3_NO_ERROR);
    }
}

/// The request side of one HTTP/3 stream.
pub(crate) struct H3Body {
    /// `None` once parked.
    recv: Option<RequestStream<H3Recv, Bytes>>,
    parked: Parked,
    shared: Arc<Shared>,
    rate: Option<(Arc<BodyRate>, Clock)>,
    meter: BodyMeter,
    data_done: bool,
    done: bool,
}

impl H3Body {
    pub fn new(
        recv: RequestStream<H3Recv, Bytes>,
        parked: Parked,
        shared: Arc<Shared>,
        rate: Option<(Arc<BodyRate>, Clock)>,
    ) -> Self {
        Self { recv: Some(recv), parked, shared, rate, meter: BodyMeter::default(), data_done: false, done: false }
    }

    fn fail(&mut self, error: BodyError) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.done = true;
        if matches!(error, BodyError::Rejected(_)) {
            // What the client still sends is not wanted; it is told once
            // the refusal's status has gone out.
            self.park();
        }
        self.shared.fail(error.clone(), None);
        Poll::Ready(Some(Err(error)))
    }

    /// The body contradicts its `content-length` (RFC 9114 §4.1.2): the
    /// client stops sending, and the answer resets the stream, both with
    /// H3_MESSAGE_ERROR.
    fn malformed(&mut self, why: &'static str) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        tracing::debug!(
            target: "kite::bad_requests",
            received = self.meter.received(),
            "malformed HTTP/3 request: {why}; resetting the stream with H3_MESSAGE_ERROR"
        );
        if let Some(mut recv) = self.recv.take() {
            recv.stop_sending(h3::error::Code::H3_MESSAGE_ERROR);
        }
        self.done = true;
        let error = BodyError::Malformed(why);
        self.shared.fail(error.clone(), None);
        Poll::Ready(Some(Err(error)))
    }

    pub fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let Some(recv) = self.recv.as_mut() else { return Poll::Ready(None) };
        let (limit, content_length) = {
            let mut state = self.shared.lock();
            state.read_started = true;
            (state.limit, state.content_length)
        };
        if let Err(rejection) = self.meter.check_declared(limit, content_length) {
            return self.fail(BodyError::Rejected(rejection));
        }
        if !self.data_done {
            match recv.poll_recv_data(cx) {
                Poll::Ready(Ok(Some(mut data))) => {
                    let data = data.copy_to_bytes(data.remaining());
                    let counted = self.meter.count(data.len() as u64, limit, &self.rate);
                    if content_length.is_some_and(|length| self.meter.received() > length) {
                        return self.malformed("DATA past the content-length");
                    }
                    if let Err(rejection) = counted {
                        return self.fail(BodyError::Rejected(rejection));
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Ok(None)) => {
                    if content_length.is_some_and(|length| self.meter.received() != length) {
                        return self.malformed("the body ended short of its content-length");
                    }
                    self.data_done = true;
                    self.rate.end();
                }
                Poll::Ready(Err(e)) => return self.fail(body_error(e)),
                Poll::Pending => {
                    if let Err(rejection) = self.meter.poll_waiting(&self.rate, cx) {
                        return self.fail(BodyError::Rejected(rejection));
                    }
                    return Poll::Pending;
                }
            }
        }
        let Some(recv) = self.recv.as_mut() else { return Poll::Ready(None) };
        match recv.poll_recv_trailers(cx) {
            Poll::Ready(Ok(trailers)) => {
                self.done = true;
                self.shared.finish(None);
                Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))))
            }
            Poll::Ready(Err(e)) => self.fail(body_error(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The application let go of the body.
    pub fn dropped(&mut self) {
        self.shared.lock().reader_dropped = true;
        if !self.done {
            self.park();
        }
    }

    /// Hands the stream to the answer, which stops the rest of the body
    /// after the response.
    fn park(&mut self) {
        if let Some(recv) = self.recv.take() {
            *self.parked.lock().unwrap_or_else(|p| p.into_inner()) = Some(recv);
        }
    }

    pub fn is_end_stream(&self) -> bool {
        self.done
    }

    pub fn content_length(&self) -> Option<u64> {
        self.shared.lock().content_length.map(|n| n.saturating_sub(self.meter.received()))
    }
}

/// A stream the client reset names its code; anything else is the
/// connection failing.
fn body_error(error: h3::error::StreamError) -> BodyError {
    match error {
        h3::error::StreamError::RemoteTerminate { code, .. } => {
            BodyError::Reset(u32::try_from(u64::from(code)).unwrap_or(u32::MAX))
        }
        other => BodyError::Io(Arc::new(std::io::Error::other(other.to_string()))),
    }
}
