//! Connection information for the application.

use std::sync::Arc;

use kite_transport_core::{ConnectionContext, ConnectionId, Endpoint, Features};

/// A request extension that tells the application about the connection the
/// request came on: its id, addresses, transport and features (such as the
/// TLS handshake). Every request carries one; cloning is cheap.
///
/// ```no_run
/// use http::Request;
/// use kite_http_core::{ConnectionInfo, RequestBody};
///
/// fn remote(request: &Request<RequestBody>) -> String {
///     request.extensions().get::<ConnectionInfo>().map(|c| c.remote().to_string()).unwrap_or_default()
/// }
/// ```
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    context: Arc<ConnectionContext>,
}

impl ConnectionInfo {
    /// Information about the connection with `context`.
    pub fn new(context: ConnectionContext) -> Self {
        Self { context: Arc::new(context) }
    }

    /// The connection's id, as in its log events.
    pub fn id(&self) -> ConnectionId {
        self.context.id()
    }

    /// The address the connection was accepted on.
    pub fn local(&self) -> &Endpoint {
        self.context.local()
    }

    /// The peer's address.
    pub fn remote(&self) -> &Endpoint {
        self.context.remote()
    }

    /// The transport's name (`"sockets"`, `"mio"`, …).
    pub fn transport(&self) -> &'static str {
        self.context.transport()
    }

    /// The connection's features, as the middleware left them.
    pub fn features(&self) -> &Features {
        self.context.features()
    }

    /// The whole connection context.
    pub fn context(&self) -> &ConnectionContext {
        &self.context
    }
}
