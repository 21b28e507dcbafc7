//! Draining a request body the application left unread.
//!
//! A response can end before its request body has (a `405` to an
//! upload, an early `401`). Resetting the stream at once, as RFC 9113
//! §8.1 allows, races the client: its frames already in flight land on a
//! stream the server has reset, which the server must then ignore, so a
//! protocol error the client commits on that stream is answered or not
//! depending on the timing, and clients such as curl report the upload as
//! failed although the answer arrived. Kite keeps such a stream open and
//! discards what the client still sends, within
//! [`Http2Limits::max_request_drain_size`](crate::Http2Limits) bytes and
//! [`Http2Limits::request_drain_timeout`](crate::Http2Limits); only a body
//! that has not ended by then is reset, with `RST_STREAM(NO_ERROR)`.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use h2::RecvStream;

use crate::body::shared::Shared;

/// Drains the unread body the application let go of, if there is one,
/// after the response has been queued; `true` when it drained one to its
/// end. Dropping the stream at the end
/// lets the h2 crate send `RST_STREAM(NO_ERROR)` if the body had not
/// ended; a client's reset or protocol error on the stream ends the
/// drain, answered by the h2 crate with the code RFC 9113 names.
pub(super) async fn drain(shared: &Shared, max_bytes: u64, timeout: Duration) -> bool {
    // Taken out at once: a body still held by the application is not
    // waited for, and is reset when it is dropped.
    let Some(mut recv) = shared.lock().unread_h2.take() else {
        return false;
    };
    if timeout.is_zero() || max_bytes == 0 {
        return false;
    }
    let mut deadline = pin!(tokio::time::sleep(timeout));
    let mut discarded = 0u64;
    let ended = poll_fn(|cx| loop {
        match poll_discard(&mut recv, cx) {
            Poll::Ready(Some(Ok(n))) => {
                discarded += n as u64;
                if discarded > max_bytes {
                    return Poll::Ready(Err("MaxRequestDrainSize"));
                }
            }
            Poll::Ready(Some(Err(()))) => return Poll::Ready(Ok(false)),
            Poll::Ready(None) => return Poll::Ready(Ok(true)),
            Poll::Pending => {
                return match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err("RequestDrainTimeout")),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    })
    .await;
    match ended {
        Ok(true) => {
            tracing::trace!(discarded, "unread request body drained to its end");
            return true;
        }
        Ok(false) => tracing::debug!(discarded, "the client reset the stream while its unread body was drained"),
        Err(limit) => {
            tracing::debug!(
                discarded,
                limit,
                "unread request body not ended within the drain bound; RST_STREAM(NO_ERROR)"
            )
        }
    }
    false
}

/// The next DATA frame's size, its capacity given back, then `None` once
/// the trailers (if any) have come; `Err` when the stream failed.
fn poll_discard(recv: &mut RecvStream, cx: &mut std::task::Context<'_>) -> Poll<Option<Result<usize, ()>>> {
    if !recv.is_end_stream() {
        match recv.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                let _ = recv.flow_control().release_capacity(data.len());
                return Poll::Ready(Some(Ok(data.len())));
            }
            Poll::Ready(Some(Err(_))) => return Poll::Ready(Some(Err(()))),
            Poll::Ready(None) => {}
            Poll::Pending => return Poll::Pending,
        }
    }
    match recv.poll_trailers(cx) {
        Poll::Ready(Ok(_)) => Poll::Ready(None),
        Poll::Ready(Err(_)) => Poll::Ready(Some(Err(()))),
        Poll::Pending => Poll::Pending,
    }
}
