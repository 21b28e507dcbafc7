//! The PROXY protocol (v1 text, v2 binary), HAProxy's way for a load
//! balancer in front to tell the server who the client is. Kestrel lacks it
//! (dotnet/aspnetcore#28526); here it is a connection middleware, first in
//! an endpoint's chain, before TLS.

mod header;

/// The PROXY header reader on arbitrary bytes, for the fuzz target
/// (`fuzz/fuzz_targets/proxy_protocol.rs`): `data` is the connection's
/// first bytes, read in pieces of at most `piece` bytes. It may refuse
/// with a reason, never panic, and never reads past a header it accepts
/// nor gives back more than it read.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn fuzz(data: &[u8], piece: usize) {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Hands out `data` at most `piece` bytes a read, always ready.
    struct Pieces<'a>(&'a [u8], usize);
    impl tokio::io::AsyncRead for Pieces<'_> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let n = self.0.len().min(self.1.max(1)).min(buf.remaining());
            buf.put_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Poll::Ready(Ok(()))
        }
    }
    let mut io = Pieces(data, piece);
    let result = {
        let mut read = std::pin::pin!(header::read(&mut io));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let Poll::Ready(result) = read.as_mut().poll(&mut cx) else { panic!("reading from memory never waits") };
        result
    };
    let consumed = data.len() - io.0.len();
    match result {
        Ok(header::Read::Absent(replay)) => assert!(replay[..] == data[..replay.len()] && replay.len() == consumed),
        Ok(header::Read::Header(_)) => assert!(consumed <= header::V2_MAX.max(header::V1_MAX)),
        Err(_) => {}
    }
}

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kite_transport_core::{Connection, Endpoint, Rewind};

use self::header::{Header, Read};
use crate::{ConnectionError, ConnectionMiddleware, Next};

pub use self::header::{V1_MAX, V2_MAX};

/// The connection's TCP peer (the proxy) when a PROXY header replaced the
/// remote address with the client's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyPeer(pub Endpoint);

/// The type-length-values of a v2 header (`PP2_TYPE_*`): ALPN,
/// authority, SSL and the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyTlvs {
    /// Every TLV, in order: its type and value.
    pub all: Vec<(u8, Vec<u8>)>,
}

impl ProxyTlvs {
    fn get(&self, kind: u8) -> Option<&[u8]> {
        self.all.iter().find(|(k, _)| *k == kind).map(|(_, v)| v.as_slice())
    }

    /// `PP2_TYPE_ALPN`: the protocol the client negotiated with the proxy.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.get(0x01)
    }

    /// `PP2_TYPE_AUTHORITY`: the host name the client asked for (SNI).
    pub fn authority(&self) -> Option<&str> {
        self.get(0x02).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// `PP2_TYPE_SSL`: whether the client connected to the proxy over TLS
    /// (the `PP2_CLIENT_SSL` bit), when the TLV is there.
    pub fn ssl(&self) -> Option<bool> {
        self.get(0x20).and_then(|v| v.first()).map(|client| client & 0x01 != 0)
    }
}

/// Whether a connection must start with a PROXY header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// Every connection starts with one; one without is closed.
    Required,
    /// A connection may start with one (v1 or v2, told by its signature);
    /// one without passes untouched.
    Optional,
}

/// Why an entry is not a trusted proxy: what parsing a [`TrustedProxy`]
/// and [`ProxyProtocol::trusted_proxies`] return. Each variant holds the
/// entry as given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustedProxyError {
    /// Neither an IP address nor an address with a prefix length.
    #[error("\"{0}\" is not an address or CIDR range")]
    NotAnAddress(String),
    /// A prefix length that is not a number up to 32 (IPv4) or 128 (IPv6).
    #[error("\"{0}\": bad prefix")]
    BadPrefix(String),
}

/// A trusted proxy: one address, or a CIDR range (`10.0.0.0/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedProxy {
    network: IpAddr,
    prefix: u8,
}

impl TrustedProxy {
    fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for TrustedProxy {
    type Err = TrustedProxyError;

    /// `192.0.2.7`, `10.0.0.0/8`, `::1`, `2001:db8::/32`.
    fn from_str(text: &str) -> Result<Self, TrustedProxyError> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().map_err(|_| TrustedProxyError::NotAnAddress(text.to_owned()))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| TrustedProxyError::BadPrefix(text.to_owned()))?,
            None => max,
        };
        Ok(Self { network, prefix })
    }
}

