//! The decrypted stream the TLS middleware passes on.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use kite_transport_core::ConnectionIo;
use rustls::server::UnbufferedServerConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::session::{Reached, Session, Then};

/// A connection's plaintext side after the TLS handshake.
///
/// Records are read into, and encrypted into, buffers the stream holds only
/// while bytes are in flight: an idle TLS connection keeps rustls's state
/// and no record buffer. A write encrypts and sends at once; what the
/// socket does not take goes out before the next write, or at flush.
pub struct TlsIo {
    io: Box<dyn ConnectionIo>,
    session: Session,
    /// The socket reached its end.
    eof: bool,
}

impl TlsIo {
    pub(super) fn new(io: Box<dyn ConnectionIo>, session: Session) -> Self {
        Self { io, session, eof: false }
    }

    /// The rustls connection, for anything the handshake feature leaves out.
    pub fn connection(&self) -> &UnbufferedServerConnection {
        &self.session.conn
    }

    /// Sends the records waiting in the outgoing buffer.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.session.outgoing.poll_write_to(&mut *self.io, cx)
    }

    /// Sends what rustls has to say about `error` (an alert) if the socket
    /// takes it at once, and turns the error into an IO error.
    fn fail(&mut self, cx: &mut Context<'_>, error: rustls::Error) -> io::Error {
        self.session.encode_alert();
        let _ = self.poll_send(cx);
        io::Error::new(io::ErrorKind::InvalidData, error)
    }

    /// The outcome of an encryption.
    fn written(&mut self, cx: &mut Context<'_>, reached: Result<Reached, rustls::Error>) -> Poll<io::Result<usize>> {
        let written = match reached {
            Ok(Reached::Traffic(n)) => n,
            Ok(_) => {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "the TLS connection is closed")))
            }
            Err(error) => return Poll::Ready(Err(self.fail(cx, error))),
        };
        // Send now; what the socket does not take waits for the next write.
        if let Poll::Ready(Err(error)) = self.poll_send(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(written))
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.session.take_plain(buf) || this.session.peer_closed {
                return Poll::Ready(Ok(()));
            }
            if !this.session.incoming.is_empty() {
                let before = buf.filled().len();
                if let Err(error) = this.session.process(Some(buf), Then::Nothing) {
                    return Poll::Ready(Err(this.fail(cx, error)));
                }
                // rustls's answers while reading (a key update) go out now.
                if let Poll::Ready(Err(error)) = this.poll_send(cx) {
                    return Poll::Ready(Err(error));
                }
                if buf.filled().len() > before || this.session.has_plain() || this.session.peer_closed {
                    return Poll::Ready(Ok(()));
                }
            }
            if this.eof {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection without sending TLS close_notify",
                )));
            }
            let mut read = ReadBuf::new(this.session.incoming.spare(4096));
            match Pin::new(&mut *this.io).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    this.eof = n == 0;
                    this.session.incoming.fill(n);
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => {
                    this.session.release();
                    return Poll::Pending;
                }
            }
        }
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // One batch of records at a time: those still unsent go first.
        ready!(this.poll_send(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let reached = this.session.process(None, Then::Encrypt(data));
        this.written(cx, reached)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        let reached = this.session.encrypt_vectored(bufs);
        this.written(cx, reached)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut *this.io).poll_flush(cx)
    }

    /// Sends close_notify, then shuts the socket's write side.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.session.close_queued {
            this.session.close_queued = true;
            if let Err(error) = this.session.process(None, Then::CloseNotify) {
                tracing::debug!(%error, "could not send TLS close_notify");
            }
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut *this.io).poll_shutdown(cx)
    }
}

