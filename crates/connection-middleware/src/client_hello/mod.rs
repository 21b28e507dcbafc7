//! A ClientHello listener (.NET 10's `UseTlsClientHelloListener`): before
//! TLS, it reads the raw ClientHello of each connection, split across
//! records and reads as it may be, hands it to a callback that may refuse
//! the connection, and replays every byte to the next step, so TLS sees
//! the handshake untouched. [`ClientHelloListener::ja4`] adds the JA4
//! fingerprint and the JA3 string as a [`TlsFingerprint`] feature.

mod ja4;
mod parse;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kite_transport_core::{Connection, ConnectionContext, ConnectionIo, Rewind};
use tokio::io::{AsyncRead, AsyncReadExt};

pub use self::ja4::{ja3, ja4, TlsFingerprint};
pub use self::parse::{is_grease, ClientHello};

/// Why bytes that began as TLS are not a ClientHello Kite reads: what
/// [`scan`] and [`ClientHello::parse`] return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientHelloError {
    /// The first handshake message is not a ClientHello.
    #[error("not a ClientHello")]
    NotClientHello,
    /// The message's lengths run past its bytes by `missing` bytes.
    #[error("the ClientHello ends {missing} bytes early")]
    Truncated {
        /// How many bytes the lengths claim beyond the end.
        missing: usize,
    },
    /// A cipher suite list of an odd number of bytes.
    #[error("an odd cipher suite list")]
    OddCipherSuites,
    /// A record of another type came before the ClientHello was whole.
    #[error("a ClientHello interrupted by another record type")]
    Interrupted,
    /// A TLS record of a length no record may have (0, or past 18,432).
    #[error("a TLS record of {0} bytes")]
    RecordLength(usize),
    /// A ClientHello longer than [`MAX_CLIENT_HELLO`].
    #[error("a ClientHello of {0} bytes, over {MAX_CLIENT_HELLO}")]
    TooLarge(usize),
}
use crate::{ConnectionError, ConnectionMiddleware, Next};

/// The largest ClientHello read: far past any real one (post-quantum key
/// shares included), and a bound on what a client can make the server hold.
pub const MAX_CLIENT_HELLO: usize = 64 * 1024;

/// The `tracing` target of refusals.
pub const LOG_TARGET: &str = "kite::client_hello";

type Callback = dyn Fn(&ClientHello, &mut ConnectionContext) -> Result<(), String> + Send + Sync;

/// Sees each connection's ClientHello before TLS. Place it before
/// `use_https` in an endpoint's chain (or as server-wide middleware). A
/// connection that does not start with a TLS handshake record passes
/// untouched; a malformed or oversized ClientHello, or none within the
/// timeout (8 s, Kestrel's), closes the connection with a `tracing` event.
///
/// ```
/// use kite_connection_middleware::client_hello::{ClientHelloListener, TlsFingerprint};
///
/// // JA4 and JA3 as a feature, and a refusal of clients without SNI.
/// let listener = ClientHelloListener::ja4_with(|hello, _context| match hello.server_name() {
///     Some(_) => Ok(()),
///     None => Err("no SNI".into()),
/// });
/// # let _ = listener;
/// ```
#[derive(Clone)]
pub struct ClientHelloListener {
    callback: Arc<Callback>,
    timeout: Duration,
}

impl std::fmt::Debug for ClientHelloListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHelloListener").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl ClientHelloListener {
    /// A listener calling `callback` with each ClientHello and the
    /// connection's context (to add features); an `Err` closes the
    /// connection with that reason.
    pub fn new(
        callback: impl Fn(&ClientHello, &mut ConnectionContext) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Self { callback: Arc::new(callback), timeout: Duration::from_secs(8) }
    }

    /// Adds a [`TlsFingerprint`] (JA4 and the JA3 string) to every TLS
    /// connection.
    pub fn ja4() -> Self {
        Self::ja4_with(|_, _| Ok(()))
    }

    /// Adds a [`TlsFingerprint`], then calls `callback`, which may refuse.
    pub fn ja4_with(
        callback: impl Fn(&ClientHello, &ConnectionContext) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Self::new(move |hello, context| {
            context.features_mut().insert(TlsFingerprint::of(hello));
            callback(hello, context)
        })
    }

    /// How long the ClientHello may take to arrive. Default: 8 seconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// What the first bytes were.
enum Read {
    /// A ClientHello, and every byte read for it.
    Hello(ClientHello, Vec<u8>),
    /// Not a TLS handshake: the bytes read, to replay.
    Other(Vec<u8>),
}

/// What the first bytes of a connection hold so far, by [`scan`].
#[derive(Debug)]
pub enum Scan {
    /// Part of a ClientHello: more bytes are needed.
    More,
    /// Not a TLS handshake record.
    NotTls,
    /// A whole ClientHello.
    Hello(ClientHello),
}

