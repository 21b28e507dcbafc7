//! Configuring and binding a server.

use std::sync::Arc;
use std::time::Duration;

use kite_connection_middleware::tls::{TlsError, TlsOptions};
use kite_connection_middleware::ConnectionMiddleware;
use kite_transport_core::{InheritedFd, MultiplexedTransport, Transport};

use crate::endpoint;
use crate::listen::{Configure, ConfigureHttps, ListenOptions};
use crate::reload::ReloadSource;
use crate::{ListenAddress, ListenUrl, Server, ServerError, ServerOptions};

/// The endpoint used when none is configured.
pub const DEFAULT_URL: &str = "http://localhost:5000";

/// Configures a [`Server`]: endpoints, options, TLS, transport and
/// connection middleware. Made by [`Server::builder`].
///
/// Endpoints given in code ([`listen`](Self::listen),
/// [`listen_tls`](Self::listen_tls), [`listen_unix`](Self::listen_unix))
/// take precedence over [`urls`](Self::urls), with a warning when both are
/// given, as in Kestrel. With neither, the server listens on
/// `http://localhost:5000`.
pub struct ServerBuilder {
    pub(crate) options: ServerOptions,
    endpoints: Vec<ListenOptions>,
    /// Endpoints from the configuration: they replace `urls` and add up
    /// with the endpoints in code.
    pub(crate) config_endpoints: Vec<ListenOptions>,
    urls: Vec<String>,
    endpoint_defaults: Option<Configure>,
    https_defaults: Option<ConfigureHttps>,
    transport: Option<Arc<dyn Transport>>,
    multiplexed: Option<Arc<dyn MultiplexedTransport>>,
    middleware: Vec<Arc<dyn ConnectionMiddleware>>,
    after_tls: Vec<Arc<dyn ConnectionMiddleware>>,
    pub(crate) allowed_hosts: Option<Vec<String>>,
    /// The configuration file, watched for changes when `reload_on_change`,
    /// and its stamp from when it was read.
    pub(crate) config_file: Option<(std::path::PathBuf, Option<crate::config::FileStamp>)>,
    reload_on_change: bool,
    reuse_port: bool,
    inherited: Option<crate::handover::Pool>,
}

impl Server {
    /// A builder with default options and no endpoints.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::new()
    }
}

impl ServerBuilder {
    pub(crate) fn new() -> Self {
        Self {
            options: ServerOptions::default(),
            endpoints: Vec::new(),
            config_endpoints: Vec::new(),
            urls: Vec::new(),
            endpoint_defaults: None,
            https_defaults: None,
            transport: None,
            multiplexed: None,
            middleware: Vec::new(),
            after_tls: Vec::new(),
            allowed_hosts: None,
            config_file: None,
            reload_on_change: true,
            reuse_port: false,
            inherited: None,
        }
    }

    /// A builder with this one's defaults and options but no endpoints: it
    /// re-reads the configuration on reload.
    pub(crate) fn template(&self) -> ServerBuilder {
        let mut template = ServerBuilder::new();
        template.options = self.options.clone();
        template.endpoint_defaults = self.endpoint_defaults.clone();
        template.https_defaults = self.https_defaults.clone();
        template
    }

    /// Whether a change to the configuration file rebinds the endpoints it
    /// names (Kestrel's `reloadOnChange`): changed and removed endpoints
    /// stop, their connections are closed gracefully (5 s, then aborted),
    /// new and changed ones are bound, and unchanged ones keep their
    /// connections. Certificate files are followed either way. Default:
    /// `true`.
    pub fn reload_on_change(mut self, enabled: bool) -> Self {
        self.reload_on_change = enabled;
        self
    }

    /// A new endpoint's options: the endpoint defaults, then `configure`.
    pub(crate) fn endpoint(
        &self,
        address: ListenAddress,
        configure: impl FnOnce(ListenOptions) -> ListenOptions,
    ) -> ListenOptions {
        let options = ListenOptions::new(address, self.https_defaults.clone());
        let options = match &self.endpoint_defaults {
            Some(defaults) => defaults(options),
            None => options,
        };
        configure(options)
    }

    /// Listens on an IP address and port; port 0 picks a free port.
    pub fn listen(self, addr: impl Into<std::net::SocketAddr>) -> Self {
        self.listen_with(addr, |listen| listen)
    }

    /// Listens on an IP address and port, with the endpoint's own options
    /// (Kestrel's `Listen(address, port, listenOptions => …)`).
    pub fn listen_with(
        mut self,
        addr: impl Into<std::net::SocketAddr>,
        configure: impl FnOnce(ListenOptions) -> ListenOptions,
    ) -> Self {
        let endpoint = self.endpoint(ListenAddress::Ip(addr.into()), configure);
        self.endpoints.push(endpoint);
        self
    }

