//! Kite: a Kestrel-style HTTP server framework for Rust, built from
//! swappable parts.
//!
//! ```text
//! Transport ──accept──▶ Connection ──▶ ConnectionBuilder pipeline ──▶ HTTP core ──▶ application
//! ```
//!
//! One path per public name:
//!
//! - the root: [`Server`] and its builder and options, the application
//!   contract ([`HttpService`], [`RequestBody`], the request extensions)
//!   and the HTTP options ([`HttpOptions`], [`Limits`], [`Protocols`]).
//! - [`transport`]: the contracts (`Transport`, `Listener`, `Connection`,
//!   `Endpoint`, `ConnectionContext`, the multiplexed ones for QUIC) and
//!   `SocketOptions`; `sockets` is the default transport, `mio` an
//!   event-loop one, `uring` a completion-based one, `quic` the
//!   multiplexed one.
//! - [`middleware`]: `ConnectionMiddleware` and `ConnectionBuilder`, with
//!   connection logging, the PROXY protocol and the ClientHello listener.
//! - [`tls`]: TLS on rustls: options, certificates, the middleware, typed
//!   errors.
//! - [`http_core`]: `serve_connection`, for a server of one's own: HTTP/1.1
//!   of Kite's own on `httparse` and HTTP/2 on `h2` (h2c by prior
//!   knowledge, h2 by ALPN), hosting any `tower::Service` (an axum
//!   `Router` runs unchanged).
//! - [`upgrade`] and `websocket`: taking over a connection, and WebSockets
//!   on it.
//! - [`config`] and [`metrics`]: Kestrel's configuration schema and
//!   instruments.
//!
//! Cargo features:
//! - `sockets` (default): the tokio sockets transport.
//! - `mio`: the event-loop transport (`kite::mio`), chosen with
//!   [`ServerBuilder::transport`].
//! - `tls` (default): TLS on rustls with the aws-lc-rs crypto provider.
//! - `tls-ring`: TLS with the ring crypto provider instead.
//! - `websocket` (default): WebSockets on tokio-tungstenite
//!   (`kite::websocket`).
//! - `testing`: an in-memory transport and a `TestServer`, for tests
//!   without sockets.
//! - `toml`: configuration files in TOML as well as JSON.
//! - `http3`: HTTP/3 over QUIC (`kite::quic`, on quinn) for endpoints
//!   whose protocols include it.
//!
//! # Example
//!
//! ```no_run
//! use std::convert::Infallible;
//! use kite::{service_fn, RequestBody, Server};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), kite::ServerError> {
//!     let server = Server::builder().urls(["http://localhost:5000"]).bind().await?;
//!     server
//!         .serve(service_fn(|_req: kite::http::Request<RequestBody>| async {
//!             Ok::<_, Infallible>(kite::http::Response::new(String::from("Hello, World!")))
//!         }))
//!         .await
//! }
//! ```
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

// Every public name has one path: the server and the application
// contract at the root, each other concept in its module.

// The server: building, binding, running, stopping.
pub use kite_server::{
    BoundEndpoint, ListenAddress, ListenOptions, ListenUrl, Server, ServerBuilder, ServerError, ServerOptions,
    ShutdownHandle, DEFAULT_URL,
};

// The application contract: the service, the request body and the
// request extensions Kite adds.
pub use kite_http_core::ReadOnlyError;
pub use kite_server::{
    service_fn, BodyError, ConnectionInfo, HttpService, MaxRequestBodySize, MinDataRates, RateChangeRefused,
    RequestBody, ServiceFn, StreamReset,
};

// The HTTP options a server is built with.
pub use kite_http_core::{Http2Limits, Http3Limits, HttpOptions, Limits, MinDataRate, OptionsError, Protocols};

/// A boxed error from code a user plugs in (an application, a body, a
/// middleware): the one alias every Kite crate uses.
pub use kite_transport_core::BoxError;

/// Development certificates: `kite dev-certs` and its trust store.
pub use kite_server::dev_certs;

/// Configuration in Kestrel's schema, from a file and the environment.
pub use kite_server::config;

/// Kestrel's instruments as `kite.*`, through the `metrics` facade.
pub use kite_server::metrics;

