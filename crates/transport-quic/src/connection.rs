//! A quinn connection as Kite's [`MultiplexedIo`]: accepting and opening
//! streams through futures held between polls.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use kite_transport_core::multiplexed::{BidiStream, MultiplexedIo, RecvStream, SendStream, StreamOpener};
use kite_transport_core::tls::{TlsHandshake, TlsVersion};
use kite_transport_core::{ConnectionContext, ConnectionId, Endpoint, MultiplexedConnection};

use crate::stream::{connection_error, QuicRecv, QuicSend};

type Pending<T> = Option<Pin<Box<dyn Future<Output = Result<T, quinn::ConnectionError>> + Send + Sync>>>;

/// The opening side of a connection; cloned for HTTP/3's own streams.
struct Opener {
    connection: quinn::Connection,
    open_bidi: Pending<(quinn::SendStream, quinn::RecvStream)>,
    open_uni: Pending<quinn::SendStream>,
}

/// A connection's streams.
struct QuicIo {
    opener: Opener,
    accept_bidi: Pending<(quinn::SendStream, quinn::RecvStream)>,
    accept_uni: Pending<quinn::RecvStream>,
}

/// Polls the future in `slot`, making it with `make` when there is none.
fn poll_slot<T>(
    slot: &mut Pending<T>,
    cx: &mut Context<'_>,
    make: impl FnOnce() -> Pin<Box<dyn Future<Output = Result<T, quinn::ConnectionError>> + Send + Sync>>,
) -> Poll<io::Result<T>> {
    let future = slot.get_or_insert_with(make);
    let result = std::task::ready!(future.as_mut().poll(cx));
    *slot = None;
    Poll::Ready(result.map_err(|e| connection_error(&e).into()))
}

fn bidi((send, recv): (quinn::SendStream, quinn::RecvStream)) -> BidiStream {
    BidiStream::new(Box::new(QuicSend::new(send)), Box::new(QuicRecv(recv)))
}

impl StreamOpener for Opener {
    fn poll_open_bidi(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<BidiStream>> {
        let connection = self.connection.clone();
        poll_slot(&mut self.open_bidi, cx, move || Box::pin(async move { connection.open_bi().await })).map_ok(bidi)
    }

    fn poll_open_uni(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Box<dyn SendStream>>> {
        let connection = self.connection.clone();
        poll_slot(&mut self.open_uni, cx, move || Box::pin(async move { connection.open_uni().await }))
            .map_ok(|send| Box::new(QuicSend::new(send)) as Box<dyn SendStream>)
    }

    fn close(&mut self, code: u64, reason: &[u8]) {
        self.connection.close(quinn::VarInt::from_u64(code).unwrap_or(quinn::VarInt::MAX), reason);
    }

    fn clone_opener(&self) -> Box<dyn StreamOpener> {
        Box::new(Opener { connection: self.connection.clone(), open_bidi: None, open_uni: None })
    }
}

impl StreamOpener for QuicIo {
    fn poll_open_bidi(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<BidiStream>> {
        self.opener.poll_open_bidi(cx)
    }

    fn poll_open_uni(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Box<dyn SendStream>>> {
        self.opener.poll_open_uni(cx)
    }

    fn close(&mut self, code: u64, reason: &[u8]) {
        self.opener.close(code, reason);
    }

    fn clone_opener(&self) -> Box<dyn StreamOpener> {
        self.opener.clone_opener()
    }
}

impl MultiplexedIo for QuicIo {
    fn poll_accept_bidi(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<BidiStream>> {
        let connection = self.opener.connection.clone();
        poll_slot(&mut self.accept_bidi, cx, move || Box::pin(async move { connection.accept_bi().await })).map_ok(bidi)
    }

    fn poll_accept_uni(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Box<dyn RecvStream>>> {
        let connection = self.opener.connection.clone();
        poll_slot(&mut self.accept_uni, cx, move || Box::pin(async move { connection.accept_uni().await }))
            .map_ok(|recv| Box::new(QuicRecv(recv)) as Box<dyn RecvStream>)
    }
}

/// A connection whose handshake is done, with its context: addresses,
/// the handshake (TLS 1.3, SNI, ALPN, client certificates).
pub(crate) fn accepted(connection: quinn::Connection, local: SocketAddr) -> MultiplexedConnection {
    let remote = connection.remote_address();
    let local = match connection.local_ip() {
        Some(ip) => SocketAddr::new(ip, local.port()),
        None => local,
    };
    let mut context = ConnectionContext::new(ConnectionId::next(), Endpoint::Tcp(local), Endpoint::Tcp(remote), "quic");
    let data = connection.handshake_data().and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok());
    let peer_certificates = connection
        .peer_identity()
        .and_then(|identity| identity.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>().ok())
        .map(|certs| certs.iter().map(|c| c.to_vec()).collect())
        .unwrap_or_default();
    context.features_mut().insert(TlsHandshake {
        version: TlsVersion::Tls13,
        cipher_suite: String::from("TLS13 (QUIC)"),
        sni: data.as_ref().and_then(|d| d.server_name.clone()),
        alpn: data.and_then(|d| d.protocol),
        peer_certificates,
    });
    let io =
        QuicIo { opener: Opener { connection, open_bidi: None, open_uni: None }, accept_bidi: None, accept_uni: None };
    MultiplexedConnection::new(Box::new(io), context)
}
