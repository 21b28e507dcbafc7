//! HTTP/2 on the h2 crate: Kestrel's HTTP/2 limits, the same application
//! contract as HTTP/1.1, trailers both ways, and graceful GOAWAY.

pub(crate) mod body;
mod drain;
mod ping;
pub(crate) mod reset;
pub(crate) mod respond;

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use h2::ext::Protocol;
use h2::server::SendResponse;
use h2::Reason;
use http::header::CONTENT_LENGTH;
use http::{Method, Request, Response};

use self::body::H2Body;
use self::ping::{KeepAlivePing, Nudge, Pings};
use self::reset::StreamReset;
use self::respond::answer;
use crate::body::shared::Shared;
use crate::served::ServedConnection;
use crate::timing::heartbeat::Timeout;
use crate::timing::stream_rates::StreamRates;
use crate::upgrade::h2_tunnel::Switch;
use crate::upgrade::OnUpgrade;
use crate::HttpService;
use crate::{
    BoxError, ConnectionInfo, Error, HttpOptions, MaxRequestBodySize, MinDataRates, RequestBody, RequestRejection,
};
use kite_transport_core::ConnectionEndReason;
use kite_transport_core::Rewind;

/// The HTTP/2 connection preface a client sends first.
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The preface's first line, which no HTTP/1.x request starts with.
pub(crate) const PREFACE_REQUEST_LINE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// An empty SETTINGS frame and GOAWAY(HTTP_1_1_REQUIRED): the answer to an
/// HTTP/2 preface on an endpoint that speaks HTTP/1.x only.
pub(crate) const HTTP_1_1_REQUIRED: &[u8] =
    &[0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0d];

/// An empty SETTINGS frame and GOAWAY(PROTOCOL_ERROR): the answer to a
/// connection that must speak HTTP/2 but did not start with the preface.
pub(crate) const PROTOCOL_ERROR: &[u8] =
    &[0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01];

enum Event {
    Close,
    PingTimeout,
    Done,
    Failed(h2::Error),
    ServiceFailed(BoxError),
}

