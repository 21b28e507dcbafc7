//! The server: endpoints, accept loops, and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use http_body::Body;
use kite_connection_middleware::{ConnectionBuilder, ConnectionError, ConnectionMiddleware, ConnectionPipeline};
use kite_http_core::{serve_connection, BoxError, RequestBody};
use kite_transport_core::{Connection, ConnectionExecutor, Endpoint, Listener, Transport};
use tower_service::Service;

use crate::address::{self, endpoint_url};
use crate::tracker::Tracker;
use crate::{ListenAddress, ServerError, ServerOptions, ShutdownHandle};

/// The endpoint used when none is configured.
pub const DEFAULT_URL: &str = "http://localhost:5000";

/// Configures a [`Server`]: endpoints, options, transport and connection
/// middleware. Made by [`Server::builder`].
///
/// Endpoints given in code ([`listen`](Self::listen),
/// [`listen_unix`](Self::listen_unix)) take precedence over
/// [`urls`](Self::urls), with a warning when both are given, as in Kestrel.
/// With neither, the server listens on `http://localhost:5000`.
pub struct ServerBuilder {
    options: ServerOptions,
    endpoints: Vec<ListenAddress>,
    urls: Vec<String>,
    transport: Option<Arc<dyn Transport>>,
    middleware: Vec<Arc<dyn ConnectionMiddleware>>,
}

impl ServerBuilder {
    /// Listens on an IP address and port; port 0 picks a free port.
    pub fn listen(mut self, addr: impl Into<std::net::SocketAddr>) -> Self {
        self.endpoints.push(ListenAddress::Ip(addr.into()));
        self
    }

    /// Listens on a Unix domain socket. A stale socket file is replaced at
    /// start; the file is removed at shutdown.
    pub fn listen_unix(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.endpoints.push(ListenAddress::Unix(path.into()));
        self
    }

    /// Listens on an address already parsed.
    pub fn listen_address(mut self, address: ListenAddress) -> Self {
        self.endpoints.push(address);
        self
    }

    /// Listens on URLs in Kestrel's forms (see [`ListenAddress`]); each item
    /// may hold several separated by `;`. Default: `http://localhost:5000`.
    pub fn urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for item in urls {
            self.urls.extend(item.as_ref().split(';').map(str::trim).filter(|u| !u.is_empty()).map(String::from));
        }
        self
    }

    /// Sets every option at once. Default: [`ServerOptions::default`].
    pub fn options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the limits. Default: [`Limits::default`](kite_http_core::Limits).
    pub fn limits(mut self, limits: kite_http_core::Limits) -> Self {
        self.options.limits = limits;
        self
    }

    /// How long graceful shutdown waits before aborting. Default: 30 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.options.shutdown_timeout = timeout;
        self
    }

    /// Whether SIGINT and SIGTERM start a graceful shutdown. Default: `true`.
    pub fn handle_signals(mut self, enabled: bool) -> Self {
        self.options.handle_signals = enabled;
        self
    }

    /// Uses `transport` for every endpoint. Default: the sockets transport
    /// when the `sockets` feature is on.
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// Appends a connection middleware for every endpoint; the first added
    /// is outermost (nearest the transport). Default: none.
    pub fn connection_middleware(mut self, middleware: impl ConnectionMiddleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// Binds every endpoint. Nothing is left bound if any fails.
    ///
    /// # Errors
    ///
    /// [`ServerError::InvalidUrl`] for a URL that cannot be bound,
    /// [`ServerError::Bind`] when an address is taken or unavailable,
    /// [`ServerError::NoTransport`] without a transport.
    pub async fn bind(self) -> Result<Server, ServerError> {
        let transport = match self.transport {
            Some(transport) => transport,
            None => default_transport()?,
        };
        let mut addresses = self.endpoints;
        if addresses.is_empty() {
            let urls = if self.urls.is_empty() { vec![DEFAULT_URL.to_string()] } else { self.urls };
            for url in &urls {
                addresses.push(url.parse()?);
            }
        } else if !self.urls.is_empty() {
            tracing::warn!(
                urls = %self.urls.join(";"),
                "Overriding address(es) given as urls: binding to the endpoints configured in code instead"
            );
        }
        let mut listeners = Vec::new();
        for address in &addresses {
            listeners.extend(address::bind(transport.as_ref(), address).await?);
        }
        for listener in &listeners {
            tracing::debug!(address = %endpoint_url(listener.local_endpoint()), "endpoint bound");
        }
        Ok(Server {
            listeners,
            transport_name: transport.name(),
            options: self.options,
            middleware: self.middleware,
            shutdown: ShutdownHandle::new(),
        })
    }
}

#[cfg(feature = "sockets")]
fn default_transport() -> Result<Arc<dyn Transport>, ServerError> {
    Ok(Arc::new(kite_transport_sockets::SocketTransport::default()))
}

#[cfg(not(feature = "sockets"))]
fn default_transport() -> Result<Arc<dyn Transport>, ServerError> {
    Err(ServerError::NoTransport)
}

