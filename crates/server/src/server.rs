//! The server: endpoints, accept loops, and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use http_body::Body;
use kite_connection_middleware::tls::TlsMiddleware;
use kite_connection_middleware::{ConnectionBuilder, ConnectionMiddleware, ConnectionPipeline};
use kite_http_core::{HttpService, Protocols};
use kite_transport_core::{ConnectionExecutor, Endpoint, Listener};

use crate::address::endpoint_url;
use crate::handler::HttpHandler;
use crate::host_filter::{AllowedHosts, HostFilter};
use crate::listen::Step;
use crate::metrics::{ConnectionMetrics, HandshakeCompleted, HandshakeStarted};
use crate::reload::{ReloadSource, Running, RunningSet};
use crate::tracker::Tracker;
use crate::{ServerBuilder, ServerError, ServerOptions, ShutdownHandle};

/// A bound listener with its endpoint's settings.
pub(crate) struct BoundListener {
    pub listener: Box<dyn Listener>,
    /// The TLS middleware of an HTTPS endpoint.
    pub tls: Option<TlsMiddleware>,
    pub protocols: Protocols,
    /// The endpoint's own chain, TLS among it.
    pub steps: Vec<Step>,
    /// The endpoint's name in the configuration.
    pub name: Option<String>,
    /// What the configuration said of it, to tell a change on reload.
    pub definition: Option<String>,
}

/// A bound endpoint, as [`Server::endpoints`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundEndpoint {
    /// The endpoint's name in the configuration (`Endpoints:{Name}`), if
    /// it came from there.
    pub name: Option<String>,
    /// The URL with the real port: `https://127.0.0.1:5001`.
    pub url: String,
    /// The HTTP versions it speaks.
    pub protocols: Protocols,
}

/// A bound server, ready to serve an application.
///
/// # Examples
///
/// ```no_run
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use kite_server::{RequestBody, Server};
/// /// use kite_server::{RequestBody, Server};
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
    listeners: Vec<BoundListener>,
    transport_name: &'static str,
    options: ServerOptions,
    middleware: Vec<Arc<dyn ConnectionMiddleware>>,
    after_tls: Vec<Arc<dyn ConnectionMiddleware>>,
    allowed_hosts: Option<Arc<AllowedHosts>>,
    reload: Option<ReloadSource>,
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
        ServerBuilder::new()
    }

    pub(crate) fn new(
        listeners: Vec<BoundListener>,
        transport_name: &'static str,
        options: ServerOptions,
        middleware: Vec<Arc<dyn ConnectionMiddleware>>,
        after_tls: Vec<Arc<dyn ConnectionMiddleware>>,
        allowed_hosts: Option<Vec<String>>,
        reload: Option<ReloadSource>,
    ) -> Self {
        let allowed_hosts = allowed_hosts.as_deref().and_then(AllowedHosts::new).map(Arc::new);
        Self {
            listeners,
            transport_name,
            options,
            middleware,
            after_tls,
            allowed_hosts,
            reload,
            shutdown: ShutdownHandle::new(),
        }
    }

    /// The bound addresses as URLs, with real ports: `http://127.0.0.1:54321`,
    /// `https://[::1]:54321`, `http://unix:/run/kite.sock`.
    pub fn addresses(&self) -> Vec<String> {
        self.listeners.iter().map(|l| endpoint_url(l.listener.local_endpoint(), l.tls.is_some())).collect()
    }

    /// Every bound endpoint: its configuration name (if it came from the
    /// configuration), its URL, and the HTTP versions it speaks.
    pub fn endpoints(&self) -> Vec<BoundEndpoint> {
        self.listeners
            .iter()
            .map(|l| BoundEndpoint {
                name: l.name.clone(),
                url: endpoint_url(l.listener.local_endpoint(), l.tls.is_some()),
                protocols: l.protocols,
            })
            .collect()
    }

    /// The bound endpoints.
    pub fn local_endpoints(&self) -> Vec<Endpoint> {
        self.listeners.iter().map(|l| l.listener.local_endpoint().clone()).collect()
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
    pub async fn serve<S>(self, service: S) -> Result<(), ServerError>
    where
        S: HttpService + Clone + Send + 'static,
        S::Future: Send,
        S::Body: Send + 'static,
        <S::Body as Body>::Data: Send,
    {
        let http_options = self.options.http_options();
        let upgrades = http_options.clone();
        // The application, behind the host filter when AllowedHosts is set.
        type Finish = Box<dyn Fn(ConnectionBuilder, Protocols) -> ConnectionPipeline + Send + Sync>;
        let finish: Finish = match self.allowed_hosts.clone() {
            Some(allowed) => {
                let handler = HttpHandler::new(HostFilter { inner: service, allowed: Some(allowed) }, http_options);
                Box::new(move |builder, protocols| builder.run(handler.with_protocols(protocols)))
            }
            None => {
                let handler = HttpHandler::new(service, http_options);
                Box::new(move |builder, protocols| builder.run(handler.with_protocols(protocols)))
            }
        };
        // One pipeline per endpoint: the server's middleware, the
        // endpoint's chain (TLS where it was placed), the server's
        // after-TLS middleware, then HTTP.
        let (middleware, after_tls) = (self.middleware.clone(), self.after_tls.clone());
        let pipeline_for = move |bound: &BoundListener| {
            let mut builder = ConnectionBuilder::new();
            for middleware in &middleware {
                builder = builder.use_arc(Arc::clone(middleware));
            }
            for step in &bound.steps {
                builder = match (step, &bound.tls) {
                    (Step::Middleware(middleware), _) => builder.use_arc(Arc::clone(middleware)),
                    (Step::Tls, Some(tls)) => builder.use_(HandshakeStarted).use_(tls.clone()).use_(HandshakeCompleted),
                    (Step::Tls, None) => builder,
                };
            }
            for middleware in &after_tls {
                builder = builder.use_arc(Arc::clone(middleware));
            }
            finish(builder, bound.protocols)
        };
        let launcher = Launcher {
            pipelines: Arc::new(pipeline_for),
            limit: ConnectionLimit::new(self.options.limits.max_concurrent_connections),
        };

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

        let running: RunningSet =
            Arc::new(std::sync::Mutex::new(self.listeners.into_iter().map(|bound| launcher.launch(bound)).collect()));
        let watcher = self.reload.map(|source| {
            tokio::spawn(crate::reload::watch(source, Arc::clone(&running), launcher.clone(), self.shutdown.clone()))
        });
        // The upgraded-connection gauge, sampled on the heartbeat's beat.
        let http_options = upgrades;
        let sampler = tokio::spawn(async move {
            let mut beat = tokio::time::interval(Duration::from_secs(1));
            loop {
                beat.tick().await;
                metrics::gauge!("kite.upgraded_connections").set(http_options.upgraded_connections() as f64);
            }
        });
        self.shutdown.wait().await;
        sampler.abort();
        if let Some(watcher) = watcher {
            let _ = watcher.await;
        }
        let endpoints = std::mem::take(&mut *running.lock().unwrap_or_else(|e| e.into_inner()));
        for endpoint in &endpoints {
            endpoint.stop.shutdown();
        }
        let mut trackers = Vec::new();
        for endpoint in endpoints {
            // Each loop drops its listener when it sees the stop.
            let _ = endpoint.task.await;
            trackers.push(endpoint.tracker);
        }

        for tracker in &trackers {
            tracker.request_close_all();
        }
        let timeout = self.options.shutdown_timeout;
        if tokio::time::timeout(timeout, wait_all_empty(&trackers)).await.is_err() {
            tracing::warn!(
                connections = trackers.iter().map(|t| t.len()).sum::<usize>(),
                ?timeout,
                "Some connections failed to close gracefully during server shutdown; aborting them"
            );
            for tracker in &trackers {
                tracker.abort_all();
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), wait_all_empty(&trackers)).await;
        }
        Ok(())
    }
}

