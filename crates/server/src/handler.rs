//! The last step of every endpoint's pipeline: HTTP.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use http_body::Body;
use kite_connection_middleware::{ConnectionError, ConnectionHandler};
use kite_http_core::{serve_connection, HttpOptions, HttpService};
use kite_transport_core::Connection;

/// Serves each connection with a clone of the service. The service sits
/// behind a mutex locked only to clone it, once per connection, so it need
/// not be `Sync` (tower's `BoxCloneService` is not).
pub(crate) struct HttpHandler<S> {
    service: Arc<Mutex<S>>,
    options: Arc<HttpOptions>,
}

impl<S> Clone for HttpHandler<S> {
    fn clone(&self) -> Self {
        Self { service: Arc::clone(&self.service), options: Arc::clone(&self.options) }
    }
}

impl<S> HttpHandler<S> {
    pub fn new(service: S, options: HttpOptions) -> Self {
        Self { service: Arc::new(Mutex::new(service)), options: Arc::new(options) }
    }

    /// A clone of the application.
    pub fn service(&self) -> S
    where
        S: Clone,
    {
        self.service.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The options.
    pub fn options(&self) -> HttpOptions {
        (*self.options).clone()
    }

    /// The same application and options, for an endpoint speaking
    /// `protocols` (the heartbeat and the upgrade count stay shared).
    pub fn with_protocols(&self, protocols: kite_http_core::Protocols) -> Self {
        let options = (*self.options).clone().protocols(protocols);
        Self { service: Arc::clone(&self.service), options: Arc::new(options) }
    }
}

#[async_trait]
impl<S> ConnectionHandler for HttpHandler<S>
where
    S: HttpService + Clone + Send + 'static,
    S::Future: Send,
    S::Body: Send + 'static,
    <S::Body as Body>::Data: Send,
{
    async fn handle(&self, connection: Connection) -> Result<(), ConnectionError> {
        let service = self.service.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        match serve_connection(connection, service, &self.options).await {
            // Answered with its status and logged under `kite::bad_requests`
            // where it was refused: the connection ended as it should.
            Ok(()) | Err(kite_http_core::Error::Rejected(_)) => Ok(()),
            Err(kite_http_core::Error::Io(e)) => Err(ConnectionError::Io(e)),
            Err(other) => Err(ConnectionError::other(other)),
        }
    }
}