/// A bound server, ready to serve an application.
///
/// # Examples
///
/// ```no_run
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use kite_server::{RequestBody, Server};
///
/// # async fn run() -> Result<(), kite_server::ServerError> {
/// let server = Server::builder().urls(["http://127.0.0.1:0"]).bind().await?;
/// println!("listening on {}", server.addresses()[0]);
/// server.serve(kite_server::service_fn(|_req: Request<RequestBody>| async {
///     Ok::<_, Infallible>(Response::new(String::from("Hello, World!")))
/// })).await
/// # }
/// ```
pub struct Server {
    listeners: Vec<Box<dyn Listener>>,
    transport_name: &'static str,
    options: ServerOptions,
    middleware: Vec<Arc<dyn ConnectionMiddleware>>,
    shutdown: ShutdownHandle,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addresses", &self.addresses()).field("transport", &self.transport_name).finish()
    }
}

impl Server {
    /// A builder with default options and no endpoints.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            options: ServerOptions::default(),
            endpoints: Vec::new(),
            urls: Vec::new(),
            transport: None,
            middleware: Vec::new(),
        }
    }

    /// The bound addresses as URLs, with real ports: `http://127.0.0.1:54321`,
    /// `http://[::1]:54321`, `http://unix:/run/kite.sock`.
    pub fn addresses(&self) -> Vec<String> {
        self.listeners.iter().map(|l| endpoint_url(l.local_endpoint())).collect()
    }

    /// The bound endpoints.
    pub fn local_endpoints(&self) -> Vec<Endpoint> {
        self.listeners.iter().map(|l| l.local_endpoint().clone()).collect()
    }

    /// The name of the transport in use.
    pub fn transport_name(&self) -> &'static str {
        self.transport_name
    }

    /// A handle that starts graceful shutdown.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Serves `service` on every endpoint until shutdown (a signal, when
    /// enabled, or the [`ShutdownHandle`]), then shuts down gracefully: it
    /// stops accepting, lets in-flight requests finish with
    /// `Connection: close`, closes idle connections, and aborts what is
    /// left after the shutdown timeout. The service is cloned per
    /// connection; it need not be `Sync`.
    ///
    /// # Errors
    ///
    /// None today: connection failures are logged, not returned.
    pub async fn serve<S, B>(self, service: S) -> Result<(), ServerError>
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let http_options = Arc::new(self.options.http_options());
        let mut builder = ConnectionBuilder::new();
        for middleware in self.middleware {
            builder = builder.use_arc(middleware);
        }
        // Locked only to clone the service, once per connection, so a
        // service need not be `Sync` (tower's BoxCloneService is not).
        let service = std::sync::Mutex::new(service);
        let pipeline = builder.run(move |connection: Connection| {
            let service = service.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
            let options = Arc::clone(&http_options);
            async move { serve_connection(connection, service, &options).await.map_err(http_error) }
        });

        if self.options.handle_signals {
            let handle = self.shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = crate::shutdown::signal() => {
                        tracing::info!("Application is shutting down...");
                        handle.shutdown();
                    }
                    _ = handle.wait() => {}
                }
            });
        }

        let tracker = Arc::new(Tracker::default());
        let mut accept_loops = Vec::new();
        for listener in self.listeners {
            accept_loops.push(tokio::spawn(accept_loop(
                listener,
                pipeline.clone(),
                Arc::clone(&tracker),
                self.shutdown.clone(),
            )));
        }
        self.shutdown.wait().await;
        for accept_loop in accept_loops {
            // Each loop drops its listener when it sees the shutdown.
            let _ = accept_loop.await;
        }

        tracker.request_close_all();
        let timeout = self.options.shutdown_timeout;
        if tokio::time::timeout(timeout, tracker.wait_empty()).await.is_err() {
            tracing::warn!(
                connections = tracker.len(),
                ?timeout,
                "Some connections failed to close gracefully during server shutdown; aborting them"
            );
            tracker.abort_all();
            let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait_empty()).await;
        }
        Ok(())
    }
}

async fn accept_loop(
    mut listener: Box<dyn Listener>,
    pipeline: ConnectionPipeline,
    tracker: Arc<Tracker>,
    shutdown: ShutdownHandle,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            accepted = listener.accept() => accepted,
        };
        let connection = match accepted {
            Ok(connection) => {
                backoff = Duration::from_millis(5);
                connection
            }
            Err(e) if is_transient(&e) => {
                tracing::debug!(error = %e, "accept failed for one connection");
                continue;
            }
            Err(e) => {
                // A full file table and the like: back off instead of spinning.
                tracing::error!(error = %e, ?backoff, endpoint = %listener.local_endpoint(), "accept failed; backing off");
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let id = connection.context().id();
        let close = connection.context().close_signal().clone();
        let span = tracing::debug_span!("connection", connection_id = %id, remote = %connection.context().remote());
        let pipeline = pipeline.clone();
        // A transport with threads of its own (mio) runs the task there.
        let executor = connection.context().features().get::<ConnectionExecutor>().cloned();
        tracker.spawn(
            id,
            close,
            executor,
            tracing::Instrument::instrument(
                async move {
                    tracing::debug!("connection started");
                    match pipeline.handle(connection).await {
                        Ok(()) => tracing::debug!("connection closed"),
                        Err(e) => tracing::debug!(error = %e, "connection ended with an error"),
                    }
                },
                span,
            ),
        );
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted | WouldBlock)
}

fn http_error(error: kite_http_core::Error) -> ConnectionError {
    match error {
        kite_http_core::Error::Io(e) => ConnectionError::Io(e),
        other => ConnectionError::other(other),
    }
}