/// Serves HTTP/2 on `io` (the connection with the bytes sniffed from it
/// put back) until the client or the server ends it.
pub(crate) async fn serve<S>(mut io: Rewind, conn: ServedConnection<'_>, mut service: S) -> Result<(), Error>
where
    S: HttpService,
{
    let ServedConnection { info, close, timer, options } = conn;
    let limits = &options.http2;
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(limits.max_streams_per_connection)
        .header_table_size(limits.header_table_size)
        .max_frame_size(limits.max_frame_size)
        .initial_window_size(limits.initial_stream_window_size)
        .initial_connection_window_size(limits.initial_connection_window_size)
        .max_header_list_size(u32::try_from(options.limits.max_request_headers_total_size).unwrap_or(u32::MAX))
        .enable_connect_protocol();
    // The keep-alive pinger counts reads through the same layer.
    let reads = limits.keep_alive_ping_delay.map(|_| io.count_reads());
    timer.set_deadline(options.limits.request_headers_timeout);
    let mut handshake = pin!(builder.handshake::<_, Bytes>(io));
    let handshake = poll_fn(|cx| {
        if let Poll::Ready(result) = handshake.as_mut().poll(cx) {
            return Poll::Ready(Some(result));
        }
        timer.poll_timeout(Timeout::Deadline, cx).map(|()| None)
    });
    let mut connection = match handshake.await {
        Some(Ok(connection)) => connection,
        Some(Err(e)) => {
            tracing::debug!(connection_id = %info.id(), error = %e, "HTTP/2 connection preface failed");
            return Err(Error::Http2(e.into()));
        }
        None => {
            tracing::debug!(connection_id = %info.id(), "no HTTP/2 preface before RequestHeadersTimeout");
            close.set_end_reason(ConnectionEndReason::RequestHeadersTimeout);
            return Ok(());
        }
    };

    let mut ping = match (reads, limits.keep_alive_ping_delay, connection.ping_pong()) {
        (Some(reads), Some(delay), Some(ping_pong)) => {
            Pings::KeepAlive(KeepAlivePing::new(ping_pong, reads, delay, limits.keep_alive_ping_timeout))
        }
        (_, _, Some(ping_pong)) => Pings::Nudge(Nudge::new(ping_pong)),
        _ => Pings::None,
    };
    let mut rates = StreamRates::new(options.limits.min_request_body_data_rate, timer.clock());
    timer.want_ticks(rates.enabled());
    let mut streams = FuturesUnordered::new();
    // One clone per live extended-CONNECT tunnel.
    let tunnels = Arc::new(());
    let mut closing = false;
    let mut close = close.watch();
    let keep_alive = options.limits.keep_alive_timeout;
    timer.set_deadline(keep_alive);
    loop {
        let event = poll_fn(|cx| loop {
            if !closing && close.poll_requested(cx).is_ready() {
                return Poll::Ready(Event::Close);
            }
            if ping.poll_expired(cx).is_ready() {
                return Poll::Ready(Event::PingTimeout);
            }
            // Each beat, the streams' body rates are checked.
            if timer.poll_timeout(Timeout::Tick, cx).is_ready() {
                timer.take_tick();
                rates.check();
            }
            // Accept every stream that is ready, then run them all.
            let mut accepted = false;
            loop {
                match service.poll_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Event::ServiceFailed(e.into())),
                    Poll::Pending => break,
                }
                match connection.poll_accept(cx) {
                    Poll::Ready(Some(Ok((request, respond)))) => {
                        if let Some(stream) =
                            start_stream(request, respond, &mut service, &info, &tunnels, &mut rates, options)
                        {
                            streams.push(stream);
                            accepted = true;
                        }
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Event::Failed(e)),
                    Poll::Ready(None) => return Poll::Ready(Event::Done),
                    Poll::Pending => break,
                }
            }
            let was_busy = !streams.is_empty();
            while let Poll::Ready(Some(ended)) = streams.poll_next_unpin(cx) {
                if ended == StreamEnd::Drained {
                    ping.nudge();
                }
            }
            if was_busy && streams.is_empty() {
                // The keep-alive timeout counts from the last stream's end.
                timer.set_deadline(keep_alive);
            }
            if !closing && timer.poll_timeout(Timeout::Deadline, cx).is_ready() {
                if streams.is_empty() && Arc::strong_count(&tunnels) == 1 {
                    tracing::debug!(connection_id = %info.id(), "HTTP/2 keep-alive timeout");
                    close.signal().set_end_reason(ConnectionEndReason::KeepAliveTimeout);
                    return Poll::Ready(Event::Close);
                }
                // Streams or upgraded streams are open: not idle; look again later.
                timer.set_deadline(keep_alive);
                continue;
            }
            if !accepted {
                return Poll::Pending;
            }
        })
        .await;
        match event {
            Event::Close => {
                // GOAWAY; streams in flight finish, then accept ends.
                connection.graceful_shutdown();
                closing = true;
            }
            Event::PingTimeout => {
                tracing::debug!(connection_id = %info.id(), "HTTP/2 keep-alive PING unanswered; closing the connection");
                close.signal().set_end_reason(ConnectionEndReason::KeepAliveTimeout);
                return Ok(());
            }
            Event::Done => return Ok(()),
            Event::Failed(e) if e.is_io() => {
                return Err(Error::Io(e.into_io().unwrap_or_else(|| std::io::ErrorKind::Other.into())))
            }
            Event::Failed(e) => {
                tracing::debug!(connection_id = %info.id(), error = %e, "HTTP/2 connection error");
                return Err(Error::Http2(e.into()));
            }
            Event::ServiceFailed(e) => {
                tracing::error!(connection_id = %info.id(), error = %e, "service is not ready; closing the connection");
                connection.abrupt_shutdown(Reason::INTERNAL_ERROR);
                return Err(Error::Service(e));
            }
        }
    }
}

/// How a stream's future ended.
#[derive(PartialEq, Eq)]
enum StreamEnd {
    /// Answered, reset or cancelled.
    Done,
    /// Answered, then a body the application left unread was drained to
    /// its end: the client is sent a PING so that it reads again.
    Drained,
}