    /// Listens for HTTPS on an IP address and port with `tls`.
    pub fn listen_tls(self, addr: impl Into<std::net::SocketAddr>, tls: TlsOptions) -> Self {
        self.listen_with(addr, |listen| listen.use_https(tls))
    }

    /// Listens on `localhost`: 127.0.0.1 and \[::1\] on one port.
    pub fn listen_localhost(self, port: u16) -> Self {
        self.listen_address_with(ListenAddress::Localhost(port), |listen| listen)
    }

    /// Listens on every interface: `[::]` dual-stack, or 0.0.0.0 where
    /// IPv6 is absent.
    pub fn listen_any_ip(self, port: u16) -> Self {
        self.listen_address_with(ListenAddress::AnyIp(port), |listen| listen)
    }

    /// Listens on a Unix domain socket. A stale socket file is replaced at
    /// start; the file is removed at shutdown. Set its mode with
    /// [`listen_address_with`](Self::listen_address_with) and
    /// [`ListenOptions::permissions`].
    pub fn listen_unix(self, path: impl Into<std::path::PathBuf>) -> Self {
        self.listen_address_with(ListenAddress::Unix(path.into()), |listen| listen)
    }

    /// Listens on an address already parsed, with TLS when `tls` is given.
    pub fn listen_address(self, address: ListenAddress, tls: Option<TlsOptions>) -> Self {
        self.listen_address_with(address, |listen| match tls {
            Some(tls) => listen.use_https(tls),
            None => listen,
        })
    }

    /// Listens on any address form, with the endpoint's own options.
    pub fn listen_address_with(
        mut self,
        address: ListenAddress,
        configure: impl FnOnce(ListenOptions) -> ListenOptions,
    ) -> Self {
        let endpoint = self.endpoint(address, configure);
        self.endpoints.push(endpoint);
        self
    }

    /// Listens on an inherited listening socket, TCP or Unix (Kestrel's
    /// `ListenHandle`). The server owns it from here on and closes it at
    /// shutdown. A raw descriptor from a parent process becomes an
    /// [`OwnedFd`](std::os::fd::OwnedFd) through the unsafe
    /// `OwnedFd::from_raw_fd`, whose caller vouches that nothing else uses
    /// it.
    pub fn listen_fd(self, fd: std::os::fd::OwnedFd) -> Self {
        self.listen_address_with(ListenAddress::Fd(InheritedFd::new(fd)), |listen| listen)
    }

    /// Listens on every socket systemd passed by socket activation
    /// ([`systemd::listen_fds`](crate::systemd::listen_fds)). Without them
    /// it adds nothing.
    pub fn listen_systemd(mut self) -> Self {
        for fd in crate::systemd::listen_fds() {
            self = self.listen_fd(fd);
        }
        self
    }

    /// Adjusts every endpoint created after this call (Kestrel's
    /// `ConfigureEndpointDefaults`); a later call replaces an earlier one.
    /// Endpoints from URLs and the configuration get it too. Default: none.
    pub fn configure_endpoint_defaults(
        mut self,
        configure: impl Fn(ListenOptions) -> ListenOptions + Send + Sync + 'static,
    ) -> Self {
        self.endpoint_defaults = Some(Arc::new(configure));
        self
    }

    /// Adjusts the TLS options of every HTTPS endpoint created after this
    /// call, and of `https://` URLs (Kestrel's `ConfigureHttpsDefaults`);
    /// a later call replaces an earlier one. Default: none, so an https
    /// URL without a certificate fails at bind.
    pub fn configure_https_defaults(
        mut self,
        configure: impl Fn(TlsOptions) -> TlsOptions + Send + Sync + 'static,
    ) -> Self {
        self.https_defaults = Some(Arc::new(configure));
        self
    }

