//! The response side of an HTTP/2 stream: the head, the body as DATA
//! frames within flow control, trailers, and the application's resets.

use std::future::poll_fn;
use std::pin::{pin, Pin};
use std::task::Poll;

use bytes::{Buf, Bytes};
use h2::server::SendResponse;
use h2::{Reason, SendStream};
use http::header::{CONNECTION, DATE, SERVER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame};

use super::reset::StreamReset;
use crate::body::shared::Shared;
use crate::{BodyError, BoxError};

/// A response body's frame, with its error made a `BoxError`.
pub(crate) type Polled<D> = Option<Result<Frame<D>, BoxError>>;

/// Sends the response (or the status a refused body earned), its body and
/// trailers.
///
/// While the application reads a request body that is still arriving, the
/// head waits for the response body's first frame, as on HTTP/1.1: a
/// request body refused meanwhile (`413`, `408` for MinRequestBodyDataRate)
/// still gets its own status instead of a stream reset mid-response.
///
/// A request body left unread is drained after the response, within
/// bounds (`super::drain`), rather than reset at once.
pub(super) async fn answer<B>(
    outcome: Result<Response<B>, BoxError>,
    mut respond: SendResponse<Bytes>,
    shared: &Shared,
    reset: &StreamReset,
    is_head: bool,
    server_header: bool,
) where
    B: Body,
    B::Error: Into<BoxError>,
{
    let failed = |error: &dyn std::fmt::Display, what: &str| {
        if client_caused(shared) {
            tracing::debug!(%error, "{what}, after the request body failed");
        } else {
            tracing::error!(%error, "{what}");
        }
    };
    let (mut parts, body) = response_parts(outcome, is_head, &failed);
    let mut body = pin!(body);

    // `None`: no frame taken yet; `Some(None)`: the body ended.
    let mut first: Option<Polled<B::Data>> = None;
    if let Some(mut pending) = body.as_mut().as_pin_mut().filter(|_| !shared.lock().finished) {
        let held = poll_fn(|cx| {
            if let Poll::Ready(code) = reset.poll_requested(cx) {
                return Poll::Ready(Err(Some(code)));
            }
            match poll_body(pending.as_mut(), cx) {
                Poll::Ready(polled) => Poll::Ready(Ok(Some(polled))),
                Poll::Pending if shared.is_being_read() => respond.poll_reset(cx).map(|_| Err(None)),
                // Waiting on something else: the head goes now.
                Poll::Pending => Poll::Ready(Ok(None)),
            }
        })
        .await;
        match held {
            Ok(polled) => first = polled,
            Err(Some(code)) => {
                tracing::debug!(code, "the application reset the stream");
                respond.send_reset(Reason::from(code));
                return;
            }
            Err(None) => return tracing::debug!("the client reset the stream before the response"),
        }
    }

    if let Some(status) = status_instead(shared, &first, &failed) {
        parts = status_parts(status);
        body.set(None);
        first = None;
    }

    prepare_headers(&mut parts.headers, server_header);
    let ended = matches!(first, Some(None));
    let end_stream = body.is_none() || ended;
    let mut send = match respond.send_response(Response::from_parts(parts, ()), end_stream) {
        Ok(send) => send,
        Err(e) => return tracing::debug!(error = %e, "the client reset the stream before the response"),
    };
    let Some(body) = body.as_mut().as_pin_mut().filter(|_| !ended) else {
        return;
    };
    match send_body(body, first.flatten(), &mut send, reset).await {
        Ok(()) => {}
        Err(Stop::Reset(code)) => {
            tracing::debug!(code, "the application reset the stream");
            send.send_reset(Reason::from(code));
        }
        Err(Stop::Failed(error)) => {
            tracing::debug!(%error, "response body failed; resetting the stream");
            send.send_reset(Reason::INTERNAL_ERROR);
        }
    }
}

/// Logs a failure of the application: `what` happened, because of
/// `error`. Each protocol logs under its own target, and at the level the
/// cause deserves ([`client_caused`]).
pub(crate) type Failed<'a> = &'a dyn Fn(&dyn std::fmt::Display, &str);

/// Whether the request body failed first (the client reset the stream,
/// broke its framing, or went away): the application's failure that
/// follows is the client's doing, not the server's.
pub(crate) fn client_caused(shared: &Shared) -> bool {
    shared.lock().error.is_some()
}

