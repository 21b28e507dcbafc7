//! The server side of a TLS handshake, on rustls's unbuffered connection.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use kite_transport_core::ConnectionIo;
use rustls::pki_types::ServerName;
use rustls::server::UnbufferedServerConnection;
use rustls::ServerConfig;
use tokio::io::ReadBuf;

use super::buffer::Buffer;
use super::session::{Reached, Session, Then};
use super::TlsIo;
use crate::client_hello::{scan, Scan};
use crate::HandshakeError;

/// The most bytes a handshake may hold unprocessed: a 64 KiB handshake
/// message (rustls's bound) and a record past it.
const MAX_PENDING: usize = 64 * 1024 + super::buffer::RECORD;

/// Reads the ClientHello, asks `config` for the server config that fits
/// its server name (SNI, lower-cased, `None` if absent or not a DNS name)
/// and whether it offers only ALPN `acme-tls/1` (a TLS-ALPN-01
/// validation), and runs the handshake to its end. Returns the stream and
/// the SNI.
///
/// # Errors
///
/// The peer closed or sent something rustls refused (after rustls's alert
/// is sent), the connection failed, or `config` refused.
pub(super) async fn accept(
    mut io: Box<dyn ConnectionIo>,
    config: impl FnOnce(Option<&str>, bool) -> Result<Arc<ServerConfig>, HandshakeError>,
) -> Result<(TlsIo, Option<String>), HandshakeError> {
    let mut incoming = Buffer::default();
    let (sni, acme_tls) = loop {
        match scan(incoming.filled()) {
            Ok(Scan::More) => read(&mut io, &mut incoming).await?,
            Ok(Scan::Hello(hello)) => {
                let acme_tls = hello.alpn() == [b"acme-tls/1".to_vec()];
                break (hello.server_name().and_then(normalise), acme_tls);
            }
            // Not a ClientHello rustls would take: it says why, below.
            Ok(Scan::NotTls) | Err(_) => break (None, false),
        }
    };
    let config = config(sni.as_deref(), acme_tls)?;
    let conn = UnbufferedServerConnection::new(config)?;
    let mut session = Session::new(conn, incoming);
    loop {
        let reached = session.process(None, Then::Nothing);
        if let Err(error) = reached {
            session.encode_alert();
            let _ = poll_fn(|cx| send(&mut io, &mut session.outgoing, cx)).await;
            return Err(error.into());
        }
        poll_fn(|cx| send(&mut io, &mut session.outgoing, cx)).await?;
        match reached {
            Ok(Reached::Traffic(_)) if !session.conn.is_handshaking() => break,
            Ok(Reached::Closed) => return Err(HandshakeError::PeerClosed),
            _ => read(&mut io, &mut session.incoming).await?,
        }
    }
    Ok((TlsIo::new(io, session), sni))
}

/// A server name as rustls matches it: a DNS name, lower-cased.
fn normalise(name: String) -> Option<String> {
    match ServerName::try_from(name.as_str()) {
        Ok(ServerName::DnsName(dns)) => Some(dns.to_lowercase_owned().as_ref().to_owned()),
        _ => None,
    }
}

/// Reads what the socket has into `incoming`.
async fn read(io: &mut Box<dyn ConnectionIo>, incoming: &mut Buffer) -> Result<(), HandshakeError> {
    if incoming.filled().len() >= MAX_PENDING {
        return Err(HandshakeError::TooLarge(MAX_PENDING));
    }
    let n = poll_fn(|cx| {
        // While the peer thinks, an emptied buffer goes back to the pool.
        if incoming.is_empty() {
            incoming.release();
            ready!(io.poll_read_ready(cx))?;
        }
        let mut read = ReadBuf::new(incoming.spare(4096));
        ready!(Pin::new(&mut **io).poll_read(cx, &mut read))?;
        Poll::Ready(Ok::<_, io::Error>(read.filled().len()))
    })
    .await?;
    if n == 0 {
        return Err(HandshakeError::PeerClosed);
    }
    incoming.fill(n);
    Ok(())
}

/// Writes all of `outgoing`, then flushes.
fn send(io: &mut Box<dyn ConnectionIo>, outgoing: &mut Buffer, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    ready!(outgoing.poll_write_to(&mut **io, cx))?;
    Pin::new(&mut **io).poll_flush(cx)
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn server_names_match_as_rustls_matches_them() {
        assert_eq!(normalise("Example.COM".into()).as_deref(), Some("example.com"));
        assert_eq!(normalise("127.0.0.1".into()), None, "an IP address is not a server name");
        assert_eq!(normalise("bad name".into()), None);
    }
}
