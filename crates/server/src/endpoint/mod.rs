//! An endpoint's life, in one place: bind (its TLS middleware and its
//! listeners), launch (its connection pipeline and accept loop), accept
//! (the connection limit, spans, metrics), and stop. The builder binds
//! through it, the server launches and stops through it, and a
//! configuration reload does both through it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use http_body::Body;
use kite_connection_middleware::tls::TlsMiddleware;
use kite_connection_middleware::{ConnectionBuilder, ConnectionMiddleware, ConnectionPipeline};
use kite_http_core::{HttpOptions, HttpService, Protocols};
use kite_transport_core::{
    Endpoint, Listener, MultiplexedConnection, MultiplexedListener, MultiplexedTransport, Transport,
};

mod accept;

use self::accept::{accept_loop, accept_multiplexed, ConnectionLimit};
use crate::address::{self, endpoint_url};
use crate::alt_svc::AltSvc;
use crate::config::ConfigError;
use crate::handler::HttpHandler;
use crate::host_filter::{AllowedHosts, HostFilter};
use crate::listen::{ListenOptions, Step};
use crate::metrics::HandshakeMetrics;
use crate::tracker::Tracker;
use crate::ListenAddress;
use crate::{ServerError, ShutdownHandle};

/// The transports a server binds with.
#[derive(Clone)]
pub(crate) struct Transports {
    /// TCP and Unix sockets (or the mio loops, or a user's own).
    pub stream: Arc<dyn Transport>,
    /// QUIC, for HTTP/3 endpoints; `None` without the `http3` feature.
    pub multiplexed: Option<Arc<dyn MultiplexedTransport>>,
}

/// What an endpoint listens with.
pub(crate) enum Bound {
    /// A byte-stream listener (TCP, Unix): HTTP/1.1 and HTTP/2.
    Stream(Box<dyn Listener>),
    /// A multiplexed listener (QUIC): HTTP/3.
    Multiplexed(Box<dyn MultiplexedListener>),
}

impl Bound {
    /// The address actually bound.
    pub fn local_endpoint(&self) -> &Endpoint {
        match self {
            Bound::Stream(listener) => listener.local_endpoint(),
            Bound::Multiplexed(listener) => listener.local_endpoint(),
        }
    }
}

/// A bound listener with its endpoint's settings.
pub(crate) struct BoundListener {
    pub listener: Bound,
    /// The TLS middleware of an HTTPS endpoint.
    pub tls: Option<TlsMiddleware>,
    pub protocols: Protocols,
    /// The endpoint's own chain, TLS among it.
    pub steps: Vec<Step>,
    /// The endpoint's name in the configuration.
    pub name: Option<String>,
    /// What the configuration said of it, to tell a change on reload.
    pub definition: Option<String>,
    /// The HTTP/3 port advertised in `Alt-Svc` on HTTP/1.1 and HTTP/2
    /// responses, for an endpoint that speaks all three.
    pub alt_svc: Option<u16>,
    /// The PROXY protocol, first in the chain.
    pub proxy_protocol: Option<kite_connection_middleware::proxy_protocol::ProxyProtocol>,
}

impl BoundListener {
    /// The bound URL, with the real port.
    pub fn url(&self) -> String {
        endpoint_url(self.listener.local_endpoint(), self.tls.is_some())
    }
}