/// The head and, when it has one, the body of the application's answer:
/// a failed application becomes a 500 without a body, and a HEAD, 204 or
/// 304 response, or one whose body is already over, has none.
pub(crate) fn response_parts<B: Body>(
    outcome: Result<Response<B>, BoxError>,
    is_head: bool,
    failed: Failed<'_>,
) -> (http::response::Parts, Option<B>) {
    let (parts, body) = match outcome {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            (parts, Some(body))
        }
        Err(error) => {
            failed(&error, "the application failed; sending 500");
            (status_parts(StatusCode::INTERNAL_SERVER_ERROR), None)
        }
    };
    let no_body = is_head
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED
        || body.as_ref().is_none_or(Body::is_end_stream);
    (parts, body.filter(|_| !no_body))
}

/// The status a response gets instead of the application's: a refused
/// request body's (413, 408), or 500 for a response body that failed
/// before its head left. `first` is the body's first frame, if taken.
pub(crate) fn status_instead<D>(shared: &Shared, first: &Option<Polled<D>>, failed: Failed<'_>) -> Option<StatusCode> {
    if let Some(BodyError::Rejected(rejection)) = &shared.lock().error {
        return Some(rejection.status());
    }
    if let Some(Some(Err(error))) = first {
        failed(error, "the response body failed before its head was sent; sending 500");
        return Some(StatusCode::INTERNAL_SERVER_ERROR);
    }
    None
}

pub(crate) fn status_parts(status: StatusCode) -> http::response::Parts {
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = status;
    parts
}

/// Polls the body for a frame, turning a panic into an error.
pub(crate) fn poll_body<B>(body: Pin<&mut B>, cx: &mut std::task::Context<'_>) -> Poll<Polled<B::Data>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    // Errors become `BoxError` at once: `B::Error` need not be `Send`.
    match crate::panic::catch(|| body.poll_frame(cx)) {
        Ok(polled) => polled.map(|f| f.map(|r| r.map_err(Into::<BoxError>::into))),
        Err(panicked) => Poll::Ready(Some(Err(panicked))),
    }
}

/// Connection-specific headers are not allowed on HTTP/2; Kite adds
/// `Date` and `Server` as on HTTP/1.1.
pub(crate) fn prepare_headers(headers: &mut HeaderMap, server_header: bool) {
    for name in [CONNECTION, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    if !headers.contains_key(DATE) {
        headers.insert(DATE, crate::timing::date::header_value());
    }
    if server_header && !headers.contains_key(SERVER) {
        headers.insert(SERVER, HeaderValue::from_static("kite"));
    }
}

/// Streams `body` (after `first`, a frame already taken from it) as DATA
/// frames within the flow-control window, then its trailers or END_STREAM.
async fn send_body<B>(
    mut body: Pin<&mut B>,
    mut first: Option<Result<Frame<B::Data>, BoxError>>,
    send: &mut SendStream<Bytes>,
    reset: &StreamReset,
) -> Result<(), Stop>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    loop {
        let next = match first.take() {
            Some(frame) => Some(frame),
            None => {
                poll_fn(|cx| {
                    if let Poll::Ready(code) = reset.poll_requested(cx) {
                        return Poll::Ready(Err(Stop::Reset(code)));
                    }
                    poll_body(body.as_mut(), cx).map(Ok)
                })
                .await?
            }
        };
        let Some(frame) = next else {
            break;
        };
        match frame?.into_data() {
            Ok(mut data) => {
                let mut bytes = data.copy_to_bytes(data.remaining());
                drop(data);
                // END_STREAM rides on the last chunk, not on an extra frame.
                let last = body.is_end_stream();
                if bytes.is_empty() && last {
                    send.send_data(bytes, true)?;
                    return Ok(());
                }
                while !bytes.is_empty() {
                    send.reserve_capacity(bytes.len());
                    let granted = poll_fn(|cx| {
                        if let Poll::Ready(code) = reset.poll_requested(cx) {
                            return Poll::Ready(Some(Err(Stop::Reset(code))));
                        }
                        send.poll_capacity(cx).map(|c| c.map(|r| r.map_err(Stop::from)))
                    })
                    .await
                    .ok_or(Stop::Failed("the stream closed".into()))??;
                    let chunk = bytes.split_to(granted.min(bytes.len()));
                    send.send_data(chunk, last && bytes.is_empty())?;
                }
                if last {
                    return Ok(());
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    send.send_trailers(trailers)?;
                    return Ok(());
                }
            }
        }
    }
    send.send_data(Bytes::new(), true)?;
    Ok(())
}

/// Why a response body stopped early.
enum Stop {
    /// The application reset the stream with this code.
    Reset(u32),
    /// The body or the stream failed.
    Failed(BoxError),
}

impl<E: Into<BoxError>> From<E> for Stop {
    fn from(error: E) -> Self {
        Stop::Failed(error.into())
    }
}