/// Checks a stream's head, builds the request and calls the service; the
/// future answers the stream. `None` when the head was refused.
fn start_stream<S>(
    request: Request<h2::RecvStream>,
    mut respond: SendResponse<Bytes>,
    service: &mut S,
    info: &ConnectionInfo,
    tunnels: &Arc<()>,
    rates: &mut StreamRates,
    options: &HttpOptions,
) -> Option<impl Future<Output = StreamEnd>>
where
    S: HttpService,
{
    let (mut parts, recv) = request.into_parts();
    let max_field = Some(options.http2.max_request_header_field_size as usize);
    if let Some(rejection) = check_head(&parts, options, max_field, info, "HTTP/2") {
        let mut response = Response::new(());
        *response.status_mut() = rejection.status();
        let _ = respond.send_response(response, true);
        return None;
    }
    let content_length =
        parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let shared = Shared::new(options.limits.max_request_body_size, content_length);
    if recv.is_end_stream() {
        shared.finish(None);
    }
    parts.extensions.insert(info.clone());
    parts.extensions.insert(MaxRequestBodySize::new(Arc::clone(&shared)));
    let reset = StreamReset::new(Arc::clone(&shared));
    parts.extensions.insert(reset.clone());
    let is_head = parts.method == Method::HEAD;
    // An extended CONNECT (RFC 8441) keeps its DATA frames for the tunnel.
    let (body, mut tunnel) = if parts.method == Method::CONNECT && parts.extensions.get::<Protocol>().is_some() {
        shared.finish(None);
        let (on_upgrade, pending) = OnUpgrade::pending();
        parts.extensions.insert(on_upgrade);
        (RequestBody::empty(), Some(Switch::new(pending, recv, info, Arc::clone(tunnels), options)))
    } else {
        // A body still to come gets its MinRequestBodyDataRate, which the
        // request may only turn off.
        let rate = if recv.is_end_stream() { None } else { rates.for_stream() };
        if let Some((rate, _)) = &rate {
            parts.extensions.insert(MinDataRates::http2(Arc::clone(rate)));
        }
        (RequestBody::h2(H2Body::new(recv, Arc::clone(&shared), rate)), None)
    };
    let span =
        tracing::debug_span!("request", connection_id = %info.id(), method = %parts.method, path = %parts.uri.path());
    let call = tracing::Instrument::instrument(service.call(Request::from_parts(parts, body)), span);
    let server_header = options.add_server_header;
    let drain_bound = (options.http2.max_request_drain_size, options.http2.request_drain_timeout);
    Some(async move {
        let mut call = pin!(call);
        // The service sees a client's reset as a body error if it is
        // reading; if it is still running after one, it is cancelled.
        let outcome = poll_fn(|cx| {
            let polled = match crate::panic::catch(|| call.as_mut().poll(cx)) {
                Ok(polled) => polled.map(|outcome| outcome.map_err(Into::into)),
                Err(panicked) => Poll::Ready(Err(panicked)),
            };
            if let Poll::Ready(outcome) = polled {
                // A reset asked for while answering wins over the answer.
                return Poll::Ready(reset.requested().map_or(Ok(outcome), |c| Err(Some(c))));
            }
            if let Poll::Ready(code) = reset.poll_requested(cx) {
                return Poll::Ready(Err(Some(code)));
            }
            respond.poll_reset(cx).map(|_| Err(None))
        })
        .await;
        match outcome {
            Ok(Ok(response)) if tunnel.is_some() && response.status().is_success() => {
                if let Some(tunnel) = tunnel.take() {
                    tunnel.switch(response, respond, server_header);
                }
                StreamEnd::Done
            }
            Ok(outcome) => {
                answer(outcome, respond, &shared, &reset, is_head, server_header).await;
                // A reset the application asked for leaves nothing to drain.
                let drained = reset.requested().is_none() && drain::drain(&shared, drain_bound.0, drain_bound.1).await;
                if drained {
                    StreamEnd::Drained
                } else {
                    StreamEnd::Done
                }
            }
            Err(Some(code)) => {
                tracing::debug!(code, "the application reset the stream");
                respond.send_reset(Reason::from(code));
                StreamEnd::Done
            }
            Err(None) => {
                tracing::debug!("the client reset the stream; the request is cancelled");
                StreamEnd::Done
            }
        }
    })
}

/// Kestrel's head limits on HTTP/2 and HTTP/3: the pseudo-headers against
/// the request line limit, the header count, and each field against
/// `max_field` where the protocol has one (HTTP/2's
/// MaxRequestHeaderFieldSize; h3 bounds HTTP/3's field section itself).
/// A refusal is logged here, under `kite::bad_requests`.
pub(crate) fn check_head(
    parts: &http::request::Parts,
    options: &HttpOptions,
    max_field: Option<usize>,
    info: &ConnectionInfo,
    protocol: &str,
) -> Option<RequestRejection> {
    let line = parts.method.as_str().len() + parts.uri.path_and_query().map_or(1, |p| p.as_str().len());
    let rejection = if line > options.limits.max_request_line_size {
        RequestRejection::RequestLineTooLong
    } else if parts.headers.len() > options.limits.max_request_header_count {
        RequestRejection::TooManyHeaders
    } else if max_field.is_some_and(|max| parts.headers.iter().any(|(n, v)| n.as_str().len() + v.len() > max)) {
        RequestRejection::HeadersExceedMaxTotalSize
    } else {
        return None;
    };
    rejection.log(info, protocol);
    Some(rejection)
}