/// Binds one endpoint: its TLS middleware (ALPN narrowed to what it
/// speaks), its TCP or Unix listeners (two for `localhost`), and for
/// HTTP/3 a QUIC listener on the same address and port of each.
pub(crate) async fn bind(
    transports: &Transports,
    endpoint: &ListenOptions,
    default_protocols: Protocols,
) -> Result<Vec<BoundListener>, ServerError> {
    let mut protocols = endpoint.protocols.unwrap_or(default_protocols);
    // HTTP/3 needs TLS. As in Kestrel, an endpoint that speaks the others
    // too serves them alone; one that speaks only HTTP/3 cannot start.
    if protocols.http3() && endpoint.tls.is_none() {
        if protocols == Protocols::Http3 {
            return Err(ServerError::InvalidUrl {
                url: endpoint_label(endpoint, false),
                reason: "the endpoint speaks only HTTP/3, which needs TLS: use an https URL (or use_https)".into(),
            });
        }
        tracing::info!(
            endpoint = %endpoint_label(endpoint, false),
            "HTTP/3 is not enabled for this endpoint: HTTP/3 requires HTTPS; it serves HTTP/1.1 and HTTP/2"
        );
        protocols = Protocols::Http1AndHttp2;
    }
    // ALPN offers what the endpoint speaks.
    let tls = endpoint.tls.clone().map(|options| match protocols {
        Protocols::Http1 => options.alpn_protocols(["http/1.1"]),
        Protocols::Http2 => options.alpn_protocols(["h2"]),
        _ => options,
    });
    let tls = match tls {
        Some(options) => Some(
            TlsMiddleware::new(options.observe(Arc::new(HandshakeMetrics)))
                .map_err(|source| ServerError::Tls { endpoint: endpoint_label(endpoint, true), source })?,
        ),
        None => None,
    };
    let mut streams = Vec::new();
    if protocols.tcp() {
        let bound = address::bind(transports.stream.as_ref(), endpoint.address(), tls.is_some()).await;
        // A configuration endpoint's failure names the file and the key.
        streams = bound.map_err(|error| in_config(endpoint, error))?;
    }
    let mut quic = Vec::new();
    if protocols.http3() {
        let tcp: Vec<std::net::SocketAddr> = streams.iter().filter_map(|l| l.local_endpoint().as_tcp()).collect();
        quic = bind_quic(transports, endpoint, tls.as_ref(), tcp).await.map_err(|error| in_config(endpoint, error))?;
    }
    let alt_svc = match (protocols, endpoint.disable_alt_svc) {
        (Protocols::Http1AndHttp2AndHttp3, false) => {
            quic.first().and_then(|l| l.local_endpoint().as_tcp()).map(|a| a.port())
        }
        _ => None,
    };
    let mut listeners = Vec::new();
    let all = streams.into_iter().map(Bound::Stream).chain(quic.into_iter().map(Bound::Multiplexed));
    for listener in all {
        if let (Some(mode), Some(path)) = (endpoint.unix_permissions, listener.local_endpoint().as_unix()) {
            set_permissions(path, mode)?;
        }
        let is_quic = matches!(listener, Bound::Multiplexed(_));
        tracing::debug!(
            address = %endpoint_url(listener.local_endpoint(), tls.is_some()),
            transport = if is_quic { "quic" } else { "stream" },
            "endpoint bound"
        );
        listeners.push(BoundListener {
            listener,
            tls: tls.clone(),
            protocols: if is_quic { Protocols::Http3 } else { protocols },
            steps: endpoint.steps.clone(),
            name: endpoint.name.clone(),
            definition: endpoint.definition.clone(),
            alt_svc: if is_quic { None } else { alt_svc },
            proxy_protocol: endpoint.proxy_protocol.clone(),
        });
    }
    Ok(listeners)
}

/// A configuration endpoint's bind failure names the file and the key.
fn in_config(endpoint: &ListenOptions, error: ServerError) -> ServerError {
    match (&endpoint.origin, error) {
        (Some(origin), ServerError::Bind { address, source }) => ServerError::Config(ConfigError {
            message: format!("Failed to bind to address {address}: {source}"),
            fix: "choose a free port, or stop what is using it".into(),
            ..origin.clone()
        }),
        (_, error) => error,
    }
}

