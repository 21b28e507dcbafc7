//! The middleware trait, the builder and the composed pipeline.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use kite_transport_core::Connection;

use crate::ConnectionError;

/// One step between the transport and the protocol: it receives each
/// connection with the rest of the chain, and may inspect or refuse the
/// connection, wrap its stream (TLS, logging), add features, and must call
/// [`Next::run`] to pass it on (Kestrel's `IConnectionBuilder.Use`).
///
/// # Examples
///
/// A middleware that refuses connections from one address:
///
/// ```
/// use async_trait::async_trait;
/// use kite_connection_middleware::{ConnectionError, ConnectionMiddleware, Next};
/// use kite_transport_core::{Connection, Endpoint};
///
/// struct DenyOne(std::net::IpAddr);
///
/// #[async_trait]
/// impl ConnectionMiddleware for DenyOne {
///     async fn on_connection(&self, connection: Connection, next: Next) -> Result<(), ConnectionError> {
///         if let Endpoint::Tcp(addr) = connection.context().remote() {
///             if addr.ip() == self.0 {
///                 return Err(ConnectionError::rejected(format!("{} is denied", addr.ip())));
///             }
///         }
///         next.run(connection).await
///     }
/// }
/// ```
#[async_trait]
pub trait ConnectionMiddleware: Send + Sync + 'static {
    /// Handles `connection`; call `next.run(connection)` to continue the
    /// chain, or return without calling it to end the connection.
    async fn on_connection(&self, connection: Connection, next: Next) -> Result<(), ConnectionError>;
}

/// The last step of a pipeline, which consumes the connection: the HTTP
/// core, or anything that speaks a protocol of its own.
///
/// Any `Fn(Connection) -> impl Future<Output = Result<(), ConnectionError>>`
/// is a handler.
#[async_trait]
pub trait ConnectionHandler: Send + Sync + 'static {
    /// Serves `connection` to its end.
    async fn handle(&self, connection: Connection) -> Result<(), ConnectionError>;
}

#[async_trait]
impl<F, Fut> ConnectionHandler for F
where
    F: Fn(Connection) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ConnectionError>> + Send + 'static,
{
    async fn handle(&self, connection: Connection) -> Result<(), ConnectionError> {
        (self)(connection).await
    }
}

struct Chain {
    middleware: Vec<Arc<dyn ConnectionMiddleware>>,
    terminal: Box<dyn ConnectionHandler>,
}

/// The rest of the chain after the current middleware.
pub struct Next {
    chain: Arc<Chain>,
    /// 32 bits, which packs beside the run future's state in every
    /// connection's task.
    index: u32,
}

impl Next {
    /// Passes `connection` to the next middleware, or to the terminal
    /// handler after the last one.
    ///
    /// The future owns the connection and the chain. It is an `async`
    /// block rather than an `async fn`, which would keep a second copy of
    /// its arguments for the connection's whole life.
    #[allow(clippy::manual_async_fn)] // deliberate, for the future's size
    pub fn run(self, connection: Connection) -> impl Future<Output = Result<(), ConnectionError>> + Send + 'static {
        async move {
            match self.chain.middleware.get(self.index as usize) {
                Some(middleware) => {
                    let next = Next { chain: Arc::clone(&self.chain), index: self.index + 1 };
                    middleware.on_connection(connection, next).await
                }
                None => self.chain.terminal.handle(connection).await,
            }
        }
    }

    /// How many middleware are left before the terminal handler.
    pub fn remaining(&self) -> usize {
        self.chain.middleware.len() - self.index as usize
    }
}

impl fmt::Debug for Next {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next").field("remaining", &self.remaining()).finish()
    }
}

/// Composes connection middleware into a [`ConnectionPipeline`], in
/// Kestrel's order: the first added is the outermost, nearest the
/// transport; the terminal handler given to [`run`](Self::run) is last.
///
/// So `ConnectionBuilder::new().use_(logging).use_(tls)` logs ciphertext,
/// and `.use_(tls).use_(logging)` logs plaintext.
///
/// # Examples
///
/// ```
/// use kite_connection_middleware::{ConnectionBuilder, ConnectionLogging};
/// use kite_transport_core::Connection;
///
/// let pipeline = ConnectionBuilder::new()
///     .use_(ConnectionLogging::new())
///     .run(|connection: Connection| async move {
///         drop(connection); // a protocol would serve it here
///         Ok(())
///     });
/// assert_eq!(pipeline.len(), 1);
/// ```
#[derive(Default)]
pub struct ConnectionBuilder {
    middleware: Vec<Arc<dyn ConnectionMiddleware>>,
}

impl ConnectionBuilder {
    /// An empty builder: connections go straight to the terminal handler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `middleware` after those already added.
    pub fn use_(mut self, middleware: impl ConnectionMiddleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// Appends a shared middleware, so one instance can serve several
    /// endpoints.
    pub fn use_arc(mut self, middleware: Arc<dyn ConnectionMiddleware>) -> Self {
        self.middleware.push(middleware);
        self
    }

    /// How many middleware have been added.
    pub fn len(&self) -> usize {
        self.middleware.len()
    }

    /// Whether no middleware has been added.
    pub fn is_empty(&self) -> bool {
        self.middleware.is_empty()
    }

    /// Finishes the chain with `terminal`.
    pub fn run(self, terminal: impl ConnectionHandler) -> ConnectionPipeline {
        ConnectionPipeline { chain: Arc::new(Chain { middleware: self.middleware, terminal: Box::new(terminal) }) }
    }
}

impl fmt::Debug for ConnectionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionBuilder").field("middleware", &self.middleware.len()).finish()
    }
}

/// A built chain, shared by every connection of an endpoint. Cloning is
/// cheap.
#[derive(Clone)]
pub struct ConnectionPipeline {
    chain: Arc<Chain>,
}

impl ConnectionPipeline {
    /// Runs `connection` through every middleware and the terminal handler.
    ///
    /// The future owns what it needs (it does not borrow the pipeline), so
    /// it can be made before it is spawned.
    ///
    /// A connection that ends in an error has its
    /// [`ConnectionEndReason`](kite_transport_core::ConnectionEndReason)
    /// recorded on its close signal, unless a layer recorded one first
    /// (see [`ConnectionError::end_reason`]).
    pub fn handle(&self, connection: Connection) -> impl Future<Output = Result<(), ConnectionError>> + Send + 'static {
        let close = connection.context().close_signal().clone();
        let run = Next { chain: Arc::clone(&self.chain), index: 0 }.run(connection);
        async move {
            let ended = run.await;
            if let Err(e) = &ended {
                close.set_end_reason(e.end_reason());
            }
            ended
        }
    }

    /// How many middleware the pipeline has, besides the terminal handler.
    pub fn len(&self) -> usize {
        self.chain.middleware.len()
    }

    /// Whether the pipeline has no middleware.
    pub fn is_empty(&self) -> bool {
        self.chain.middleware.is_empty()
    }
}

impl fmt::Debug for ConnectionPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPipeline").field("middleware", &self.len()).finish()
    }
}