async fn accept_loop(
    mut listener: Box<dyn Listener>,
    pipeline: ConnectionPipeline,
    tracker: Arc<Tracker>,
    limit: ConnectionLimit,
    shutdown: ShutdownHandle,
) {
    let mut backoff = Duration::from_millis(5);
    // The endpoint's metric tags, made once.
    let endpoint_labels = crate::metrics::endpoint_labels(listener.local_endpoint());
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
        let labels = endpoint_labels.clone();
        let mut metrics = ConnectionMetrics::accepted(labels.clone());
        let Some(permit) = limit.try_acquire() else {
            // Kestrel's ConnectionLimitMiddleware: close at once, warn, count.
            tracing::warn!(
                connection_id = %id,
                limit = limit.max,
                "Connection processing ended abnormally: MaxConcurrentConnections reached; the connection is closed"
            );
            crate::metrics::rejected_connection(labels);
            drop(connection);
            continue;
        };
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
                    let _permit = permit;
                    metrics.started();
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

async fn wait_all_empty(trackers: &[Arc<Tracker>]) {
    for tracker in trackers {
        tracker.wait_empty().await;
    }
}

/// Starts an endpoint's accept loop with its pipeline; the reload watcher
/// uses it for endpoints bound later.
#[derive(Clone)]
pub(crate) struct Launcher {
    pipelines: Arc<dyn Fn(&BoundListener) -> ConnectionPipeline + Send + Sync>,
    limit: ConnectionLimit,
}

impl Launcher {
    pub fn launch(&self, bound: BoundListener) -> Running {
        let pipeline = (self.pipelines)(&bound);
        let tracker = Arc::new(Tracker::default());
        let stop = ShutdownHandle::new();
        let url = endpoint_url(bound.listener.local_endpoint(), bound.tls.is_some());
        let task =
            tokio::spawn(accept_loop(bound.listener, pipeline, Arc::clone(&tracker), self.limit.clone(), stop.clone()));
        Running { name: bound.name, definition: bound.definition, url, stop, task, tracker }
    }
}

/// MaxConcurrentConnections across a server's endpoints. A connection
/// holds its permit for as long as its task runs; an upgraded connection's
/// task ends at the upgrade, so it leaves this count.
#[derive(Clone, Debug)]
struct ConnectionLimit {
    active: Arc<std::sync::atomic::AtomicU64>,
    max: Option<u64>,
}

impl ConnectionLimit {
    fn new(max: Option<u64>) -> Self {
        Self { active: Arc::default(), max }
    }

    fn try_acquire(&self) -> Option<ConnectionPermit> {
        use std::sync::atomic::Ordering;
        let max = self.max.unwrap_or(u64::MAX);
        self.active.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        Some(ConnectionPermit { active: Arc::clone(&self.active) })
    }
}

/// One connection's place in the count.
struct ConnectionPermit {
    active: Arc<std::sync::atomic::AtomicU64>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.active.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}
