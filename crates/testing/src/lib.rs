//! Kite without sockets: an in-memory transport and a [`TestServer`].
//!
//! [`MemoryTransport`] is a [`Transport`](kite_transport_core::Transport)
//! whose connections are tokio duplex pipes. [`TestServer`] runs any
//! `tower::Service` (an axum `Router` included) on Kite's HTTP core over
//! it, and [`TestClient`] sends it real HTTP/1.1 with hyper's client. Both
//! are written only against Kite's public traits, so they double as the
//! example of building a custom server: bind a transport, run each
//! connection through a `ConnectionBuilder` pipeline, end the pipeline in
//! `serve_connection`.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use kite_http_core::RequestBody;
//! use kite_testing::TestServer;
//!
//! /// Echoes the request body.
//! #[derive(Clone)]
//! struct Echo;
//! impl tower_service::Service<Request<RequestBody>> for Echo {
//!     type Response = Response<RequestBody>;
//!     type Error = Infallible;
//!     type Future = std::future::Ready<Result<Response<RequestBody>, Infallible>>;
//!     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
//!         std::task::Poll::Ready(Ok(()))
//!     }
//!     fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
//!         std::future::ready(Ok(Response::new(request.into_body())))
//!     }
//! }
//!
//! let server = TestServer::start(Echo).await;
//! let mut client = server.client().await.unwrap();
//! for word in ["one", "two"] {
//!     let request = Request::post("/").body(Full::new(Bytes::from(word))).unwrap();
//!     assert_eq!(client.send(request).await.unwrap().body(), word);
//! }
//! # });
//! ```
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod memory;
mod server;

pub use memory::{MemoryListener, MemoryTransport, TRANSPORT_NAME};
pub use server::{TestClient, TestError, TestServer};
