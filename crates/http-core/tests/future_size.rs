//! The state an idle connection holds is its `serve_connection` future (its
//! buffers go back to a pool while it waits). This guards its size, so a
//! scratch array or a large value held across an await does not quietly
//! become part of every connection.

use std::convert::Infallible;

use http::{Request, Response};
use kite_http_core::{serve_connection, HttpOptions, RequestBody};
use kite_transport_core::{Connection, ConnectionContext, ConnectionId, Endpoint, PlainIo};

#[derive(Clone)]
struct Hello;

impl tower_service::Service<Request<RequestBody>> for Hello {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<RequestBody>) -> Self::Future {
        std::future::ready(Ok(Response::new(String::new())))
    }
}

/// The bound in bytes. It was 5,248 before the linger scratch buffer moved
/// into the pooled read buffer, 3,232 while a request's state (the
/// application's future, the body feeder, the response) lived inline, and
/// 552 while the HTTP/1.1 loop was nested `async fn`s; an idle HTTP/1.1
/// connection is now the connection's fields and a few flags (192).
const MAX_FUTURE_SIZE: usize = 256;

#[test]
fn a_connection_future_stays_small() {
    let (io, _peer) = tokio::io::duplex(16);
    let context = ConnectionContext::new(ConnectionId::next(), Endpoint::Unnamed, Endpoint::Unnamed, "memory");
    let options = HttpOptions::default();
    let future = serve_connection(Connection::new(Box::new(PlainIo(io)), context), Hello, &options);
    let size = std::mem::size_of_val(&future);
    eprintln!("serve_connection future: {size} bytes");
    assert!(size <= MAX_FUTURE_SIZE, "serve_connection's future grew to {size} bytes (bound {MAX_FUTURE_SIZE})");
}
