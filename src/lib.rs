//! Kite: a Kestrel-style HTTP server framework for Rust, built from
//! swappable parts.
//!
//! ```text
//! Transport ──accept──▶ Connection ──▶ ConnectionBuilder pipeline ──▶ HTTP core ──▶ application
//! ```
//!
//! - [`transport`]: the contracts (`Transport`, `Listener`, `Connection`,
//!   `Endpoint`, `ConnectionContext`, and the multiplexed ones for QUIC);
//!   `sockets` is the default transport, `mio` an event-loop one, `quic`
//!   the multiplexed one.
//! - [`middleware`]: `ConnectionMiddleware` and `ConnectionBuilder`, with
//!   connection logging built in.
//! - [`http_core`]: the HTTP core, HTTP/1.1 of its own on `httparse` and
//!   HTTP/2 on `h2` (h2c by prior knowledge, h2 by ALPN), upgrades and
//!   `serve_connection`, which hosts any `tower::Service` (an axum
//!   `Router` runs unchanged).
//! - [`Server`]: endpoints from code, URLs, the environment and a
//!   configuration file, TLS, Kestrel's limits, metrics, graceful shutdown.
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

pub use kite_server::{
    dev_certs, service_fn, BodyError, Certificate, ClientCertificateMode, ConnectionInfo, Http2Limits, Http3Limits,
    HttpService, Limits, ListenAddress, ListenUrl, MaxRequestBodySize, MinDataRate, MinDataRates, Protocols,
    RequestBody, Server, ServerBuilder, ServerError, ServerOptions, ServiceFn, ShutdownHandle, StreamReset, TlsFilter,
    TlsHandshake, TlsOptions, TlsVersion, DEFAULT_URL,
};

pub use kite_server::{upgrade, OnUpgrade, UpgradeError, Upgraded};
pub use kite_server::{BoundEndpoint, ListenOptions, RateChangeRefused};

/// Configuration in Kestrel's schema, from a file and the environment.
pub use kite_server::config;

/// Kestrel's instruments as `kite.*`, through the `metrics` facade.
pub use kite_server::metrics;

/// WebSockets: RFC 6455 over HTTP/1.1 and TLS, RFC 8441 over HTTP/2.
#[cfg(feature = "websocket")]
pub use kite_server::websocket;

/// The transport contracts: [`Transport`](transport::Transport),
/// [`Listener`](transport::Listener), [`Connection`](transport::Connection)
/// and the connection context.
pub mod transport {
    pub use kite_transport_core::*;
}

/// The default transport on tokio's TCP and Unix sockets.
#[cfg(feature = "sockets")]
pub mod sockets {
    pub use kite_transport_sockets::*;
}

/// The event-loop transport on mio, the role Kestrel's libuv transport
/// played.
#[cfg(feature = "mio")]
pub mod mio {
    pub use kite_transport_mio::*;
}

/// The completion-based transport on io_uring: loop threads with a ring
/// each, multishot accept and receive into provided buffers.
#[cfg(feature = "uring")]
pub mod uring {
    pub use kite_transport_uring::*;
}

/// The QUIC transport for HTTP/3, on quinn.
#[cfg(feature = "http3")]
pub mod quic {
    pub use kite_transport_quic::*;
}

/// Kite without sockets: an in-memory transport and a `TestServer`.
#[cfg(feature = "testing")]
pub mod testing {
    pub use kite_testing::*;
}

/// Connection middleware: the trait, the builder, and the built-ins.
pub mod middleware {
    pub use kite_connection_middleware::*;
}

/// The HTTP core: [`serve_connection`](http_core::serve_connection),
/// options, limits, request bodies and extensions.
pub mod http_core {
    pub use kite_http_core::*;
}

/// The `http` crate, whose `Request`, `Response`, `StatusCode` and header
/// types applications use: a `kite` dependency is all a server needs.
pub use ::http;

/// The README's examples, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
