//! The last step of every endpoint's pipeline: HTTP.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

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

// Written out rather than with `#[async_trait]`: the macro's future would
// hold the connection beside the future it is moved into, for the
// connection's whole life.
impl<S> ConnectionHandler for HttpHandler<S>
where
    S: HttpService + Clone + Send + 'static,
    S::Future: Send,
    S::Body: Send + 'static,
    <S::Body as Body>::Data: Send,
{
    fn handle<'life0, 'async_trait>(
        &'life0 self,
        connection: Connection,
    ) -> Pin<Box<dyn Future<Output = Result<(), ConnectionError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let service = self.service.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        Box::pin(Served { serving: serve_connection(connection, service, &self.options) })
    }
}

pin_project_lite::pin_project! {
    /// A connection being served, its outcome in the pipeline's terms.
    struct Served<F> {
        #[pin]
        serving: F,
    }
}

impl<F: Future<Output = Result<(), kite_http_core::Error>>> Future for Served<F> {
    type Output = Result<(), ConnectionError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match ready!(self.project().serving.poll(cx)) {
            // Answered with its status and logged under `kite::bad_requests`
            // where it was refused: the connection ended as it should.
            Ok(()) | Err(kite_http_core::Error::Rejected(_)) => Ok(()),
            Err(kite_http_core::Error::Io(e)) => Err(ConnectionError::Io(e)),
            Err(other) => Err(ConnectionError::other(other)),
        })
    }
}
