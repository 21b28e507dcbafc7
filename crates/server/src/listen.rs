//! One endpoint's settings: Kestrel's `ListenOptions`.

use std::fmt;
use std::sync::Arc;

use kite_connection_middleware::proxy_protocol::ProxyProtocol;
use kite_connection_middleware::tls::TlsOptions;
use kite_connection_middleware::{ConnectionLogging, ConnectionMiddleware};
use kite_http_core::Protocols;

use crate::ListenAddress;

/// A step of an endpoint's own connection chain, in the order it was
/// added: middleware, and TLS where [`use_https`](ListenOptions::use_https)
/// was called.
#[derive(Clone)]
pub(crate) enum Step {
    Middleware(Arc<dyn ConnectionMiddleware>),
    Tls,
}

/// A function that adjusts an endpoint's options (endpoint defaults).
pub(crate) type Configure = Arc<dyn Fn(ListenOptions) -> ListenOptions + Send + Sync>;
/// A function that adjusts an endpoint's TLS options (HTTPS defaults).
pub(crate) type ConfigureHttps = Arc<dyn Fn(TlsOptions) -> TlsOptions + Send + Sync>;

/// One endpoint: its address, the HTTP versions it speaks, its TLS, and
/// its own connection middleware (Kestrel's `ListenOptions`).
///
/// The endpoint's chain runs after the server-wide
/// [`connection_middleware`](crate::ServerBuilder::connection_middleware)
/// and before the server-wide after-TLS middleware and HTTP. Within it,
/// order is the order of the calls, as in Kestrel: connection logging added
/// before [`use_https`](Self::use_https) sees ciphertext, after it
/// plaintext.
///
/// ```
/// use kite_server::{Protocols, Server, TlsOptions};
///
/// let builder = Server::builder().listen_with(([127, 0, 0, 1], 8080), |listen| {
///     listen.protocols(Protocols::Http1).use_connection_logging()
/// });
/// ```
#[derive(Clone)]
pub struct ListenOptions {
    address: ListenAddress,
    pub(crate) protocols: Option<Protocols>,
    pub(crate) tls: Option<TlsOptions>,
    pub(crate) steps: Vec<Step>,
    pub(crate) unix_permissions: Option<u32>,
    /// No `Alt-Svc` header on HTTP/1.1 and HTTP/2 responses.
    pub(crate) disable_alt_svc: bool,
    /// The PROXY protocol, first in the whole chain.
    pub(crate) proxy_protocol: Option<ProxyProtocol>,
    /// The configuration's name for the endpoint (`Endpoints:{Name}`).
    pub(crate) name: Option<String>,
    /// Where in the configuration it came from, for bind errors.
    pub(crate) origin: Option<crate::config::ConfigError>,
    /// What the configuration said of it, to tell a changed endpoint on
    /// reload.
    pub(crate) definition: Option<String>,
    https_defaults: Option<ConfigureHttps>,
}

impl fmt::Debug for ListenOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenOptions")
            .field("address", &self.address)
            .field("name", &self.name)
            .field("protocols", &self.protocols)
            .field("https", &self.tls.is_some())
            .field("steps", &self.steps.len())
            .finish()
    }
}

impl ListenOptions {
    pub(crate) fn new(address: ListenAddress, https_defaults: Option<ConfigureHttps>) -> Self {
        Self {
            address,
            protocols: None,
            tls: None,
            steps: Vec::new(),
            unix_permissions: None,
            disable_alt_svc: false,
            proxy_protocol: None,
            name: None,
            origin: None,
            definition: None,
            https_defaults,
        }
    }

    /// The address this endpoint binds.
    pub fn address(&self) -> &ListenAddress {
        &self.address
    }

    /// The HTTP versions this endpoint speaks. Default: the server's
    /// [`HttpOptions::protocols`](kite_http_core::HttpOptions::protocols)
    /// (`Http1AndHttp2`). HTTP/3 ([`Protocols::Http3`],
    /// [`Protocols::Http1AndHttp2AndHttp3`]) needs HTTPS and the `http3`
    /// feature; its UDP socket binds the same port as the TCP one.
    pub fn protocols(mut self, protocols: Protocols) -> Self {
        self.protocols = Some(protocols);
        self
    }

    /// Serves HTTPS with `tls`, at this point of the endpoint's chain.
    /// Default: plain HTTP.
    pub fn use_https(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self.steps.retain(|step| !matches!(step, Step::Tls));
        self.steps.push(Step::Tls);
        self
    }

    /// Serves HTTPS with the server's HTTPS defaults
    /// ([`configure_https_defaults`](crate::ServerBuilder::configure_https_defaults))
    /// adjusted by `configure`.
    pub fn use_https_with(self, configure: impl FnOnce(TlsOptions) -> TlsOptions) -> Self {
        let base = match &self.https_defaults {
            Some(defaults) => defaults(TlsOptions::new()),
            None => TlsOptions::new(),
        };
        self.use_https(configure(base))
    }

    /// Reads the PROXY protocol header (v1 or v2) a load balancer in front
    /// sends, before anything else on the connection (the server's
    /// middleware, TLS), so every later step sees the client's address.
    /// Default: off.
    pub fn use_proxy_protocol(mut self, proxy_protocol: ProxyProtocol) -> Self {
        self.proxy_protocol = Some(proxy_protocol);
        self
    }

    /// Appends a connection middleware to this endpoint's chain. Default:
    /// none.
    pub fn use_(mut self, middleware: impl ConnectionMiddleware) -> Self {
        self.steps.push(Step::Middleware(Arc::new(middleware)));
        self
    }

    /// Appends Kestrel's connection logging (a hex dump of every read and
    /// write at debug level, target `kite::connection_logging`): before
    /// [`use_https`](Self::use_https) it shows ciphertext, after it
    /// plaintext. Default: off.
    pub fn use_connection_logging(self) -> Self {
        self.use_(ConnectionLogging::new())
    }

    /// The file mode of a Unix socket endpoint (for example `0o660`, so a
    /// reverse proxy's group can connect). Default: what the process's
    /// umask gives.
    pub fn permissions(mut self, mode: u32) -> Self {
        self.unix_permissions = Some(mode);
        self
    }

    /// Leaves out the `Alt-Svc: h3=":PORT"` header that HTTP/1.1 and
    /// HTTP/2 responses of an endpoint that also speaks HTTP/3 carry
    /// (Kestrel's `DisableAltSvcHeader`). Default: `false`.
    pub fn disable_alt_svc_header(mut self, disabled: bool) -> Self {
        self.disable_alt_svc = disabled;
        self
    }

    /// The endpoint's name in the configuration, if it came from there.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Whether the endpoint serves HTTPS.
    pub fn is_https(&self) -> bool {
        self.tls.is_some()
    }
}
