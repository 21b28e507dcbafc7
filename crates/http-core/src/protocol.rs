//! Choosing the protocol for a connection.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use kite_transport_core::tls::TlsHandshake;
use kite_transport_core::{Connection, ConnectionEndReason, ConnectionIo};
use tokio::io::AsyncWriteExt;

use crate::h1::conn::{H1Connection, Serving, StartStep, Stepped};
use crate::pooling::buffers;
use crate::served::ServedConnection;
use crate::timing::heartbeat::Timeout;
use crate::HttpService;
use crate::{h2, Error, HttpOptions, Protocols};
use kite_transport_core::Rewind;

/// Serves `connection`. The connection is taken apart before the future
/// is made, so the future, which lives as long as the connection, does not
/// also keep room for the connection and its context.
///
/// The protocol is chosen in a boxed future (which goes on to serve
/// HTTP/2 itself); an HTTP/1.x connection then leaves that box and is
/// served by [`Serving`], so what an idle HTTP/1.x connection holds is its
/// fields and a few flags.
pub(crate) fn serve<S>(
    connection: Connection,
    service: S,
    options: &HttpOptions,
) -> impl Future<Output = Result<(), Error>> + use<'_, S>
where
    S: HttpService,
{
    let (io, context) = connection.into_parts();
    let alpn = context.features().get::<TlsHandshake>().map(|tls| tls.alpn.as_deref() == Some(b"h2"));
    Serve::Choosing(Box::pin(choose(io, alpn, ServedConnection::new(context, options), service)))
}

/// A connection being served: first the protocol is chosen (and HTTP/2
/// served) in a box, then HTTP/1.x runs unboxed.
enum Serve<'o, S, C, M: StartStep<'o, S>> {
    Choosing(Pin<Box<C>>),
    Http1(Serving<'o, S, M>),
}

impl<'o, S, C, M: StartStep<'o, S>> Unpin for Serve<'o, S, C, M> {}

impl<'o, S, C, M> Future for Serve<'o, S, C, M>
where
    S: HttpService,
    C: Future<Output = Result<Chosen<'o, S, M>, Error>>,
    M: StartStep<'o, S>,
{
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match this {
                Serve::Choosing(choosing) => match ready!(choosing.as_mut().poll(cx)) {
                    Ok(Chosen::Http1(serving)) => *this = Serve::Http1(serving),
                    Ok(Chosen::Done) => return Poll::Ready(Ok(())),
                    Err(e) => return Poll::Ready(Err(e)),
                },
                Serve::Http1(serving) => return Pin::new(serving).poll(cx),
            }
        }
    }
}

/// What choosing the protocol left to do.
enum Chosen<'o, S, M: StartStep<'o, S>> {
    /// Serve HTTP/1.x.
    Http1(Serving<'o, S, M>),
    /// The connection was served (HTTP/2) or refused.
    Done,
}

/// Chooses the protocol (and serves HTTP/2); a failure records its reason
/// on the connection's close signal.
async fn choose<'o, S>(
    io: Box<dyn ConnectionIo>,
    alpn: Option<bool>,
    conn: ServedConnection<'o>,
    service: S,
) -> Result<Chosen<'o, S, impl StartStep<'o, S, Future = impl Future<Output = Stepped<'o, S>>>>, Error>
where
    S: HttpService,
{
    let close = conn.close.clone();
    let chosen = choose_and_serve_h2(io, alpn, conn, service).await;
    if let Err(e) = &chosen {
        close.set_end_reason(e.end_reason());
    }
    chosen
}

