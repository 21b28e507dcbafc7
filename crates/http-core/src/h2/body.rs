//! An HTTP/2 request body.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;

use crate::body::meter::{BodyMeter, RateMeter};
use crate::body::shared::Shared;
use crate::timing::body_rate::BodyRate;
use crate::timing::heartbeat::Clock;
use crate::BodyError;

/// The request side of one stream: DATA frames (their flow-control
/// capacity released as the application takes them), then trailers. The
/// body-size limit comes from the shared state the `MaxRequestBodySize`
/// extension writes.
pub(crate) struct H2Body {
    recv: h2::RecvStream,
    shared: Arc<Shared>,
    /// MinRequestBodyDataRate for this stream, with the heartbeat's clock.
    rate: Option<(Arc<BodyRate>, Clock)>,
    meter: BodyMeter,
    data_done: bool,
    done: bool,
}

impl H2Body {
    pub fn new(recv: h2::RecvStream, shared: Arc<Shared>, rate: Option<(Arc<BodyRate>, Clock)>) -> Self {
        Self { recv, shared, rate, meter: BodyMeter::default(), data_done: false, done: false }
    }

    fn fail(&mut self, error: BodyError) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.done = true;
        self.shared.fail(error.clone(), None);
        Poll::Ready(Some(Err(error)))
    }

    pub fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let (limit, content_length) = {
            let mut state = self.shared.lock();
            state.read_started = true;
            (state.limit, state.content_length)
        };
        if let Err(rejection) = self.meter.check_declared(limit, content_length) {
            return self.fail(BodyError::Rejected(rejection));
        }
        if !self.data_done {
            match self.recv.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    if let Err(rejection) = self.meter.count(data.len() as u64, limit, &self.rate) {
                        return self.fail(BodyError::Rejected(rejection));
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(e))) => return self.fail(body_error(e)),
                Poll::Ready(None) => {
                    self.data_done = true;
                    self.rate.end();
                }
                Poll::Pending => {
                    // The application waits for bytes: the rate counts.
                    if let Err(rejection) = self.meter.poll_waiting(&self.rate, cx) {
                        return self.fail(BodyError::Rejected(rejection));
                    }
                    return Poll::Pending;
                }
            }
        }
        match self.recv.poll_trailers(cx) {
            Poll::Ready(Ok(trailers)) => {
                self.done = true;
                self.shared.finish(None);
                Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))))
            }
            Poll::Ready(Err(e)) => self.fail(body_error(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The application let go of the body: nobody waits on it any more.
    /// A body the client is still sending is handed to the stream, which
    /// drains it once the response has gone ([`drain`](super::drain)).
    pub fn dropped(self) {
        let this = self;
        let mut state = this.shared.lock();
        state.reader_dropped = true;
        if !this.done && !this.recv.is_end_stream() {
            state.unread_h2 = Some(this.recv);
        }
    }

    pub fn is_end_stream(&self) -> bool {
        self.done || self.recv.is_end_stream()
    }

    pub fn content_length(&self) -> Option<u64> {
        self.shared.lock().content_length.map(|n| n.saturating_sub(self.meter.received()))
    }
}

/// A stream reset names its code; anything else is the connection failing.
fn body_error(error: h2::Error) -> BodyError {
    match error.reason() {
        Some(reason) if error.is_reset() => BodyError::Reset(reason.into()),
        _ => BodyError::Io(Arc::new(std::io::Error::other(error))),
    }
}
