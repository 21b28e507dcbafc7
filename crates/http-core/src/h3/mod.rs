//! HTTP/3 on the h3 crate, over any multiplexed transport: the same
//! application contract as HTTP/1.1 and HTTP/2, Kestrel's HTTP/3 limits,
//! trailers both ways, and graceful GOAWAY.

pub(crate) mod body;
mod head;
mod quic;
mod respond;
mod watch;

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use http::{Method, Request, Response};
use kite_transport_core::multiplexed::MultiplexedIo;

use self::body::{stop_parked, H3Body, Parked};
use self::quic::H3Connection;
use self::respond::{answer, Extras};
use crate::body::shared::Shared;
use crate::served::ServedConnection;
use crate::timing::heartbeat::Timeout;
use crate::timing::stream_rates::StreamRates;
use crate::HttpService;
use crate::{BoxError, ConnectionInfo, Error, HttpOptions, MaxRequestBodySize, MinDataRates, RequestBody};

/// HTTP/3's code for a clean close.
const H3_NO_ERROR: u64 = 0x100;

/// How long a connection that sent GOAWAY and has nothing left to answer
/// stays open before it closes, unless the client closes first: closing
/// at once would drop the GOAWAY unsent (a QUIC close discards what is
/// queued), and the client would see only the close.
const GOAWAY_LINGER: std::time::Duration = std::time::Duration::from_millis(500);

type Resolver = h3::server::RequestResolver<H3Connection, Bytes>;

enum Event {
    Close,
    Drained,
    Accepted(Result<Option<Box<Resolver>>, h3::error::ConnectionError>),
    ServiceFailed(BoxError),
}