impl ConnectionIo for TlsIo {
    /// Ready when plaintext, records or the peer's close wait, otherwise
    /// when the socket below is; an idle connection gives its buffers back
    /// first.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.session.has_plain() || self.session.peer_closed || self.eof || !self.session.incoming.is_empty() {
            return Poll::Ready(Ok(()));
        }
        self.session.release();
        self.io.poll_read_ready(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Arc;
    use std::task::Waker;
    use std::time::Duration;

    use kite_transport_core::PlainIo;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A TLS stream over an in-memory pipe, and the client's end.
    async fn pair() -> (TlsIo, tokio_rustls::client::TlsStream<tokio::io::DuplexStream>) {
        let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let der = CertificateDer::from(issued.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(issued.signing_key.serialize_der()));
        let provider = crate::tls::provider();
        let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let (near, far) = tokio::io::duplex(64 * 1024);
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let (accepted, connected) = tokio::join!(
            super::super::accept::accept(Box::new(PlainIo(far)), |sni, _| {
                assert_eq!(sni, Some("localhost"));
                Ok(Arc::new(server))
            }),
            connector.connect(ServerName::try_from("localhost").unwrap(), near),
        );
        (accepted.unwrap().0, connected.unwrap())
    }

    /// Fails, rather than hangs, a test whose exchange stalls.
    async fn bounded<F: Future>(test: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(20), test).await.expect("the exchange stalled")
    }

    #[tokio::test]
    async fn records_larger_than_reads_both_ways_then_idle_without_buffers_then_close_notify() {
        bounded(exchange_then_idle_then_close()).await;
    }

    async fn exchange_then_idle_then_close() {
        let (mut server, mut client) = pair().await;
        let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();

        // 16 KiB records, read 1,000 bytes at a time: the rest waits.
        let (_, received) = tokio::join!(
            async {
                client.write_all(&sent).await.unwrap();
                client.flush().await.unwrap();
            },
            async {
                let mut received = Vec::new();
                let mut chunk = [0u8; 1000];
                while received.len() < sent.len() {
                    let n = server.read(&mut chunk).await.unwrap();
                    assert!(n > 0);
                    received.extend_from_slice(&chunk[..n]);
                }
                received
            }
        );
        assert_eq!(received, sent);

        // A vectored write joins a short header and its body.
        let header = b"header:";
        let (_, echoed) = tokio::join!(
            async {
                let mut at = 0;
                let total = header.len() + sent.len();
                while at < total {
                    let bufs = if at < header.len() {
                        vec![IoSlice::new(&header[at..]), IoSlice::new(&sent)]
                    } else {
                        vec![IoSlice::new(&sent[at - header.len()..])]
                    };
                    at += server.write_vectored(&bufs).await.unwrap();
                }
                server.flush().await.unwrap();
            },
            async {
                let mut echoed = vec![0u8; header.len() + sent.len()];
                client.read_exact(&mut echoed).await.unwrap();
                echoed
            }
        );
        assert_eq!(&echoed[..header.len()], header);
        assert_eq!(&echoed[header.len()..], &sent[..]);

        // Nothing in flight: a read waits, and the stream holds no buffer.
        let mut chunk = [0u8; 16];
        let mut read = ReadBuf::new(&mut chunk);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut server).poll_read(&mut cx, &mut read).is_pending());
        assert!(!server.session.holds_buffers(), "an idle TLS stream gives its record buffers back");

        // close_notify ends each side's reads cleanly.
        client.shutdown().await.unwrap();
        assert_eq!(server.read(&mut chunk).await.unwrap(), 0);
        server.shutdown().await.unwrap();
        assert_eq!(client.read(&mut chunk).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn an_end_without_close_notify_is_an_unexpected_eof() {
        let (mut server, client) = bounded(pair()).await;
        drop(client);
        let error = bounded(server.read(&mut [0u8; 16])).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn garbage_instead_of_a_record_is_refused_with_an_alert() {
        let (mut server, client) = bounded(pair()).await;
        let mut raw = client.into_inner().0;
        raw.write_all(&[0x17, 0x03, 0x03, 0x00, 0x20]).await.unwrap();
        raw.write_all(&[0u8; 32]).await.unwrap();
        let error = bounded(server.read(&mut [0u8; 16])).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        // The alert record reached the peer.
        let mut alert = [0u8; 5];
        bounded(raw.read_exact(&mut alert)).await.unwrap();
        assert_eq!(alert[0], 0x17, "an encrypted alert (TLS 1.3 hides its type)");
    }
}
