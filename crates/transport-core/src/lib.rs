//! Kite's transport contracts.
//!
//! A [`Transport`] binds an [`Endpoint`] and returns a [`Listener`]; the
//! listener yields [`Connection`]s: a byte stream ([`ConnectionIo`]) plus a
//! [`ConnectionContext`] (id, addresses, a [`CloseSignal`], and a typed map
//! of [`Features`] that connection middleware extends). Every other Kite
//! crate is written against these types, so a new transport, a new
//! middleware or a whole custom server plugs in without touching the rest.
//!
//! # Example: a connection over an in-memory pipe
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use kite_transport_core::{Connection, ConnectionContext, ConnectionId, Endpoint, PlainIo};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let (server_side, mut client_side) = tokio::io::duplex(1024);
//! let context = ConnectionContext::new(ConnectionId::next(), Endpoint::Unnamed, Endpoint::Unnamed, "memory");
//! let mut connection = Connection::new(Box::new(PlainIo(server_side)), context);
//!
//! client_side.write_all(b"ping").await.unwrap();
//! let mut buf = [0u8; 4];
//! connection.read_exact(&mut buf).await.unwrap();
//! assert_eq!(&buf, b"ping");
//! assert_eq!(connection.context().transport(), "memory");
//! # });
//! ```
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod admission;
mod connection;
mod context;
mod delegate;
mod end_reason;
mod endpoint;
mod executor;
mod features;
mod lifetime;
pub mod loop_executor;
pub mod multiplexed;
mod rewind;
mod setters;
pub mod tls;
mod transport;

pub use admission::{Admission, Admitted};
pub use connection::{Connection, ConnectionIo, PlainIo};
pub use context::{ConnectionContext, ConnectionId};
pub use end_reason::ConnectionEndReason;
pub use endpoint::{Endpoint, InheritedFd};
pub use executor::{AbortTask, BoxTask, ConnectionExecutor, TaskSpawner};
pub use features::Features;
pub use lifetime::{CloseSignal, CloseWatch};
pub use multiplexed::{MultiplexedConnection, MultiplexedListener, MultiplexedTransport};
pub use rewind::Rewind;

/// tokio, for [`delegate_async_write!`]'s expansion in other crates.
#[doc(hidden)]
pub use tokio as __tokio;
pub use transport::{Listener, Transport};

/// A boxed error from code a user plugs in: an application, a response
/// body, a connection handler or middleware. One definition for every
/// Kite crate, re-exported by the HTTP core and the connection middleware.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