/// Joins the handshake records at the start of `raw` (the bytes a
/// connection starts with) and parses the first handshake message once it
/// is whole. The TLS middleware takes the server name from it before the
/// handshake; [`ClientHelloListener`] hands it to its callback.
///
/// # Examples
///
/// ```
/// use kite_connection_middleware::client_hello::{scan, Scan};
///
/// assert!(matches!(scan(b"GET / HTTP/1.1\r\n"), Ok(Scan::NotTls)));
/// assert!(matches!(scan(&[0x16, 0x03, 0x01]), Ok(Scan::More)));
/// ```
///
/// # Errors
///
/// [`ClientHelloError::Interrupted`] for a record of another type between
/// them, [`ClientHelloError::RecordLength`], [`ClientHelloError::TooLarge`]
/// past [`MAX_CLIENT_HELLO`], or the errors of [`ClientHello::parse`].
pub fn scan(raw: &[u8]) -> Result<Scan, ClientHelloError> {
    match raw.first() {
        None => return Ok(Scan::More),
        Some(0x16) => {}
        Some(_) => return Ok(Scan::NotTls),
    }
    let mut handshake = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = raw.get(at..at + 5) else { return Ok(Scan::More) };
        if header[0] != 0x16 {
            return Err(ClientHelloError::Interrupted);
        }
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if length == 0 || length > 16_384 + 2048 {
            return Err(ClientHelloError::RecordLength(length));
        }
        let Some(body) = raw.get(at + 5..at + 5 + length) else { return Ok(Scan::More) };
        at += 5 + length;
        // One record holds the whole message, as it nearly always does:
        // no copy.
        let message = if handshake.is_empty() && at == 5 + length {
            body
        } else {
            handshake.extend_from_slice(body);
            &handshake[..]
        };
        if message.len() >= 4 {
            let needed = 4 + (usize::from(message[1]) << 16 | usize::from(message[2]) << 8 | usize::from(message[3]));
            if needed > MAX_CLIENT_HELLO {
                return Err(ClientHelloError::TooLarge(needed));
            }
            if message.len() >= needed {
                return ClientHello::parse(&message[..needed]).map(Scan::Hello);
            }
        }
        if handshake.is_empty() {
            handshake.extend_from_slice(body);
        }
    }
}

/// Reads TLS records until the first handshake message is whole.
async fn read_hello<R: AsyncRead + Unpin>(io: &mut R) -> Result<Read, String> {
    let mut raw = Vec::new();
    loop {
        match scan(&raw).map_err(|e| e.to_string())? {
            Scan::Hello(hello) => return Ok(Read::Hello(hello, raw)),
            Scan::NotTls => return Ok(Read::Other(raw)),
            Scan::More => {}
        }
        let start = raw.len();
        raw.resize(start + 4096, 0);
        let n = io.read(&mut raw[start..]).await.map_err(|e| e.to_string())?;
        raw.truncate(start + n);
        if n == 0 {
            return match raw.is_empty() {
                true => Ok(Read::Other(raw)),
                false => Err("a truncated ClientHello: the connection closed".into()),
            };
        }
    }
}

#[async_trait]
impl ConnectionMiddleware for ClientHelloListener {
    async fn on_connection(&self, connection: Connection, next: Next) -> Result<(), ConnectionError> {
        let (mut io, mut context) = connection.into_parts();
        let id = context.id();
        let close = context.close_signal().clone();
        let refuse = |reason: String| {
            tracing::debug!(target: LOG_TARGET, connection_id = %id, %reason, "ClientHello: connection closed");
            close.set_end_reason(kite_transport_core::ConnectionEndReason::ClientHelloRefused);
            ConnectionError::rejected(reason)
        };
        let read = match tokio::time::timeout(self.timeout, read_hello(&mut io)).await {
            Ok(Ok(read)) => read,
            Ok(Err(reason)) => return Err(refuse(reason)),
            Err(_) => return Err(refuse(format!("no ClientHello within {:?}", self.timeout))),
        };
        let replay = match read {
            Read::Other(bytes) => bytes,
            Read::Hello(hello, bytes) => {
                if let Err(reason) = (self.callback)(&hello, &mut context) {
                    return Err(refuse(reason));
                }
                bytes
            }
        };
        let io: Box<dyn ConnectionIo> =
            if replay.is_empty() { io } else { Box::new(Rewind::new(bytes::Bytes::from(replay), io)) };
        next.run(Connection::new(io, context)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello naming `host`, as one handshake message.
    fn hello(host: &str) -> Vec<u8> {
        let name = host.as_bytes();
        let mut sni = vec![0x00, 0x00]; // server_name
        let list_len = (name.len() + 3) as u16;
        sni.extend_from_slice(&(list_len + 2).to_be_bytes());
        sni.extend_from_slice(&list_len.to_be_bytes());
        sni.push(0);
        sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni.extend_from_slice(name);
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7; 32]); // random
        body.push(0); // session id
        body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01]); // one suite
        body.extend_from_slice(&[0x01, 0x00]); // null compression
        body.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        body.extend_from_slice(&sni);
        let mut message = vec![0x01, 0, 0, 0];
        message[1..4].copy_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        message.extend_from_slice(&body);
        message
    }

    fn records(message: &[u8], size: usize) -> Vec<u8> {
        let mut raw = Vec::new();
        for chunk in message.chunks(size) {
            raw.extend_from_slice(&[0x16, 0x03, 0x01]);
            raw.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            raw.extend_from_slice(chunk);
        }
        raw
    }

    #[test]
    fn a_hello_in_one_record_or_split_across_records_and_reads() {
        let message = hello("example.com");
        for size in [message.len(), 10, 1] {
            let raw = records(&message, size);
            for cut in 0..raw.len() {
                assert!(matches!(scan(&raw[..cut]), Ok(Scan::More)), "{size}/{cut}");
            }
            match scan(&raw) {
                Ok(Scan::Hello(hello)) => assert_eq!(hello.server_name().as_deref(), Some("example.com")),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn other_protocols_and_broken_records_are_told_apart() {
        assert!(matches!(scan(b"PRI * HTTP/2.0"), Ok(Scan::NotTls)));
        let mut raw = records(&hello("a.example"), 10);
        raw[15] = 0x17; // the second record is application data
        assert_eq!(scan(&raw).unwrap_err(), ClientHelloError::Interrupted);
        assert_eq!(scan(&[0x16, 0x03, 0x01, 0x00, 0x00]).unwrap_err(), ClientHelloError::RecordLength(0));
        assert!(matches!(
            scan(&[0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0xff, 0xff, 0xff]).unwrap_err(),
            ClientHelloError::TooLarge(_)
        ));
    }
}
