//! Kite's HTTP core: HTTP/1.1 and HTTP/2 over any [`Connection`], and
//! HTTP/3 over any multiplexed connection (feature `http3`), hosting any
//! [`tower_service::Service`].
//!
//! [`serve_connection`] is the entry point for byte streams: give it a connection from
//! any transport (after any middleware), a service, and [`HttpOptions`], and
//! it serves requests until the peer closes, a timeout passes, or the
//! connection's [`CloseSignal`](kite_transport_core::CloseSignal) asks it to
//! stop. The HTTP/1.1 connection is Kite's own, on `httparse`: keep-alive,
//! pipelining with batched writes, chunked bodies both ways, lazy
//! `100 Continue`, request draining, and Kestrel's limits, each answered
//! with Kestrel's status ([`RequestRejection`]). HTTP/2 runs on the `h2`
//! crate, chosen by ALPN or the h2c preface. `serve_multiplexed` serves
//! HTTP/3 on the `h3` crate over a
//! [`MultiplexedConnection`](kite_transport_core::MultiplexedConnection)
//! (QUIC), with the same application contract.
//!
//! The application is any `Service<http::Request<RequestBody>>` whose
//! response body implements [`http_body::Body`]; an axum `Router` is one.
//! Every request carries a [`ConnectionInfo`] extension, and every request
//! with a body a [`MaxRequestBodySize`].
//!
//! # Example: serving one connection over an in-memory pipe
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use kite_http_core::{serve_connection, HttpOptions, RequestBody};
//! use kite_transport_core::{Connection, ConnectionContext, ConnectionId, Endpoint, PlainIo};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let service = tower_service_fn(|_req: Request<RequestBody>| async {
//!     Ok::<_, Infallible>(Response::new(String::from("hi")))
//! });
//!
//! let (server_io, mut client) = tokio::io::duplex(4096);
//! let ctx = ConnectionContext::new(ConnectionId::next(), Endpoint::Unnamed, Endpoint::Unnamed, "memory");
//! let connection = Connection::new(Box::new(PlainIo(server_io)), ctx);
//! let server = tokio::spawn(async move { serve_connection(connection, service, &HttpOptions::default()).await });
//!
//! client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
//! let mut response = String::new();
//! client.read_to_string(&mut response).await.unwrap();
//! assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
//! assert!(response.ends_with("\r\n\r\nhi"));
//! server.await.unwrap().unwrap();
//!
//! // A tiny `service_fn`, to keep this example free of other crates.
//! fn tower_service_fn<F, Fut>(f: F) -> impl tower_service::Service<Request<RequestBody>, Response = Response<String>, Error = Infallible, Future = Fut>
//! where
//!     F: FnMut(Request<RequestBody>) -> Fut,
//!     Fut: std::future::Future<Output = Result<Response<String>, Infallible>>,
//! {
//!     struct ServiceFn<F>(F);
//!     impl<F, Fut> tower_service::Service<Request<RequestBody>> for ServiceFn<F>
//!     where
//!         F: FnMut(Request<RequestBody>) -> Fut,
//!         Fut: std::future::Future<Output = Result<Response<String>, Infallible>>,
//!     {
//!         type Response = Response<String>;
//!         type Error = Infallible;
//!         type Future = Fut;
//!         fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
//!             std::task::Poll::Ready(Ok(()))
//!         }
//!         fn call(&mut self, req: Request<RequestBody>) -> Fut {
//!             (self.0)(req)
//!         }
//!     }
//!     ServiceFn(f)
//! }
//! # });
//! ```
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod body;
mod error;
mod h1;
mod h2;
#[cfg(feature = "http3")]
mod h3;
mod info;
mod options;
mod options_error;
mod panic;
mod pooling;
mod protocol;
mod rejection;
mod served;
mod service;
mod timing;
pub mod upgrade;

use kite_transport_core::Connection;

pub use body::{BodyError, MaxRequestBodySize, ReadOnlyError, RequestBody};
pub use error::{BoxError, Error};
pub use h2::reset::StreamReset;
pub use info::ConnectionInfo;
pub use options::{Http2Limits, Http3Limits, HttpOptions, Limits, MinDataRate, OptionsError, Protocols};
pub use rejection::RequestRejection;
pub use service::HttpService;
pub use timing::heartbeat::{MinDataRates, RateChangeRefused};
pub use upgrade::{OnUpgrade, UpgradeError, Upgraded};

/// The request head parser and the body decoders, exposed for fuzzing.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::h1::decode::{ChunkedDecoder, Decoded, Decoder};
    pub use crate::h1::parse::{parse_head, BodyLength, ParsedHead};
}

/// Serves HTTP on `connection` with `service` until the connection ends.
///
/// The protocol follows the options' [`Protocols`] and the connection:
/// over TLS the ALPN result (`h2` is HTTP/2), in cleartext prior-knowledge
/// HTTP/2 or, on endpoints that allow both, the first bytes (the HTTP/2
/// preface is h2c, anything else HTTP/1.1).
///
/// Returns `Ok(())` on a clean end: the peer closed between requests, the
/// keep-alive timeout passed, or the connection's close signal was
/// requested (the response in flight is finished first, with
/// `Connection: close`).
///
/// # Errors
///
/// [`Error::Rejected`] after a bad request was answered with its status;
/// [`Error::Io`] when the connection failed; [`Error::ResponseBody`] when a
/// response body failed after its head was sent (the connection is then
/// aborted); [`Error::IncompleteHead`] when the peer closed mid-head.
pub fn serve_connection<S: HttpService>(
    connection: Connection,
    service: S,
    options: &HttpOptions,
) -> impl std::future::Future<Output = Result<(), Error>> + use<'_, S> {
    protocol::serve(connection, service, options)
}

/// Serves HTTP/3 on a multiplexed (QUIC) `connection` with `service` until
/// the connection ends: the same application contract as
/// [`serve_connection`], with requests of version `HTTP/3`.
///
/// The connection's close signal starts a graceful close: GOAWAY, the
/// requests already accepted finish, then the connection closes. The
/// keep-alive timeout does the same on an idle connection.
///
/// # Errors
///
/// [`Error::Http3`] when the connection fails other than by a clean close
/// (`H3_NO_ERROR`); [`Error::Service`] when the service fails to become
/// ready.
#[cfg(feature = "http3")]
pub async fn serve_multiplexed<S: HttpService>(
    connection: kite_transport_core::MultiplexedConnection,
    service: S,
    options: &HttpOptions,
) -> Result<(), Error> {
    let (io, context) = connection.into_parts();
    let close = context.close_signal().clone();
    let served = h3::serve(io, served::ServedConnection::new(context, options), service).await;
    if let Err(e) = &served {
        close.set_end_reason(e.end_reason());
    }
    served
}
