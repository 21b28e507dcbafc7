//! Kite's multiplexed transport on QUIC, with `quinn`: Kestrel's QUIC
//! transport (`IMultiplexedConnectionListenerFactory`).
//!
//! [`QuicTransport::bind`](kite_transport_core::MultiplexedTransport::bind)
//! binds a UDP socket and yields
//! [`MultiplexedConnection`](kite_transport_core::MultiplexedConnection)s whose streams
//! are plain `AsyncRead`/`AsyncWrite` halves; the HTTP core runs HTTP/3 on
//! them without knowing quinn. The TLS configuration comes from the bind
//! features as an `Arc<rustls::ServerConfig>` (TLS 1.3; its ALPN list is
//! what the endpoint offers, `h3` for HTTP/3). Each connection carries the
//! [`TlsHandshake`](kite_transport_core::tls::TlsHandshake) feature.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use kite_transport_core::{Endpoint, Features, MultiplexedTransport};
//! use kite_transport_quic::{QuicOptions, QuicTransport};
//!
//! let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
//! let key = rustls_pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
//! let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
//! let mut tls = rustls::ServerConfig::builder_with_provider(provider)
//!     .with_protocol_versions(&[&rustls::version::TLS13]).unwrap()
//!     .with_no_client_auth()
//!     .with_single_cert(vec![certified.cert.der().clone()], key).unwrap();
//! tls.alpn_protocols = vec![b"h3".to_vec()];
//!
//! let mut features = Features::new();
//! features.insert(Arc::new(tls));
//! let transport = QuicTransport::new(QuicOptions::default());
//! let listener = transport.bind(&Endpoint::Tcp("127.0.0.1:0".parse().unwrap()), &features).await.unwrap();
//! assert_ne!(listener.local_endpoint().as_tcp().unwrap().port(), 0);
//! # });
//! ```
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod connection;
mod listener;
mod stream;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kite_socket::SocketOptions;
use kite_transport_core::{Endpoint, Features, MultiplexedListener, MultiplexedTransport};

pub use listener::QuicListener;

/// QUIC settings (Kestrel's `QuicTransportOptions`).
///
/// ```
/// use kite_transport_quic::QuicOptions;
///
/// let options = QuicOptions::default().max_bidirectional_streams(200);
/// assert_eq!(options.max_bidirectional_streams, 200);
/// assert_eq!(options.max_unidirectional_streams, 10);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct QuicOptions {
    /// How many bidirectional streams (HTTP/3 requests) a peer may have
    /// open at once. Default: 100.
    pub max_bidirectional_streams: u32,
    /// How many unidirectional streams a peer may have open at once.
    /// Default: 10.
    pub max_unidirectional_streams: u32,
    /// How long a connection may be idle before it is closed (see
    /// [`idle_timeout`](Self::idle_timeout)). Default: 130 seconds.
    pub idle_timeout: Duration,
    /// Socket options for the UDP socket. Default:
    /// [`SocketOptions::default`].
    pub socket: SocketOptions,
}

impl Default for QuicOptions {
    fn default() -> Self {
        Self {
            max_bidirectional_streams: 100,
            max_unidirectional_streams: 10,
            idle_timeout: Duration::from_secs(130),
            socket: SocketOptions::default(),
        }
    }
}

impl QuicOptions {
    /// How many bidirectional streams (HTTP/3 requests) a peer may have
    /// open at once. Default: 100.
    pub fn max_bidirectional_streams(mut self, count: u32) -> Self {
        self.max_bidirectional_streams = count;
        self
    }

    /// How many unidirectional streams (HTTP/3 control and QPACK streams) a
    /// peer may have open at once. Default: 10.
    pub fn max_unidirectional_streams(mut self, count: u32) -> Self {
        self.max_unidirectional_streams = count;
        self
    }

    /// How long a connection may stay silent before it is closed.
    /// Default: 130 seconds (Kestrel's keep-alive timeout).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The UDP socket's options (`SO_REUSEPORT`, buffer sizes).
    /// Default: [`SocketOptions::default`].
    pub fn socket(mut self, options: SocketOptions) -> Self {
        self.socket = options;
        self
    }
}

/// The QUIC transport. Binding needs a tokio runtime with IO and timers.
#[derive(Clone, Debug, Default)]
pub struct QuicTransport {
    options: QuicOptions,
}

impl QuicTransport {
    /// A transport with `options`.
    pub fn new(options: QuicOptions) -> Self {
        Self { options }
    }

    /// The transport's options.
    pub fn options(&self) -> &QuicOptions {
        &self.options
    }

    fn server_config(&self, tls: Arc<rustls::ServerConfig>) -> io::Result<quinn::ServerConfig> {
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("the TLS configuration cannot serve QUIC: {e}"))
        })?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_concurrent_bidi_streams(self.options.max_bidirectional_streams.into())
            .max_concurrent_uni_streams(self.options.max_unidirectional_streams.into());
        let idle = quinn::IdleTimeout::try_from(self.options.idle_timeout)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("idle timeout: {e}")))?;
        transport.max_idle_timeout(Some(idle));
        config.transport_config(Arc::new(transport));
        Ok(config)
    }
}

#[async_trait]
impl MultiplexedTransport for QuicTransport {
    fn name(&self) -> &'static str {
        "quic"
    }

    async fn bind(&self, endpoint: &Endpoint, features: &Features) -> io::Result<Box<dyn MultiplexedListener>> {
        let tls = features.get::<Arc<rustls::ServerConfig>>().cloned().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "QUIC needs a TLS configuration (Arc<rustls::ServerConfig>)")
        })?;
        let config = self.server_config(tls)?;
        let socket = match endpoint {
            Endpoint::Tcp(addr) => kite_socket::bind_udp(*addr, &self.options.socket)?,
            // A UDP socket handed over by the process this one replaces.
            Endpoint::Inherited(fd) => {
                let socket = std::net::UdpSocket::from(fd.take()?);
                socket.set_nonblocking(true)?;
                socket
            }
            other => {
                return Err(io::Error::new(io::ErrorKind::Unsupported, format!("QUIC cannot listen on {other}")));
            }
        };
        QuicListener::new(socket, config).map(|l| Box::new(l) as Box<dyn MultiplexedListener>)
    }
}
