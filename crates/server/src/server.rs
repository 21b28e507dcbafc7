//! The server: endpoints, accept loops, and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use http_body::Body;
use kite_connection_middleware::ConnectionMiddleware;
use kite_http_core::{HttpService, Protocols};
use kite_transport_core::Endpoint;

use crate::endpoint::{BoundListener, Launcher, PipelineParts, RunningSet};
use crate::host_filter::AllowedHosts;
use crate::readiness::Readiness;
use crate::reload::ReloadSource;
use crate::tracker::Tracker;
use crate::{ServerError, ServerOptions, ShutdownHandle};

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
        // An HTTP/3 listener shares its URL with the TCP one beside it.
        let mut urls: Vec<String> = Vec::new();
        for url in self.listeners.iter().map(BoundListener::url) {
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
        urls
    }

    /// Every bound endpoint: its configuration name (if it came from the
    /// configuration), its URL, and the HTTP versions it speaks.
    pub fn endpoints(&self) -> Vec<BoundEndpoint> {
        self.listeners
            .iter()
            .map(|l| BoundEndpoint { name: l.name.clone(), url: l.url(), protocols: l.protocols })
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

    /// Duplicates of every listening socket, for a successor process that
    /// adopts them ([`handover::spawn_successor`](crate::handover::spawn_successor)).
    /// Call it before [`serve`](Self::serve); the server keeps accepting on
    /// its own copies until it is shut down.
    ///
    /// # Errors
    ///
    /// [`std::io::ErrorKind::Unsupported`] for a Unix socket endpoint (its
    /// file goes with this process); whatever duplicating reports.
    pub fn handover(&self) -> std::io::Result<Vec<crate::handover::HandedSocket>> {
        let mut handed = Vec::new();
        for bound in &self.listeners {
            let socket = match &bound.listener {
                crate::endpoint::Bound::Stream(listener) => crate::handover::hand_stream(listener.as_ref()),
                crate::endpoint::Bound::Multiplexed(listener) => crate::handover::hand_multiplexed(listener.as_ref()),
            };
            if let Some(socket) = socket {
                handed.push(socket?);
            }
        }
        Ok(handed)
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
        let upgrades = self.options.http.clone();
        let readiness = self.options.health_path.clone().map(|path| Arc::new(Readiness::new(path)));
        let parts = PipelineParts {
            middleware: self.middleware,
            after_tls: self.after_tls,
            allowed_hosts: self.allowed_hosts,
            readiness: readiness.clone(),
            acme: crate::acme_answers::AcmeAnswers::for_server(
                self.listeners.iter().filter_map(|l| l.tls.as_ref()),
                self.reload.is_some(),
            ),
            max_connections: self.options.http.limits.max_concurrent_connections,
        };
        let launcher = Launcher::new(service, self.options.http.clone(), parts);

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
        // A hand-over: the successor accepts, and the host stays healthy,
        // so accepting stops now and the probe goes on answering 200.
        // Otherwise the drain starts: the probe says so at once, and
        // accepting stops after the drain delay.
        if self.shutdown.is_handing_over() {
            tracing::info!("handing over: the successor accepts; this server stops accepting now");
        } else {
            if let Some(readiness) = &readiness {
                readiness.drain();
            }
            if !self.options.drain_delay.is_zero() {
                tracing::info!(delay = ?self.options.drain_delay, "draining: still accepting for the drain delay");
                tokio::time::sleep(self.options.drain_delay).await;
            }
        }
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
            trackers.push(endpoint.stop_accepting().await);
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

async fn wait_all_empty(trackers: &[Arc<Tracker>]) {
    for tracker in trackers {
        tracker.wait_empty().await;
    }
}
