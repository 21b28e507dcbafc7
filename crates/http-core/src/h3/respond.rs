//! The response side of an HTTP/3 request stream: the head, the body as
//! DATA frames, trailers, and the stream's end.

use std::future::poll_fn;
use std::pin::pin;
use std::task::Poll;

use bytes::{Buf, Bytes};
use h3::error::Code;
use h3::server::RequestStream;
use http::{HeaderValue, Response};
use http_body::Body;

use super::quic::H3Send;
use crate::body::shared::Shared;
use crate::h2::respond::{
    client_caused, poll_body, prepare_headers, response_parts, status_instead, status_parts, Polled,
};
use crate::{BodyError, BoxError};

/// Whether the request broke its own framing ([`BodyError::Malformed`]):
/// the stream is then reset with H3_MESSAGE_ERROR, however far the
/// response has got.
fn malformed(shared: &Shared) -> bool {
    matches!(shared.lock().error, Some(BodyError::Malformed(_)))
}

/// What an HTTP/3 response carries beyond the application's own headers.
#[derive(Clone, Copy)]
pub(super) struct Extras {
    pub is_head: bool,
    pub server_header: bool,
}

/// Sends the response (or the status a refused body earned), its body and
/// trailers, then ends the stream.
///
/// While the application reads a request body that is still arriving, the
/// head waits for the response body's first frame, as on HTTP/1.1 and
/// HTTP/2, so a body refused meanwhile (`413`, `408`) still gets its own
/// status.
pub(super) async fn answer<B>(
    outcome: Result<Response<B>, BoxError>,
    mut send: RequestStream<H3Send, Bytes>,
    shared: &Shared,
    extras: Extras,
) where
    B: Body,
    B::Error: Into<BoxError>,
{
    let failed = |error: &dyn std::fmt::Display, what: &str| {
        if client_caused(shared) {
            tracing::debug!(target: "kite::http3", %error, "{what}, after the request body failed");
        } else {
            tracing::error!(target: "kite::http3", %error, "{what}");
        }
    };
    let (mut parts, body) = response_parts(outcome, extras.is_head, &failed);
    let mut body = pin!(body);

    // `None`: no frame taken yet; `Some(None)`: the body ended.
    let mut first: Option<Polled<B::Data>> = None;
    if let Some(mut pending) = body.as_mut().as_pin_mut().filter(|_| !shared.lock().finished) {
        first = poll_fn(|cx| match poll_body(pending.as_mut(), cx) {
            Poll::Ready(polled) => Poll::Ready(Some(polled)),
            Poll::Pending if shared.is_being_read() => Poll::Pending,
            Poll::Pending => Poll::Ready(None),
        })
        .await;
    }
    if malformed(shared) {
        return send.stop_stream(Code::H3_MESSAGE_ERROR);
    }
    if let Some(status) = status_instead(shared, &first, &failed) {
        parts = status_parts(status);
        body.set(None);
        first = None;
    }
    prepare_headers(&mut parts.headers, extras.server_header);
    if body.is_none() && !extras.is_head && !parts.headers.contains_key(http::header::CONTENT_LENGTH) {
        parts.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    if let Err(e) = send.send_response(Response::from_parts(parts, ())).await {
        return tracing::debug!(error = %e, "the client went away before the response");
    }
    let ended = matches!(first, Some(None));
    if let Some(mut body) = body.as_mut().as_pin_mut().filter(|_| !ended) {
        let mut next = first.flatten();
        loop {
            let frame = match next.take() {
                Some(frame) => Some(frame),
                None => poll_fn(|cx| poll_body(body.as_mut(), cx)).await,
            };
            let Some(frame) = frame else { break };
            if malformed(shared) {
                return send.stop_stream(Code::H3_MESSAGE_ERROR);
            }
            let sent = match frame.map(|f| f.into_data()) {
                Ok(Ok(mut data)) => send.send_data(data.copy_to_bytes(data.remaining())).await,
                Ok(Err(frame)) => match frame.into_trailers() {
                    Ok(trailers) => {
                        if let Err(e) = send.send_trailers(trailers).await {
                            return tracing::debug!(error = %e, "the client went away during the response");
                        }
                        break;
                    }
                    Err(_) => Ok(()),
                },
                Err(error) => {
                    tracing::debug!(target: "kite::http3", %error, "response body failed; resetting the stream");
                    send.stop_stream(Code::H3_INTERNAL_ERROR);
                    return;
                }
            };
            if let Err(e) = sent {
                return tracing::debug!(error = %e, "the client went away during the response");
            }
        }
    }
    if malformed(shared) {
        return send.stop_stream(Code::H3_MESSAGE_ERROR);
    }
    if let Err(e) = send.finish().await {
        tracing::debug!(error = %e, "the client went away at the end of the response");
    }
}
