//! Configuring and binding a server.

use std::sync::Arc;
use std::time::Duration;

use kite_connection_middleware::tls::{TlsError, TlsMiddleware, TlsOptions};
use kite_connection_middleware::ConnectionMiddleware;
use kite_http_core::Protocols;
use kite_transport_core::Transport;

use crate::address::{self, endpoint_url};
use crate::server::BoundListener;
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
    options: ServerOptions,
    endpoints: Vec<(ListenAddress, Option<TlsOptions>)>,
    urls: Vec<String>,
    https_defaults: Option<TlsOptions>,
    transport: Option<Arc<dyn Transport>>,
    middleware: Vec<Arc<dyn ConnectionMiddleware>>,
    after_tls: Vec<Arc<dyn ConnectionMiddleware>>,
}

impl ServerBuilder {
    pub(crate) fn new() -> Self {
        Self {
            options: ServerOptions::default(),
            endpoints: Vec::new(),
            urls: Vec::new(),
            https_defaults: None,
            transport: None,
            middleware: Vec::new(),
            after_tls: Vec::new(),
        }
    }

    /// Listens on an IP address and port; port 0 picks a free port.
    pub fn listen(mut self, addr: impl Into<std::net::SocketAddr>) -> Self {
        self.endpoints.push((ListenAddress::Ip(addr.into()), None));
        self
    }

    /// Listens for HTTPS on an IP address and port with `tls`.
    pub fn listen_tls(mut self, addr: impl Into<std::net::SocketAddr>, tls: TlsOptions) -> Self {
        self.endpoints.push((ListenAddress::Ip(addr.into()), Some(tls)));
        self
    }

    /// Listens on a Unix domain socket. A stale socket file is replaced at
    /// start; the file is removed at shutdown.
    pub fn listen_unix(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.endpoints.push((ListenAddress::Unix(path.into()), None));
        self
    }

    /// Listens on an address already parsed, with TLS when `tls` is given.
    pub fn listen_address(mut self, address: ListenAddress, tls: Option<TlsOptions>) -> Self {
        self.endpoints.push((address, tls));
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

    /// The TLS options of `https://` URLs (Kestrel's
    /// `ConfigureHttpsDefaults`); a later call replaces an earlier one.
    /// Default: none, so an https URL fails at bind.
    pub fn https_defaults(mut self, tls: TlsOptions) -> Self {
        self.https_defaults = Some(tls);
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
        self.options.http2.validate().map_err(ServerError::InvalidOptions)?;
        self.options.limits.validate().map_err(ServerError::InvalidOptions)?;
        let transport = match self.transport {
            Some(transport) => transport,
            None => default_transport()?,
        };
        let endpoints = if !self.endpoints.is_empty() {
            if !self.urls.is_empty() {
                tracing::warn!(
                    urls = %self.urls.join(";"),
                    "Overriding address(es) given as urls: binding to the endpoints configured in code instead"
                );
            }
            self.endpoints
        } else {
            let urls = if self.urls.is_empty() { vec![DEFAULT_URL.to_string()] } else { self.urls };
            let mut endpoints = Vec::new();
            for url in &urls {
                let parsed: ListenUrl = url.parse()?;
                let tls = match (parsed.https, &self.https_defaults) {
                    (false, _) => None,
                    (true, Some(tls)) => Some(tls.clone()),
                    (true, None) => {
                        return Err(ServerError::Tls { endpoint: url.clone(), source: TlsError::NoCertificate })
                    }
                };
                endpoints.push((parsed.address, tls));
            }
            endpoints
        };
        check_shared_ports(&endpoints)?;

        let mut listeners = Vec::new();
        for (address, tls) in &endpoints {
            // ALPN offers what the endpoint speaks.
            let tls = tls.clone().map(|options| match self.options.protocols {
                Protocols::Http1 => options.alpn_protocols(["http/1.1"]),
                Protocols::Http2 => options.alpn_protocols(["h2"]),
                Protocols::Http1AndHttp2 => options,
            });
            let tls = match tls {
                Some(options) => Some(TlsMiddleware::new(options).map_err(|source| ServerError::Tls {
                    endpoint: format!("https{}", address.to_string().trim_start_matches("http")),
                    source,
                })?),
                None => None,
            };
            for listener in address::bind(transport.as_ref(), address, tls.is_some()).await? {
                tracing::debug!(address = %endpoint_url(listener.local_endpoint(), tls.is_some()), "endpoint bound");
                listeners.push(BoundListener { listener, tls: tls.clone() });
            }
        }
        Ok(Server::new(listeners, transport.name(), self.options, self.middleware, self.after_tls))
    }
}

/// HTTP and HTTPS cannot share a port.
fn check_shared_ports(endpoints: &[(ListenAddress, Option<TlsOptions>)]) -> Result<(), ServerError> {
    for (i, (a, a_tls)) in endpoints.iter().enumerate() {
        for (b, b_tls) in &endpoints[i + 1..] {
            let same_port = matches!((a.port(), b.port()), (Some(p), Some(q)) if p == q && p != 0);
            if same_port && a_tls.is_some() != b_tls.is_some() {
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

#[cfg(feature = "sockets")]
fn default_transport() -> Result<Arc<dyn Transport>, ServerError> {
    Ok(Arc::new(kite_transport_sockets::SocketTransport::default()))
}

#[cfg(not(feature = "sockets"))]
fn default_transport() -> Result<Arc<dyn Transport>, ServerError> {
    Err(ServerError::NoTransport)
}