/// Serves HTTP/3 on a multiplexed connection (`io`) until the client or the
/// server ends it.
pub(crate) async fn serve<S>(
    io: Box<dyn MultiplexedIo>,
    conn: ServedConnection<'_>,
    mut service: S,
) -> Result<(), Error>
where
    S: HttpService,
{
    let ServedConnection { info, close, timer, options } = conn;
    // Closes the connection once a graceful close has drained it: h3
    // itself waits for the client to close after our GOAWAY.
    let mut closer = io.clone_opener();
    let mut builder = h3::server::builder();
    builder.max_field_section_size(options.http3.max_request_header_field_size.into());
    let quic = H3Connection::new(io, info.id());
    let signals = quic.signals();
    let mut connection: h3::server::Connection<H3Connection, Bytes> = match builder.build(quic).await {
        Ok(connection) => connection,
        Err(e) => {
            tracing::debug!(connection_id = %info.id(), error = %e, "HTTP/3 connection setup failed");
            return Err(Error::Http3(e.into()));
        }
    };
    let mut rates = StreamRates::new(options.limits.min_request_body_data_rate, timer.clock());
    timer.want_ticks(rates.enabled());
    // Streams whose request head is still arriving, then streams being
    // answered.
    let mut heads = FuturesUnordered::new();
    let mut streams = FuturesUnordered::new();
    let mut closing = false;
    // Set with the GOAWAY: until it fires, a drained connection stays open.
    let mut linger: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut close = close.watch();
    // The client's GOAWAY ended accept: ours goes back once the last
    // requests are answered.
    let mut answer_goaway = false;
    let keep_alive = options.limits.keep_alive_timeout;
    timer.set_deadline(keep_alive);
    let result = loop {
        let event = {
            let mut accept = pin!(connection.accept());
            poll_fn(|cx| loop {
                if !closing && close.poll_requested(cx).is_ready() {
                    return Poll::Ready(Event::Close);
                }
                // The client's GOAWAY is answered with the server's.
                if !closing && signals.poll_goaway(cx).is_ready() {
                    tracing::debug!(target: "kite::http3", connection_id = %info.id(), "the client sent GOAWAY");
                    return Poll::Ready(Event::Close);
                }
                if closing
                    && streams.is_empty()
                    && heads.is_empty()
                    && linger.as_mut().is_none_or(|linger| linger.as_mut().poll(cx).is_ready())
                {
                    return Poll::Ready(Event::Drained);
                }
                if timer.poll_timeout(Timeout::Tick, cx).is_ready() {
                    timer.take_tick();
                    rates.check();
                }
                let was_busy = !streams.is_empty();
                while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
                if was_busy && streams.is_empty() && heads.is_empty() {
                    timer.set_deadline(keep_alive);
                }
                if !closing && timer.poll_timeout(Timeout::Deadline, cx).is_ready() {
                    if streams.is_empty() && heads.is_empty() {
                        tracing::debug!(connection_id = %info.id(), "HTTP/3 keep-alive timeout");
                        close.signal().set_end_reason(kite_transport_core::ConnectionEndReason::KeepAliveTimeout);
                        return Poll::Ready(Event::Close);
                    }
                    timer.set_deadline(keep_alive);
                    continue;
                }
                match service.poll_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Event::ServiceFailed(e.into())),
                    Poll::Pending => return Poll::Pending,
                }
                if let Poll::Ready(Some(head)) = heads.poll_next_unpin(cx) {
                    if let Some((request, stream)) = head {
                        // Boxed: the set then moves a pointer, not a future
                        // of kilobytes, in and out of its tasks.
                        streams.push(Box::pin(start(request, stream, &mut service, &info, &mut rates, options)));
                    }
                    continue;
                }
                return accept.as_mut().poll(cx).map(|accepted| Event::Accepted(accepted.map(|r| r.map(Box::new))));
            })
            .await
        };
        match event {
            Event::Close => {
                // GOAWAY: the requests accepted so far finish; accept then
                // ends once they have.
                closing = true;
                signals.set_closing();
                linger = Some(Box::pin(tokio::time::sleep(GOAWAY_LINGER)));
                if let Err(e) = connection.shutdown(1).await {
                    break outcome(e, &info);
                }
            }
            Event::Accepted(Ok(Some(resolver))) => {
                timer.clear_deadline();
                heads.push(Box::pin(read_head(*resolver, info.clone(), options.limits.request_headers_timeout)));
            }
            Event::Drained => {
                closer.close(H3_NO_ERROR, b"");
                break Ok(());
            }
            Event::Accepted(Ok(None)) => {
                // The client's GOAWAY and its last request can end accept
                // in the same poll: the server's GOAWAY still goes back.
                answer_goaway = !closing && signals.goaway_received();
                if answer_goaway {
                    signals.set_closing();
                    answer_goaway = connection.shutdown(1).await.is_ok();
                }
                break Ok(());
            }
            Event::Accepted(Err(e)) => break outcome(e, &info),
            Event::ServiceFailed(e) => {
                tracing::error!(connection_id = %info.id(), error = %e, "service is not ready; closing the connection");
                break Err(Error::Service(e));
            }
        }
    };
    // Requests still answering finish before the connection goes.
    poll_fn(|cx| {
        while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
        if streams.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    if answer_goaway {
        tokio::time::sleep(GOAWAY_LINGER).await;
        closer.close(H3_NO_ERROR, b"");
    }
    result
}

/// A connection error: the client's clean close is a clean end.
fn outcome(error: h3::error::ConnectionError, info: &ConnectionInfo) -> Result<(), Error> {
    if error.is_h3_no_error() {
        return Ok(());
    }
    tracing::debug!(connection_id = %info.id(), %error, "HTTP/3 connection ended with an error");
    Err(Error::Http3(error.into()))
}

type Stream = h3::server::RequestStream<quic::H3Bidi, Bytes>;

/// Reads a request's head within RequestHeadersTimeout (per stream, as in
/// Kestrel); `None` when the stream ended, broke or timed out first.
async fn read_head(
    resolver: Resolver,
    info: ConnectionInfo,
    timeout: std::time::Duration,
) -> Option<(Request<()>, Stream)> {
    let Ok(resolved) = tokio::time::timeout(timeout, resolver.resolve_request()).await else {
        tracing::debug!(
            target: "kite::bad_requests",
            connection_id = %info.id(),
            ?timeout,
            "no HTTP/3 request head before RequestHeadersTimeout; the stream is dropped"
        );
        return None;
    };
    match resolved {
        Ok(resolved) => Some(resolved),
        Err(e) => {
            tracing::debug!(
                target: "kite::bad_requests",
                connection_id = %info.id(),
                error = %e,
                "HTTP/3 request head refused"
            );
            None
        }
    }
}

/// Checks a request's head, calls the service, and returns the future that
/// answers the stream.
fn start<S>(
    request: Request<()>,
    stream: Stream,
    service: &mut S,
    info: &ConnectionInfo,
    rates: &mut StreamRates,
    options: &HttpOptions,
) -> futures_util::future::Either<
    futures_util::future::Either<std::future::Ready<()>, impl Future<Output = ()>>,
    impl Future<Output = ()>,
>
where
    S: HttpService,
{
    use futures_util::future::Either;
    let (mut parts, ()) = request.into_parts();
    let (mut send, mut recv) = stream.split();
    let content_length = match head::checked(&parts.headers) {
        Ok(length) => length,
        Err(why) => {
            // A stream error (RFC 9114 §4.1.2): the stream is reset both ways
            // and the application never sees the request.
            tracing::debug!(
                target: "kite::bad_requests",
                connection_id = %info.id(),
                "malformed HTTP/3 request: {why}; resetting the stream with H3_MESSAGE_ERROR"
            );
            send.stop_stream(h3::error::Code::H3_MESSAGE_ERROR);
            recv.stop_sending(h3::error::Code::H3_MESSAGE_ERROR);
            return Either::Left(Either::Left(std::future::ready(())));
        }
    };
    // h3 bounds the field section itself (Http3Limits).
    if let Some(rejection) = crate::h2::check_head(&parts, options, None, info, "HTTP/3") {
        let mut response = Response::new(());
        *response.status_mut() = rejection.status();
        return Either::Left(Either::Right(async move {
            if send.send_response(response).await.is_ok() {
                let _ = send.finish().await;
            }
            // The request is not read: the client stops sending, told so
            // after the answer (a dropped stream would say code 0).
            recv.stop_sending(h3::error::Code::H3_NO_ERROR);
        }));
    }
    let shared = Shared::new(options.limits.max_request_body_size, content_length);
    parts.extensions.insert(info.clone());
    parts.extensions.insert(MaxRequestBodySize::new(Arc::clone(&shared)));
    let rate = rates.for_stream();
    if let Some((rate, _)) = &rate {
        parts.extensions.insert(MinDataRates::http2(Arc::clone(rate)));
    }
    let extras = Extras { is_head: parts.method == Method::HEAD, server_header: options.add_server_header };
    let parked: Parked = Arc::default();
    let body = RequestBody::h3(H3Body::new(recv, Arc::clone(&parked), Arc::clone(&shared), rate));
    let span = tracing::debug_span!(
        "request",
        connection_id = %info.id(),
        method = %parts.method,
        path = %parts.uri.path(),
        version = "HTTP/3"
    );
    let call = tracing::Instrument::instrument(service.call(Request::from_parts(parts, body)), span);
    Either::Right(async move {
        let mut call = pin!(call);
        let outcome = poll_fn(|cx| match crate::panic::catch(|| call.as_mut().poll(cx)) {
            Ok(polled) => polled.map(|outcome| outcome.map_err(Into::into)),
            Err(panicked) => Poll::Ready(Err(panicked)),
        })
        .await;
        answer(outcome, send, &shared, extras).await;
        stop_parked(&parked);
    })
}
