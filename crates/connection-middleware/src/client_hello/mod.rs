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

/// Reads exactly `n` more bytes into `buf`.
async fn read_more<R: AsyncRead + Unpin>(io: &mut R, buf: &mut Vec<u8>, n: usize) -> Result<(), String> {
    let start = buf.len();
    buf.resize(start + n, 0);
    io.read_exact(&mut buf[start..]).await.map(|_| ()).map_err(|e| format!("a truncated ClientHello: {e}"))
}

/// Reads TLS records until the first handshake message is whole.
async fn read_hello<R: AsyncRead + Unpin>(io: &mut R) -> Result<Read, String> {
    let mut raw = Vec::new();
    // The first byte says whether this is TLS at all.
    let mut first = [0u8; 1];
    if io.read(&mut first).await.map_err(|e| e.to_string())? == 0 {
        return Ok(Read::Other(raw));
    }
    raw.push(first[0]);
    if first[0] != 0x16 {
        return Ok(Read::Other(raw));
    }
    let mut handshake = Vec::new();
    loop {
        let at = raw.len();
        let header_left = if at == 1 { 4 } else { 5 };
        read_more(io, &mut raw, header_left).await?;
        let header = &raw[raw.len() - 5..];
        if header[0] != 0x16 {
            return Err("a ClientHello interrupted by another record type".into());
        }
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if length == 0 || length > 16_384 + 2048 {
            return Err(format!("a TLS record of {length} bytes"));
        }
        read_more(io, &mut raw, length).await?;
        handshake.extend_from_slice(&raw[raw.len() - length..]);
        if handshake.len() >= 4 {
            let needed =
                4 + (usize::from(handshake[1]) << 16 | usize::from(handshake[2]) << 8 | usize::from(handshake[3]));
            if needed > MAX_CLIENT_HELLO {
                return Err(format!("a ClientHello of {needed} bytes, over {MAX_CLIENT_HELLO}"));
            }
            if handshake.len() >= needed {
                let hello = ClientHello::parse(&handshake[..needed])?;
                return Ok(Read::Hello(hello, raw));
            }
        }
    }
}

#[async_trait]
impl ConnectionMiddleware for ClientHelloListener {
    async fn on_connection(&self, connection: Connection, next: Next) -> Result<(), ConnectionError> {
        let (mut io, mut context) = connection.into_parts();
        let id = context.id();
        let refuse = |reason: String| {
            tracing::debug!(target: LOG_TARGET, connection_id = %id, %reason, "ClientHello: connection closed");
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