/// Reads the PROXY protocol header (v1 or v2) a proxy sends first, and
/// replaces the connection's remote and local endpoints with the client's
/// and the proxy's listening address it carries. The TCP peer stays as a
/// [`ProxyPeer`] feature and v2's TLVs as [`ProxyTlvs`]; a `LOCAL` command
/// (or v1 `UNKNOWN`) keeps the real addresses. Exactly the header's bytes
/// are read; in optional mode the first bytes of a connection without one
/// are replayed to the next step.
///
/// Refused, each with a `tracing` event under `kite::proxy_protocol`: a
/// header from a peer outside the trusted proxies; a missing header in
/// required mode; a malformed, truncated or oversized one (v1 over 107
/// bytes, v2 over 536); none complete within the timeout.
///
/// ```
/// use kite_connection_middleware::proxy_protocol::{ProxyMode, ProxyProtocol};
///
/// let middleware = ProxyProtocol::new(ProxyMode::Required).trusted_proxies(["10.0.0.0/8", "127.0.0.1"]).unwrap();
/// assert_eq!(middleware.mode(), ProxyMode::Required);
/// ```
#[derive(Clone, Debug)]
pub struct ProxyProtocol {
    mode: ProxyMode,
    trusted: Arc<Vec<TrustedProxy>>,
    timeout: Duration,
}

/// The `tracing` target of refusals.
pub const LOG_TARGET: &str = "kite::proxy_protocol";

impl ProxyProtocol {
    /// The middleware in `mode`, trusting every peer, with a 5 s timeout.
    pub fn new(mode: ProxyMode) -> Self {
        Self { mode, trusted: Arc::new(Vec::new()), timeout: Duration::from_secs(5) }
    }

    /// Accepts headers only from these peers (addresses or CIDR ranges). A
    /// header from any other peer closes the connection; in optional mode a
    /// connection without one passes. Default: every peer is trusted.
    ///
    /// # Errors
    ///
    /// [`TrustedProxyError`] for the first entry that is not an address or
    /// a CIDR range.
    pub fn trusted_proxies<I, S>(mut self, proxies: I) -> Result<Self, TrustedProxyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let parsed: Result<Vec<TrustedProxy>, TrustedProxyError> =
            proxies.into_iter().map(|p| p.as_ref().parse()).collect();
        self.trusted = Arc::new(parsed?);
        Ok(self)
    }

    /// How long the header may take to arrive. Default: 5 seconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The mode.
    pub fn mode(&self) -> ProxyMode {
        self.mode
    }

    fn trusts(&self, peer: &Endpoint) -> bool {
        self.trusted.is_empty() || peer.as_tcp().is_some_and(|addr| self.trusted.iter().any(|t| t.contains(addr.ip())))
    }
}

#[async_trait]
impl ConnectionMiddleware for ProxyProtocol {
    async fn on_connection(&self, connection: Connection, next: Next) -> Result<(), ConnectionError> {
        let (mut io, mut context) = connection.into_parts();
        let id = context.id();
        let peer = context.remote().clone();
        let close = context.close_signal().clone();
        let refuse = |reason: String| {
            tracing::debug!(target: LOG_TARGET, connection_id = %id, %peer, %reason, "PROXY protocol: connection closed");
            close.set_end_reason(kite_transport_core::ConnectionEndReason::ProxyProtocolInvalid);
            ConnectionError::rejected(reason)
        };
        let read = match tokio::time::timeout(self.timeout, header::read(&mut io)).await {
            Ok(Ok(read)) => read,
            Ok(Err(reason)) => return Err(refuse(reason)),
            Err(_) => return Err(refuse(format!("no PROXY header within {:?}", self.timeout))),
        };
        let header = match read {
            Read::Absent(prefix) => {
                if self.mode == ProxyMode::Required {
                    return Err(refuse("a connection without a PROXY header, which this endpoint requires".into()));
                }
                let io: Box<dyn kite_transport_core::ConnectionIo> =
                    if prefix.is_empty() { io } else { Box::new(Rewind::new(prefix, io)) };
                return next.run(Connection::new(io, context)).await;
            }
            Read::Header(header) => header,
        };
        if !self.trusts(&peer) {
            return Err(refuse("a PROXY header from a peer that is not a trusted proxy".into()));
        }
        let tlvs = match header {
            Header::Proxied { source, destination, tlvs } => {
                tracing::debug!(target: LOG_TARGET, connection_id = %id, %peer, client = %source, "PROXY protocol: client address");
                context.set_addresses(Endpoint::Tcp(destination), Endpoint::Tcp(source));
                context.features_mut().insert(ProxyPeer(peer));
                tlvs
            }
            Header::Local { tlvs } => tlvs,
        };
        if !tlvs.is_empty() {
            context.features_mut().insert(ProxyTlvs { all: tlvs });
        }
        next.run(Connection::new(io, context)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_ranges() {
        let range: TrustedProxy = "10.0.0.0/8".parse().unwrap();
        assert!(range.contains("10.1.2.3".parse().unwrap()));
        assert!(!range.contains("11.0.0.1".parse().unwrap()));
        assert!(range.contains("::ffff:10.9.9.9".parse().unwrap()), "IPv4-mapped IPv6 counts");
        let one: TrustedProxy = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()) && !one.contains("127.0.0.2".parse().unwrap()));
        let v6: TrustedProxy = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::7".parse().unwrap()) && !v6.contains("2001:db9::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<TrustedProxy>().is_err() && "nonsense".parse::<TrustedProxy>().is_err());
        let all: TrustedProxy = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
    }
}