async fn choose_and_serve_h2<'o, S>(
    mut io: Box<dyn ConnectionIo>,
    alpn: Option<bool>,
    conn: ServedConnection<'o>,
    service: S,
) -> Result<Chosen<'o, S, impl StartStep<'o, S, Future = impl Future<Output = Stepped<'o, S>>>>, Error>
where
    S: HttpService,
{
    let options = conn.options;
    match (alpn, options.protocols) {
        // Over TLS, ALPN alone decides; prior knowledge means HTTP/2 only.
        (Some(true), _) | (None, Protocols::Http2) => {
            let Some(first) = first_bytes(&mut io, &conn).await? else {
                return Ok(Chosen::Done);
            };
            if !first.starts_with(h2::PREFACE) {
                // Never an HTTP/1.1 400 on an HTTP/2-only connection.
                tracing::debug!(connection_id = %conn.info.id(), "invalid HTTP/2 preface; GOAWAY(PROTOCOL_ERROR)");
                conn.close.set_end_reason(ConnectionEndReason::ProtocolError);
                io.write_all(h2::PROTOCOL_ERROR).await?;
                let _ = io.shutdown().await;
                return Ok(Chosen::Done);
            }
            let io = Rewind::new(first.freeze(), io);
            h2::serve(io, conn, service).await.map(|()| Chosen::Done)
        }
        (Some(false), _) => {
            let connection = H1Connection::new(io, BytesMut::new(), conn, service);
            Ok(Chosen::Http1(connection.serve()))
        }
        (None, protocols) => {
            let Some(first) = first_bytes(&mut io, &conn).await? else {
                return Ok(Chosen::Done);
            };
            let h2_line = first.starts_with(h2::PREFACE_REQUEST_LINE);
            if h2_line && !first.starts_with(h2::PREFACE) && protocols.http2() {
                // The preface's request line with anything but its end: an
                // HTTP/2 client's broken preface (RFC 9113 §3.4), not an
                // HTTP/1.1 request.
                tracing::debug!(connection_id = %conn.info.id(), "invalid HTTP/2 preface; GOAWAY(PROTOCOL_ERROR)");
                conn.close.set_end_reason(ConnectionEndReason::ProtocolError);
                io.write_all(h2::PROTOCOL_ERROR).await?;
                let _ = io.shutdown().await;
                return Ok(Chosen::Done);
            }
            if !first.starts_with(h2::PREFACE) {
                let connection = H1Connection::new(io, first, conn, service);
                return Ok(Chosen::Http1(connection.serve()));
            }
            if protocols.http2() {
                let io = Rewind::new(first.freeze(), io);
                return h2::serve(io, conn, service).await.map(|()| Chosen::Done);
            }
            tracing::debug!(connection_id = %conn.info.id(), "HTTP/2 preface on an HTTP/1.x endpoint; GOAWAY(HTTP_1_1_REQUIRED)");
            io.write_all(h2::HTTP_1_1_REQUIRED).await?;
            let _ = io.shutdown().await;
            Ok(Chosen::Done)
        }
    }
}

/// The connection's first bytes, enough to tell the HTTP/2 preface from
/// anything else; `None` when nothing came before RequestHeadersTimeout.
async fn first_bytes(io: &mut Box<dyn ConnectionIo>, conn: &ServedConnection<'_>) -> Result<Option<BytesMut>, Error> {
    let ServedConnection { info, timer, options, .. } = conn;
    timer.set_deadline(options.limits.request_headers_timeout);
    let mut sniffing = pin!(sniff(io));
    let sniffed = poll_fn(|cx| {
        if let Poll::Ready(result) = sniffing.as_mut().poll(cx) {
            return Poll::Ready(Some(result));
        }
        timer.poll_timeout(Timeout::Deadline, cx).map(|()| None)
    })
    .await;
    match sniffed {
        Some(Ok(first)) => Ok(Some(first)),
        Some(Err(e)) => Err(Error::Io(e)),
        None => {
            tracing::debug!(connection_id = %info.id(), "no request before RequestHeadersTimeout");
            conn.close.set_end_reason(ConnectionEndReason::RequestHeadersTimeout);
            Ok(None)
        }
    }
}

/// Reads until the first bytes tell HTTP/2's preface from anything else,
/// which is usually the first read. An idle connection waits for data
/// before it takes a buffer.
async fn sniff(io: &mut Box<dyn ConnectionIo>) -> std::io::Result<BytesMut> {
    let mut buf = BytesMut::new();
    loop {
        let undecided = buf.len() < h2::PREFACE.len() && h2::PREFACE.starts_with(&buf);
        if !undecided {
            return Ok(buf);
        }
        poll_fn(|cx| io.poll_read_ready(cx)).await?;
        if buf.capacity() == 0 {
            buf = buffers::take_read();
        }
        let read = poll_fn(|cx| buffers::poll_read_into(io, &mut buf, cx)).await?;
        if read == 0 {
            return Ok(buf);
        }
    }
}