/// Binds QUIC for an HTTP/3 endpoint: on each TCP listener's address and
/// port when it has them, otherwise on the endpoint's own addresses (for
/// `localhost` with port 0, the second takes the first one's port).
async fn bind_quic(
    transports: &Transports,
    endpoint: &ListenOptions,
    tls: Option<&TlsMiddleware>,
    tcp: Vec<std::net::SocketAddr>,
) -> Result<Vec<Box<dyn MultiplexedListener>>, ServerError> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    let Some(transport) = &transports.multiplexed else {
        return Err(ServerError::InvalidUrl {
            url: endpoint_label(endpoint, true),
            reason: "the endpoint speaks HTTP/3, and this build has no QUIC transport (kite's `http3` feature)".into(),
        });
    };
    let Some(tls) = tls else { return Ok(Vec::new()) };
    let config = tls
        .quic_server_config()
        .map_err(|source| ServerError::Tls { endpoint: endpoint_label(endpoint, true), source })?;
    let mut features = kite_transport_core::Features::new();
    features.insert(config);
    let addresses = if !tcp.is_empty() {
        tcp
    } else {
        match endpoint.address() {
            ListenAddress::Ip(addr) => vec![*addr],
            ListenAddress::AnyIp(port) => vec![SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), *port)],
            ListenAddress::Localhost(port) => vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), *port),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), *port),
            ],
            ListenAddress::Unix(_) | ListenAddress::Fd(_) => {
                return Err(ServerError::InvalidUrl {
                    url: endpoint_label(endpoint, true),
                    reason: "HTTP/3 runs over UDP and needs an IP address, not a Unix socket or an inherited fd".into(),
                })
            }
        }
    };
    let mut listeners: Vec<Box<dyn MultiplexedListener>> = Vec::new();
    let mut resolved = None;
    for mut addr in addresses {
        if addr.port() == 0 {
            if let Some(port) = resolved {
                addr.set_port(port);
            }
        }
        let bound = transport.bind(&Endpoint::Tcp(addr), &features).await;
        let listener = match bound {
            Ok(listener) => listener,
            // `localhost` without IPv6 serves IPv4 alone, as for TCP.
            Err(e) if addr.is_ipv6() && addr.ip().is_loopback() && !listeners.is_empty() => {
                tracing::warn!(error = %e, "IPv6 is not available; HTTP/3 on 127.0.0.1 only");
                continue;
            }
            Err(source) => {
                return Err(ServerError::Bind { address: format!("https://{addr} (UDP, for HTTP/3)"), source });
            }
        };
        resolved = listener.local_endpoint().as_tcp().map(|a| a.port());
        listeners.push(listener);
    }
    Ok(listeners)
}

/// How an endpoint is named in errors: its configuration name and URL.
fn endpoint_label(endpoint: &ListenOptions, https: bool) -> String {
    let url = endpoint.address().to_string();
    let url = if https { format!("https{}", url.trim_start_matches("http")) } else { url };
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
    /// The readiness probe, when set.
    pub readiness: Option<Arc<crate::readiness::Readiness>>,
    /// The HTTP-01 answers of the endpoints' ACME certificates, if any.
    pub acme: Option<Arc<crate::acme_answers::AcmeAnswers>>,
    /// MaxConcurrentConnections across the server's endpoints.
    pub max_connections: Option<u64>,
}

/// Builds an endpoint's last step: HTTP over the pipeline, with the
/// endpoint's protocols and its `Alt-Svc` port.
type Finish = Box<dyn Fn(ConnectionBuilder, Protocols, Option<u16>) -> ConnectionPipeline + Send + Sync>;

/// Builds an endpoint's pipeline from its chain, TLS, protocols and
/// `Alt-Svc` port.
type Pipelines = dyn Fn(&BoundSteps<'_>) -> ConnectionPipeline + Send + Sync;

/// What of a bound listener shapes its pipeline.
pub(crate) struct BoundSteps<'a> {
    steps: &'a [Step],
    tls: Option<&'a TlsMiddleware>,
    protocols: Protocols,
    alt_svc: Option<u16>,
    proxy_protocol: Option<&'a kite_connection_middleware::proxy_protocol::ProxyProtocol>,
}

/// Serves one HTTP/3 connection.
type ServeMultiplexed = Arc<dyn Fn(MultiplexedConnection) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Starts endpoints: builds each one's pipeline (the server's middleware,
/// the endpoint's chain with TLS where it was placed, the after-TLS
/// middleware, then HTTP) and runs its accept loop. A QUIC listener's
/// connections go straight to HTTP/3: connection middleware works on byte
/// streams, and QUIC's TLS is part of the transport.
#[derive(Clone)]
pub(crate) struct Launcher {
    pipelines: Arc<Pipelines>,
    multiplexed: ServeMultiplexed,
    limit: ConnectionLimit,
    /// Where a launched endpoint's ACME certificate joins the HTTP-01
    /// answers.
    acme: Option<Arc<crate::acme_answers::AcmeAnswers>>,
}

