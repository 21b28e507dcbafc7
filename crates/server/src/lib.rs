//! Kite's server: endpoints, options, graceful shutdown, and the `kite`
//! binary.
//!
//! [`Server::builder`] takes endpoints from code ([`listen`](ServerBuilder::listen),
//! [`listen_unix`](ServerBuilder::listen_unix)) or URLs in Kestrel's forms
//! ([`urls`](ServerBuilder::urls): `http://localhost:5000`, `http://*:80`,
//! `http://[::1]:0`, `http://unix:/run/kite.sock`), options
//! ([`ServerOptions`], [`Limits`]), a transport (the sockets transport by
//! default) and connection middleware. [`ServerBuilder::bind`] binds every
//! endpoint; [`Server::serve`] runs any `tower::Service` until a signal or
//! a [`ShutdownHandle`] starts a graceful shutdown.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use kite_server::{service_fn, RequestBody, Server};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let server = Server::builder().urls(["http://127.0.0.1:0"]).handle_signals(false).bind().await.unwrap();
//! let addr = server.local_endpoints()[0].as_tcp().unwrap();
//! let shutdown = server.shutdown_handle();
//! let running = tokio::spawn(server.serve(service_fn(|_req: Request<RequestBody>| async {
//!     Ok::<_, Infallible>(Response::new(String::from("Hello, World!")))
//! })));
//!
//! let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
//! client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
//! let mut response = String::new();
//! client.read_to_string(&mut response).await.unwrap();
//! assert!(response.ends_with("Hello, World!"));
//!
//! shutdown.shutdown();
//! running.await.unwrap().unwrap();
//! # });
//! ```
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod acme_answers;
mod address;
mod alt_svc;
mod builder;
pub mod config;
pub mod dev_certs;
mod endpoint;
mod error;
mod handler;
pub mod handover;
mod host_filter;
mod listen;
pub mod metrics;
mod options;
mod readiness;
mod reload;
mod server;
mod service_fn;
mod shutdown;
pub mod systemd;
mod tracker;
/// WebSockets on Kite's upgrade (the `kite-websocket` crate).
#[cfg(feature = "websocket")]
pub use kite_websocket as websocket;

pub use address::{ListenAddress, ListenUrl};
pub use builder::{ServerBuilder, DEFAULT_URL};
pub use error::ServerError;
/// The ClientHello listener and the JA4 fingerprint, from
/// `kite-connection-middleware`.
pub use kite_connection_middleware::client_hello;
/// The PROXY protocol middleware and its features (`ProxyPeer`,
/// `ProxyTlvs`), from `kite-connection-middleware`.
pub use kite_connection_middleware::proxy_protocol;
/// Certificates from an ACME server (feature `acme`).
#[cfg(feature = "acme")]
pub use kite_connection_middleware::tls::acme;
pub use kite_connection_middleware::tls::{
    Certificate, ClientCertificateMode, TlsFilter, TlsHandshake, TlsOptions, TlsVersion,
};
pub use kite_http_core::{upgrade, OnUpgrade, UpgradeError, Upgraded};
pub use kite_http_core::{
    BodyError, ConnectionInfo, Http2Limits, Http3Limits, HttpOptions, HttpService, Limits, MaxRequestBodySize,
    MinDataRate, MinDataRates, Protocols, RateChangeRefused, RequestBody, StreamReset,
};
pub use listen::ListenOptions;
pub use options::ServerOptions;
pub use server::{BoundEndpoint, Server};
pub use service_fn::{service_fn, ServiceFn};
pub use shutdown::ShutdownHandle;
