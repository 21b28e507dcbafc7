//! Resetting an HTTP/2 stream from the application.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::body::shared::{ResetState, Shared, NOT_REQUESTED};

/// Resets the HTTP/2 stream a request came on, with an error code
/// (Kestrel's `IHttpResetFeature`).
///
/// Every HTTP/2 request carries one in its extensions; HTTP/1.x requests
/// have none, as in Kestrel, since HTTP/1.x cannot reset one request
/// without closing the connection. Calling [`reset`](Self::reset) sends
/// `RST_STREAM` with the code at once: the service's future is dropped if
/// it is still running, and a response body being sent stops. A reset after
/// the response has ended does nothing.
///
/// ```
/// use http::{Request, Response};
/// use kite_http_core::{RequestBody, StreamReset};
///
/// /// Refuses uploads to a read-only path with REFUSED_STREAM (0x7).
/// async fn handler(req: Request<RequestBody>) -> Response<String> {
///     if let Some(reset) = req.extensions().get::<StreamReset>() {
///         reset.reset(0x7);
///     }
///     Response::new(String::new())
/// }
/// ```
#[derive(Clone)]
pub struct StreamReset {
    /// The stream's body state, which carries the reset request: one
    /// allocation per stream, not two.
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StreamReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReset").field("requested", &self.requested()).finish()
    }
}

impl StreamReset {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn state(&self) -> &ResetState {
        &self.shared.reset
    }

    /// Asks for the stream to be reset with `code`, an HTTP/2 error code
    /// (RFC 9113 §7: `0x0` NO_ERROR, `0x2` INTERNAL_ERROR, `0x7`
    /// REFUSED_STREAM, `0x8` CANCEL, …). The first call wins.
    pub fn reset(&self, code: u32) {
        let _ = self.state().code.compare_exchange(NOT_REQUESTED, u64::from(code), Ordering::AcqRel, Ordering::Acquire);
        self.state().waker.wake();
    }

    /// The code asked for, once [`reset`](Self::reset) has been called.
    pub fn requested(&self) -> Option<u32> {
        u32::try_from(self.state().code.load(Ordering::Acquire)).ok()
    }

    /// Ready with the code once a reset is asked for; registers `cx` to be
    /// woken by [`reset`](Self::reset) otherwise.
    pub(crate) fn poll_requested(&self, cx: &mut Context<'_>) -> Poll<u32> {
        if let Some(code) = self.requested() {
            return Poll::Ready(code);
        }
        self.state().waker.register(cx.waker());
        self.requested().map_or(Poll::Pending, Poll::Ready)
    }
}