    /// Refuses requests whose `Host` is not in `hosts` with 400 (the
    /// `AllowedHosts` setting): `*` turns filtering off, `*.example.com`
    /// matches subdomains, ports are ignored, and a request without a host
    /// passes. Default: no filtering.
    pub fn allowed_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_hosts = Some(hosts.into_iter().map(Into::into).collect());
        self
    }

    /// Listens on URLs in Kestrel's forms (see [`ListenUrl`]); each item
    /// may hold several separated by `;`. `https://` URLs use the
    /// [`https_defaults`](Self::https_defaults). Default:
    /// `http://localhost:5000`.
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

    /// The TLS options HTTPS endpoints start from, `https://` URLs among
    /// them: a shortcut for
    /// [`configure_https_defaults`](Self::configure_https_defaults) that
    /// replaces them with `tls`. Default: none, so an https URL fails at
    /// bind.
    pub fn https_defaults(self, tls: TlsOptions) -> Self {
        self.configure_https_defaults(move |_| tls.clone())
    }

    /// The HTTPS defaults applied to fresh TLS options, if any.
    pub(crate) fn https_defaults_for_config(&self) -> Option<TlsOptions> {
        self.https_defaults.as_ref().map(|defaults| defaults(TlsOptions::new()))
    }

    /// The options set so far (set with [`options`](Self::options) and
    /// the other setters).
    pub fn current_options(&self) -> &ServerOptions {
        &self.options
    }

    /// Sets every option at once. Default: [`ServerOptions::default`].
    pub fn options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the limits. Default: [`Limits::default`](kite_http_core::Limits).
    pub fn limits(mut self, limits: kite_http_core::Limits) -> Self {
        self.options.http.limits = limits;
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

    /// Binds each endpoint to the socket a predecessor handed over for its
    /// address (a zero-downtime upgrade; see [`crate::handover`]), and
    /// anew where none was handed. Handed sockets no endpoint takes are
    /// closed. Default: none.
    pub fn inherit(mut self, inherited: crate::handover::Inherited) -> Self {
        self.inherited = Some(inherited.into_pool());
        self
    }

    /// Serves a readiness probe at `path` (`/healthz`, say): `200` while
    /// the server accepts, `503` once a drain starts. See
    /// [`ServerOptions::health_path`] and [`ServerOptions::drain_delay`].
    /// Default: none.
    pub fn health_check(mut self, path: impl Into<String>) -> Self {
        self.options.health_path = Some(path.into());
        self
    }

    /// Binds every TCP and UDP endpoint with `SO_REUSEPORT`, so several
    /// processes can listen on one port and the kernel spreads
    /// connections across them (`kite --workers N`). It applies to the
    /// default transports; a transport given with [`transport`](Self::transport)
    /// or [`multiplexed_transport`](Self::multiplexed_transport) keeps its own
    /// socket options. Default: `false`.
    pub fn reuse_port(mut self, enabled: bool) -> Self {
        self.reuse_port = enabled;
        self
    }

    /// Uses `transport` for the HTTP/3 (QUIC) listeners of endpoints that
    /// speak HTTP/3. Default: `kite_transport_quic::QuicTransport` with its
    /// default options (100 bidirectional and 10 unidirectional streams)
    /// when the `http3` feature is on; none otherwise.
    pub fn multiplexed_transport(mut self, transport: impl MultiplexedTransport) -> Self {
        self.multiplexed = Some(Arc::new(transport));
        self
    }

    /// Uses `transport` for every endpoint. Default: the sockets transport
    /// when the `sockets` feature is on.
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// Appends a connection middleware for every endpoint, ahead of TLS:
    /// it sees the raw bytes. The first added is outermost (nearest the
    /// transport). Default: none.
    pub fn connection_middleware(mut self, middleware: impl ConnectionMiddleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// Appends a connection middleware that runs after TLS on HTTPS
    /// endpoints (it sees plaintext and the `TlsHandshake` feature: the
    /// TLS filter goes here), and after the others on plain ones. Default:
    /// none.
    pub fn connection_middleware_after_tls(mut self, middleware: impl ConnectionMiddleware) -> Self {
        self.after_tls.push(Arc::new(middleware));
        self
    }

    /// Binds every endpoint. Nothing is left bound if any fails.
    ///
    /// # Errors
    ///
    /// [`ServerError::InvalidUrl`] for a URL that cannot be bound, or http
    /// and https on one port; [`ServerError::Tls`] for an HTTPS endpoint
    /// without a usable certificate; [`ServerError::Bind`] when an address
    /// is taken or unavailable; [`ServerError::NoTransport`] without a
    /// transport.
    pub async fn bind(self) -> Result<Server, ServerError> {
        self.options.http.http2.validate().map_err(ServerError::InvalidOptions)?;
        self.options.http.limits.validate().map_err(ServerError::InvalidOptions)?;
        self.options.http.http3.validate().map_err(ServerError::InvalidOptions)?;
        let transport = match self.transport.clone() {
            Some(transport) => transport,
            None => default_transport(self.reuse_port)?,
        };
        let mut transports = endpoint::Transports {
            stream: Arc::clone(&transport),
            multiplexed: self.multiplexed.clone().or_else(|| default_multiplexed(self.reuse_port)),
        };
        if let Some(pool) = &self.inherited {
            transports.stream = pool.stream(Arc::clone(&transports.stream));
            transports.multiplexed = transports.multiplexed.map(|m| pool.multiplexed(m));
        }
        let endpoints = self.effective_endpoints()?;
        check_shared_ports(&endpoints)?;

        let mut listeners = Vec::new();
        for endpoint in &endpoints {
            listeners.extend(endpoint::bind(&transports, endpoint, self.options.http.protocols).await?);
        }
        if let Some(pool) = &self.inherited {
            for address in pool.close_unused() {
                tracing::warn!(?address, "a socket handed over by the previous process matches no endpoint; closed");
            }
        }
        // With a configuration file, its endpoints follow its changes.
        let reload = self.config_file.clone().filter(|_| self.reload_on_change).map(|(file, seen)| {
            let template = self.template();
            ReloadSource {
                file,
                seen,
                transports: transports.clone(),
                read_endpoints: Box::new(move |config| Ok(template.template().configuration(config)?.config_endpoints)),
                default_protocols: self.options.http.protocols,
            }
        });
        Ok(Server::new(
            listeners,
            transport.name(),
            self.options,
            self.middleware,
            self.after_tls,
            self.allowed_hosts,
            reload,
        ))
    }

    /// The endpoints to bind, by Kestrel's precedence: endpoints in code and
    /// in the configuration add up; either replaces the URLs, with a
    /// warning; with none of them, `http://localhost:5000`.
    pub(crate) fn effective_endpoints(&self) -> Result<Vec<ListenOptions>, ServerError> {
        let mut endpoints: Vec<ListenOptions> = self.endpoints.iter().chain(&self.config_endpoints).cloned().collect();
        if !endpoints.is_empty() {
            if !self.urls.is_empty() {
                tracing::warn!(
                    urls = %self.urls.join(";"),
                    "Overriding address(es) given as urls: binding to the endpoints configured in code and configuration instead"
                );
            }
            return Ok(endpoints);
        }
        let urls = if self.urls.is_empty() { vec![DEFAULT_URL.to_string()] } else { self.urls.clone() };
        for url in &urls {
            let parsed: ListenUrl = url.parse()?;
            let endpoint = if parsed.https {
                let Some(defaults) = &self.https_defaults else {
                    return Err(ServerError::Tls { endpoint: url.clone(), source: TlsError::NoCertificate });
                };
                let tls = defaults(TlsOptions::new());
                self.endpoint(parsed.address, |listen| listen.use_https(tls))
            } else {
                self.endpoint(parsed.address, |listen| listen)
            };
            endpoints.push(endpoint);
        }
        Ok(endpoints)
    }
}

/// HTTP and HTTPS cannot share a port.
fn check_shared_ports(endpoints: &[ListenOptions]) -> Result<(), ServerError> {
    for (i, a) in endpoints.iter().enumerate() {
        for b in &endpoints[i + 1..] {
            let (a_https, b_https) = (a.is_https(), b.is_https());
            let (a, b) = (a.address(), b.address());
            let same_port = matches!((a.port(), b.port()), (Some(p), Some(q)) if p == q && p != 0);
            if same_port && a_https != b_https {
                return Err(ServerError::InvalidUrl {
                    url: format!("{a} and {b}"),
                    reason: format!(
                        "http and https cannot share port {}; give each its own port",
                        a.port().unwrap_or_default()
                    ),
                });
            }
        }
    }
    Ok(())
}

#[cfg(feature = "http3")]
fn default_multiplexed(reuse_port: bool) -> Option<Arc<dyn MultiplexedTransport>> {
    let socket = kite_socket::SocketOptions::default().reuse_port(reuse_port);
    Some(Arc::new(kite_transport_quic::QuicTransport::new(kite_transport_quic::QuicOptions::default().socket(socket))))
}

#[cfg(not(feature = "http3"))]
fn default_multiplexed(_reuse_port: bool) -> Option<Arc<dyn MultiplexedTransport>> {
    None
}

#[cfg(feature = "sockets")]
fn default_transport(reuse_port: bool) -> Result<Arc<dyn Transport>, ServerError> {
    let socket = kite_socket::SocketOptions::default().reuse_port(reuse_port);
    Ok(Arc::new(kite_transport_sockets::SocketTransport::new(socket)))
}

#[cfg(not(feature = "sockets"))]
fn default_transport(_reuse_port: bool) -> Result<Arc<dyn Transport>, ServerError> {
    Err(ServerError::NoTransport)
}
