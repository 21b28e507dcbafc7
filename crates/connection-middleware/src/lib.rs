//! Kite's connection middleware: what runs between the transport and the
//! protocol.
//!
//! A [`ConnectionBuilder`] chains [`ConnectionMiddleware`] in Kestrel's
//! order (the first added is outermost) and ends in a
//! [`ConnectionHandler`], usually the HTTP core. The built
//! [`ConnectionPipeline`] handles every connection of an endpoint. Built-in:
//! [`ConnectionLogging`], which logs every read and write as a hex dump.
//!
//! # Example: a middleware of your own
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use async_trait::async_trait;
//! use kite_connection_middleware::{ConnectionBuilder, ConnectionError, ConnectionMiddleware, Next};
//! use kite_transport_core::{Connection, ConnectionContext, ConnectionId, Endpoint, PlainIo};
//!
//! /// Tags every connection with the name of the tenant it belongs to.
//! struct Tenant(&'static str);
//!
//! #[async_trait]
//! impl ConnectionMiddleware for Tenant {
//!     async fn on_connection(&self, mut connection: Connection, next: Next) -> Result<(), ConnectionError> {
//!         connection.context_mut().features_mut().insert(self.0);
//!         next.run(connection).await
//!     }
//! }
//!
//! let pipeline = ConnectionBuilder::new().use_(Tenant("blue")).run(|connection: Connection| async move {
//!     assert_eq!(connection.context().features().get::<&'static str>(), Some(&"blue"));
//!     Ok(())
//! });
//!
//! let (io, _peer) = tokio::io::duplex(64);
//! let ctx = ConnectionContext::new(ConnectionId::next(), Endpoint::Unnamed, Endpoint::Unnamed, "memory");
//! pipeline.handle(Connection::new(Box::new(PlainIo(io)), ctx)).await.unwrap();
//! # });
//! ```
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod client_hello;
mod error;
mod logging;
mod pipeline;
pub mod proxy_protocol;
pub mod tls;

pub use error::{BoxError, ConnectionError, HandshakeError};
pub use logging::{ConnectionLogging, LOG_TARGET};
pub use pipeline::{ConnectionBuilder, ConnectionHandler, ConnectionMiddleware, ConnectionPipeline, Next};
