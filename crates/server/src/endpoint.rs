//! An endpoint's life, in one place: bind (its TLS middleware and its
//! listeners), launch (its connection pipeline and accept loop), accept
//! (the connection limit, spans, metrics), and stop. The builder binds
//! through it, the server launches and stops through it, and a
//! configuration reload does both through it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body::Body;
use kite_connection_middleware::tls::TlsMiddleware;
use kite_connection_middleware::{ConnectionBuilder, ConnectionMiddleware, ConnectionPipeline};
use kite_http_core::{HttpOptions, HttpService, Protocols};
use kite_transport_core::{ConnectionExecutor, Listener, Transport};

use crate::address::{self, endpoint_url};
use crate::config::ConfigError;
use crate::handler::HttpHandler;
use crate::host_filter::{AllowedHosts, HostFilter};
use crate::listen::{ListenOptions, Step};
use crate::metrics::{ConnectionMetrics, HandshakeCompleted, HandshakeStarted};
use crate::tracker::Tracker;
use crate::{ServerError, ShutdownHandle};

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

impl BoundListener {
    /// The bound URL, with the real port.
    pub fn url(&self) -> String {
        endpoint_url(self.listener.local_endpoint(), self.tls.is_some())
    }
}

/// Binds one endpoint: its TLS middleware (ALPN narrowed to what it
/// speaks), then its listeners (two for `localhost`).
pub(crate) async fn bind(
    transport: &dyn Transport,
    endpoint: &ListenOptions,
    default_protocols: Protocols,
) -> Result<Vec<BoundListener>, ServerError> {
    let protocols = endpoint.protocols.unwrap_or(default_protocols);
    // ALPN offers what the endpoint speaks.
    let tls = endpoint.tls.clone().map(|options| match protocols {
        Protocols::Http1 => options.alpn_protocols(["http/1.1"]),
        Protocols::Http2 => options.alpn_protocols(["h2"]),
        Protocols::Http1AndHttp2 => options,
    });
    let tls = match tls {
        Some(options) => Some(
            TlsMiddleware::new(options)
                .map_err(|source| ServerError::Tls { endpoint: endpoint_label(endpoint), source })?,
        ),
        None => None,
    };
    let bound = address::bind(transport, endpoint.address(), tls.is_some()).await;
    // A configuration endpoint's failure names the file and the key.
    let bound = bound.map_err(|error| match (&endpoint.origin, error) {
        (Some(origin), ServerError::Bind { address, source }) => ServerError::Config(ConfigError {
            message: format!("Failed to bind to address {address}: {source}"),
            fix: "choose a free port, or stop what is using it".into(),
            ..origin.clone()
        }),
        (_, error) => error,
    })?;
    let mut listeners = Vec::new();
    for listener in bound {
        if let (Some(mode), Some(path)) = (endpoint.unix_permissions, listener.local_endpoint().as_unix()) {
            set_permissions(path, mode)?;
        }
        tracing::debug!(address = %endpoint_url(listener.local_endpoint(), tls.is_some()), "endpoint bound");
        listeners.push(BoundListener {
            listener,
            tls: tls.clone(),
            protocols,
            steps: endpoint.steps.clone(),
            name: endpoint.name.clone(),
            definition: endpoint.definition.clone(),
        });
    }
    Ok(listeners)
}

/// How an endpoint is named in errors: its configuration name and URL.
fn endpoint_label(endpoint: &ListenOptions) -> String {
    let url = format!("https{}", endpoint.address().to_string().trim_start_matches("http"));
    match endpoint.name() {
        Some(name) => format!("endpoint {name} ({url})"),
        None => url,
    }
}

#[cfg(unix)]
fn set_permissions(path: &std::path::Path, mode: u32) -> Result<(), ServerError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|source| ServerError::Bind { address: format!("http://unix:{}", path.display()), source })
}

#[cfg(not(unix))]
fn set_permissions(_: &std::path::Path, _: u32) -> Result<(), ServerError> {
    Ok(())
}

