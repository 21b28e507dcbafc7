//! The request body the application reads.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::shared::{set_waker, wake, wake_other, Shared};
use crate::BodyError;

/// The body of a request, as the application receives it: an
/// [`http_body::Body`] of [`Bytes`] frames, then trailers if the client
/// sent any.
///
/// Reading it is what makes the connection read the socket: nothing is
/// read ahead of the application by more than one chunk, and a client that
/// sent `Expect: 100-continue` gets its `100 Continue` on the first read.
/// A body the application leaves unread is drained after the response (up
/// to 5 seconds) so the connection can be reused.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use http_body_util::BodyExt;
/// use kite_http_core::RequestBody;
///
/// let body = RequestBody::from("hello");
/// let bytes = body.collect().await.unwrap().to_bytes();
/// assert_eq!(bytes, "hello");
/// # });
/// ```
pub struct RequestBody {
    inner: Inner,
}

enum Inner {
    Empty,
    Full(Option<Bytes>),
    Incoming(Arc<Shared>),
    H2(Box<crate::h2::body::H2Body>),
    #[cfg(feature = "http3")]
    H3(Box<crate::h3::body::H3Body>),
}

impl RequestBody {
    /// A body with no bytes.
    pub fn empty() -> Self {
        Self { inner: Inner::Empty }
    }

    pub(crate) fn incoming(shared: Arc<Shared>) -> Self {
        Self { inner: Inner::Incoming(shared) }
    }

    pub(crate) fn h2(body: crate::h2::body::H2Body) -> Self {
        Self { inner: Inner::H2(Box::new(body)) }
    }

    #[cfg(feature = "http3")]
    pub(crate) fn h3(body: crate::h3::body::H3Body) -> Self {
        Self { inner: Inner::H3(Box::new(body)) }
    }
}

impl Default for RequestBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.inner {
            Inner::Empty => "empty",
            Inner::Full(_) => "full",
            Inner::Incoming(_) => "incoming",
            Inner::H2(_) => "http2",
            #[cfg(feature = "http3")]
            Inner::H3(_) => "http3",
        };
        f.debug_struct("RequestBody").field("kind", &kind).finish()
    }
}

impl From<Bytes> for RequestBody {
    fn from(bytes: Bytes) -> Self {
        Self { inner: Inner::Full(Some(bytes).filter(|b| !b.is_empty())) }
    }
}

impl From<Vec<u8>> for RequestBody {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

impl From<String> for RequestBody {
    fn from(s: String) -> Self {
        Bytes::from(s).into()
    }
}

impl From<&'static str> for RequestBody {
    fn from(s: &'static str) -> Self {
        Bytes::from_static(s.as_bytes()).into()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let shared = match &mut self.inner {
            Inner::Empty => return Poll::Ready(None),
            Inner::Full(bytes) => return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::H2(body) => return body.poll_frame(cx),
            #[cfg(feature = "http3")]
            Inner::H3(body) => return body.poll_frame(cx),
            Inner::Incoming(shared) => shared,
        };
        let mut state = shared.lock();
        let first_read = !state.read_started;
        state.read_started = true;
        let frame = if let Some(chunk) = state.chunk.take() {
            state.delivered += chunk.len() as u64;
            Some(Ok(Frame::data(chunk)))
        } else if let Some(trailers) = state.trailers.take() {
            Some(Ok(Frame::trailers(trailers)))
        } else if let Some(error) = state.error.clone() {
            Some(Err(error))
        } else if state.finished {
            return Poll::Ready(None);
        } else {
            None
        };
        match frame {
            Some(frame) => {
                // Room for the next chunk.
                wake_other(&mut state.conn_waker, cx);
                Poll::Ready(Some(frame))
            }
            None => {
                set_waker(&mut state.reader_waker, cx);
                if first_read || state.conn_waker.is_some() {
                    wake_other(&mut state.conn_waker, cx);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Empty => true,
            Inner::Full(bytes) => bytes.is_none(),
            Inner::H2(body) => body.is_end_stream(),
            #[cfg(feature = "http3")]
            Inner::H3(body) => body.is_end_stream(),
            Inner::Incoming(shared) => {
                let state = shared.lock();
                state.finished && state.chunk.is_none() && state.trailers.is_none() && state.error.is_none()
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Empty => SizeHint::with_exact(0),
            Inner::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::H2(body) => body.content_length().map_or_else(SizeHint::default, SizeHint::with_exact),
            #[cfg(feature = "http3")]
            Inner::H3(body) => body.content_length().map_or_else(SizeHint::default, SizeHint::with_exact),
            Inner::Incoming(shared) => {
                let state = shared.lock();
                match state.content_length {
                    Some(n) => SizeHint::with_exact(n.saturating_sub(state.delivered)),
                    None => SizeHint::default(),
                }
            }
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        match &mut self.inner {
            Inner::Incoming(shared) => {
                let mut state = shared.lock();
                state.reader_dropped = true;
                wake(&mut state.conn_waker);
            }
            Inner::H2(_) => {
                if let Inner::H2(body) = std::mem::replace(&mut self.inner, Inner::Empty) {
                    (*body).dropped();
                }
            }
            #[cfg(feature = "http3")]
            Inner::H3(body) => body.dropped(),
            Inner::Empty | Inner::Full(_) => {}
        }
    }
}