/// Taking over a connection after `101 Switching Protocols` or an HTTP/2
/// extended CONNECT: [`upgrade::on`], [`upgrade::OnUpgrade`],
/// [`upgrade::Upgraded`].
pub use kite_http_core::upgrade;

/// WebSockets: RFC 6455 over HTTP/1.1 and TLS, RFC 8441 over HTTP/2.
#[cfg(feature = "websocket")]
pub use kite_server::websocket;

/// TLS on rustls: the options and certificates of an HTTPS endpoint, the
/// middleware that runs the handshake, what a handshake negotiated, and
/// why one failed.
pub mod tls {
    /// Certificates from an ACME server, issued and renewed while serving
    /// (feature `acme`).
    #[cfg(feature = "acme")]
    pub use kite_connection_middleware::tls::acme;
    pub use kite_connection_middleware::tls::{
        Certificate, CertificateSelector, ClientCertificateMode, ClientCertificateValidator, HandshakeObserver,
        RootCertStore, TlsError, TlsFilter, TlsHandshake, TlsIo, TlsMiddleware, TlsOptions, TlsVersion,
    };
    pub use kite_connection_middleware::HandshakeError;
}

/// The transport contracts: [`Transport`](transport::Transport),
/// [`Listener`](transport::Listener), [`Connection`](transport::Connection),
/// the connection context, the multiplexed (QUIC) contracts, and the
/// socket options every socket transport takes.
pub mod transport {
    pub use kite_socket::SocketOptions;
    pub use kite_transport_core::{
        delegate_async_write, loop_executor, multiplexed, AbortTask, Admission, Admitted, BoxTask, CloseSignal,
        CloseWatch, Connection, ConnectionContext, ConnectionEndReason, ConnectionExecutor, ConnectionId, ConnectionIo,
        Endpoint, Features, InheritedFd, Listener, PlainIo, Rewind, TaskSpawner, Transport,
    };
}

/// The default transport on tokio's TCP and Unix sockets.
#[cfg(feature = "sockets")]
pub mod sockets {
    pub use kite_transport_sockets::{SocketListener, SocketStream, SocketTransport, TRANSPORT_NAME};
}

/// The event-loop transport on mio, the role Kestrel's libuv transport
/// played.
#[cfg(feature = "mio")]
pub mod mio {
    pub use kite_transport_mio::{MioListener, MioOptions, MioStream, MioTransport, TRANSPORT_NAME};
}

/// The completion-based transport on io_uring: loop threads with a ring
/// each, multishot accept and receive into provided buffers.
#[cfg(feature = "uring")]
pub mod uring {
    pub use kite_transport_uring::{
        Unavailable, UringListener, UringOptions, UringStream, UringTransport, TRANSPORT_NAME,
    };
}

/// The QUIC transport for HTTP/3, on quinn.
#[cfg(feature = "http3")]
pub mod quic {
    pub use kite_transport_quic::{QuicListener, QuicOptions, QuicTransport};
}

/// Kite without sockets: an in-memory transport and a `TestServer`.
#[cfg(feature = "testing")]
pub mod testing {
    pub use kite_testing::{MemoryListener, MemoryTransport, TestClient, TestError, TestServer, TRANSPORT_NAME};
}

/// Connection middleware: the trait, the builder, connection logging, and
/// the built-ins before TLS (the ClientHello listener, the PROXY protocol).
/// TLS itself is [`tls`].
pub mod middleware {
    pub use kite_connection_middleware::{
        client_hello, proxy_protocol, ConnectionBuilder, ConnectionError, ConnectionHandler, ConnectionLogging,
        ConnectionMiddleware, ConnectionPipeline, Next, LOG_TARGET,
    };
}

/// The HTTP core's entry points, for a server of one's own:
/// [`serve_connection`](http_core::serve_connection) on any transport's
/// connection, `serve_multiplexed` on a QUIC one, and what they end with.
pub mod http_core {
    #[cfg(feature = "http3")]
    pub use kite_http_core::serve_multiplexed;
    pub use kite_http_core::{serve_connection, Error, RequestRejection};
}

/// The `http` crate, whose `Request`, `Response`, `StatusCode` and header
/// types applications use: a `kite` dependency is all a server needs.
pub use ::http;

/// The README's examples, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