/// The server-wide parts of every endpoint's pipeline.
pub(crate) struct PipelineParts {
    /// Middleware before each endpoint's own chain.
    pub middleware: Vec<Arc<dyn ConnectionMiddleware>>,
    /// Middleware after TLS (after the others on plain endpoints).
    pub after_tls: Vec<Arc<dyn ConnectionMiddleware>>,
    /// AllowedHosts, when set.
    pub allowed_hosts: Option<Arc<AllowedHosts>>,
    /// MaxConcurrentConnections across the server's endpoints.
    pub max_connections: Option<u64>,
}

/// Starts endpoints: builds each one's pipeline (the server's middleware,
/// the endpoint's chain with TLS where it was placed, the after-TLS
/// middleware, then HTTP) and runs its accept loop.
#[derive(Clone)]
pub(crate) struct Launcher {
    pipelines: Arc<dyn Fn(&BoundListener) -> ConnectionPipeline + Send + Sync>,
    limit: ConnectionLimit,
}

impl Launcher {
    /// A launcher serving `service` with `http` options.
    pub fn new<S>(service: S, http: HttpOptions, parts: PipelineParts) -> Self
    where
        S: HttpService + Clone + Send + 'static,
        S::Future: Send,
        S::Body: Send + 'static,
        <S::Body as Body>::Data: Send,
    {
        // The application, behind the host filter when AllowedHosts is set.
        type Finish = Box<dyn Fn(ConnectionBuilder, Protocols) -> ConnectionPipeline + Send + Sync>;
        let finish: Finish = match parts.allowed_hosts {
            Some(allowed) => {
                let handler = HttpHandler::new(HostFilter { inner: service, allowed: Some(allowed) }, http);
                Box::new(move |builder, protocols| builder.run(handler.with_protocols(protocols)))
            }
            None => {
                let handler = HttpHandler::new(service, http);
                Box::new(move |builder, protocols| builder.run(handler.with_protocols(protocols)))
            }
        };
        let (middleware, after_tls) = (parts.middleware, parts.after_tls);
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
        Self { pipelines: Arc::new(pipeline_for), limit: ConnectionLimit::new(parts.max_connections) }
    }

    /// Starts accepting on `bound`.
    pub fn launch(&self, bound: BoundListener) -> Running {
        let pipeline = (self.pipelines)(&bound);
        let tracker = Arc::new(Tracker::default());
        let stop = ShutdownHandle::new();
        let url = bound.url();
        let task =
            tokio::spawn(accept_loop(bound.listener, pipeline, Arc::clone(&tracker), self.limit.clone(), stop.clone()));
        Running { name: bound.name, definition: bound.definition, url, stop, task, tracker }
    }
}

/// One endpoint being served: its accept loop and its connections.
pub(crate) struct Running {
    pub name: Option<String>,
    pub definition: Option<String>,
    pub url: String,
    pub stop: ShutdownHandle,
    pub task: tokio::task::JoinHandle<()>,
    pub tracker: Arc<Tracker>,
}

impl Running {
    /// Stops accepting: the listener is closed when this returns. The
    /// connections go on; the returned tracker closes or aborts them.
    pub async fn stop_accepting(self) -> Arc<Tracker> {
        self.stop.shutdown();
        let _ = self.task.await;
        self.tracker
    }
}

/// Every running endpoint.
pub(crate) type RunningSet = Arc<std::sync::Mutex<Vec<Running>>>;

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

/// MaxConcurrentConnections across a server's endpoints. A connection
/// holds its permit for as long as its task runs; an upgraded connection's
/// task ends at the upgrade, so it leaves this count.
#[derive(Clone, Debug)]
struct ConnectionLimit {
    active: Arc<AtomicU64>,
    max: Option<u64>,
}

impl ConnectionLimit {
    fn new(max: Option<u64>) -> Self {
        Self { active: Arc::default(), max }
    }

    fn try_acquire(&self) -> Option<ConnectionPermit> {
        let max = self.max.unwrap_or(u64::MAX);
        self.active.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        Some(ConnectionPermit { active: Arc::clone(&self.active) })
    }
}

/// One connection's place in the count.
struct ConnectionPermit {
    active: Arc<AtomicU64>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}