/// The HTTP step and the HTTP/3 server for one application.
fn serving<S>(service: S, http: HttpOptions) -> (Finish, ServeMultiplexed)
where
    S: HttpService + Clone + Send + 'static,
    S::Future: Send,
    S::Body: Send + 'static,
    <S::Body as Body>::Data: Send,
{
    let shared = Arc::new(Mutex::new(service.clone()));
    let handler = HttpHandler::new(service, http.clone());
    let finish: Finish = Box::new(move |builder, protocols, alt_svc| match alt_svc {
        None => builder.run(handler.with_protocols(protocols)),
        Some(port) => {
            let service = handler.service();
            let value = AltSvc::<S>::header(port);
            builder.run(HttpHandler::new(AltSvc { inner: service, value }, handler.options().protocols(protocols)))
        }
    });
    let multiplexed: ServeMultiplexed = Arc::new(move |connection| {
        let service = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let http = http.clone();
        Box::pin(async move {
            #[cfg(feature = "http3")]
            if let Err(e) = kite_http_core::serve_multiplexed(connection, service, &http).await {
                tracing::debug!(error = %e, "HTTP/3 connection ended with an error");
            }
            #[cfg(not(feature = "http3"))]
            drop((connection, service, http));
        })
    });
    (finish, multiplexed)
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
        // The application, behind the readiness probe and the host filter
        // when either is set.
        let acme = parts.acme.clone();
        let (finish, multiplexed) = match (parts.allowed_hosts, parts.readiness, parts.acme) {
            (None, None, None) => serving(service, http),
            (allowed, readiness, acme) => serving(HostFilter { inner: service, acme, allowed, readiness }, http),
        };
        let (middleware, after_tls) = (parts.middleware, parts.after_tls);
        let pipeline_for = move |bound: &BoundSteps<'_>| {
            let mut builder = ConnectionBuilder::new();
            if let Some(proxy_protocol) = bound.proxy_protocol {
                builder = builder.use_(proxy_protocol.clone());
            }
            for middleware in &middleware {
                builder = builder.use_arc(Arc::clone(middleware));
            }
            for step in bound.steps {
                builder = match (step, bound.tls) {
                    (Step::Middleware(middleware), _) => builder.use_arc(Arc::clone(middleware)),
                    (Step::Tls, Some(tls)) => builder.use_(tls.clone()),
                    (Step::Tls, None) => builder,
                };
            }
            for middleware in &after_tls {
                builder = builder.use_arc(Arc::clone(middleware));
            }
            finish(builder, bound.protocols, bound.alt_svc)
        };
        Self {
            pipelines: Arc::new(pipeline_for),
            multiplexed,
            limit: ConnectionLimit::new(parts.max_connections),
            acme,
        }
    }

    /// Starts accepting on `bound`.
    pub fn launch(&self, bound: BoundListener) -> Running {
        let tracker = Arc::new(Tracker::default());
        let stop = ShutdownHandle::new();
        let url = bound.url();
        let BoundListener { listener, tls, protocols, steps, name, definition, alt_svc, proxy_protocol } = bound;
        let (limit, tracked) = (self.limit.clone(), Arc::clone(&tracker));
        if let (Some(answers), Some(tls)) = (&self.acme, &tls) {
            answers.register(tls);
        }
        let task = match listener {
            Bound::Stream(listener) => {
                let shape = BoundSteps {
                    steps: &steps,
                    tls: tls.as_ref(),
                    protocols,
                    alt_svc,
                    proxy_protocol: proxy_protocol.as_ref(),
                };
                let pipeline = (self.pipelines)(&shape);
                tokio::spawn(accept_loop(listener, pipeline, tracked, limit, stop.clone()))
            }
            Bound::Multiplexed(listener) => {
                let serve = Arc::clone(&self.multiplexed);
                tokio::spawn(accept_multiplexed(listener, serve, tracked, limit, stop.clone()))
            }
        };
        Running { name, definition, url, stop, task, tracker }
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
