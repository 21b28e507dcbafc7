//! A server without sockets, and a client for it.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kite_connection_middleware::ConnectionBuilder;
use kite_http_core::{serve_connection, HttpOptions, HttpService};
use kite_transport_core::{Connection, Endpoint, Transport};

use crate::MemoryTransport;

/// Why a test request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestError {
    /// The in-memory connection could not be opened.
    #[error("could not connect to the test server: {0}")]
    Connect(#[from] io::Error),
    /// The HTTP exchange failed (the server closed, or sent nonsense).
    #[error("the request failed: {0}")]
    Http(#[from] hyper::Error),
}

/// Runs an application on Kite's HTTP core over the in-memory transport:
/// every request goes through `serve_connection` exactly as on a socket,
/// but nothing binds a port. Built only from Kite's public parts (a
/// [`Transport`], a [`ConnectionBuilder`] and
/// [`serve_connection`]), it is also the example of a custom server.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use kite_http_core::RequestBody;
/// use kite_testing::TestServer;
///
/// #[derive(Clone)]
/// struct Hello;
/// impl tower_service::Service<Request<RequestBody>> for Hello {
///     type Response = Response<String>;
///     type Error = Infallible;
///     type Future = std::future::Ready<Result<Response<String>, Infallible>>;
///     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
///         std::task::Poll::Ready(Ok(()))
///     }
///     fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
///         std::future::ready(Ok(Response::new(format!("you asked for {}", request.uri().path()))))
///     }
/// }
///
/// let server = TestServer::start(Hello).await;
/// let response = server.get("/tea").await.unwrap();
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.body(), "you asked for /tea");
/// # });
/// ```
pub struct TestServer {
    transport: MemoryTransport,
    accept: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Starts `service` with default options and no connection middleware.
    pub async fn start<S>(service: S) -> Self
    where
        S: HttpService + Clone + Send + 'static,
        S::Future: Send,
        S::Body: Send + 'static,
        <S::Body as Body>::Data: Send,
    {
        Self::start_with(service, HttpOptions::default(), ConnectionBuilder::new()).await
    }

    /// Starts `service` with `options`, behind the middleware in `builder`.
    pub async fn start_with<S>(service: S, options: HttpOptions, builder: ConnectionBuilder) -> Self
    where
        S: HttpService + Clone + Send + 'static,
        S::Future: Send,
        S::Body: Send + 'static,
        <S::Body as Body>::Data: Send,
    {
        let transport = MemoryTransport::new();
        let mut listener = transport.bind(&Endpoint::Unnamed).await.expect("a fresh memory transport binds");
        let options = Arc::new(options);
        // Locked only to clone the service per connection, so it need not
        // be `Sync`.
        let service = std::sync::Mutex::new(service);
        let pipeline = builder.run(move |connection: Connection| {
            let service = service.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let options = Arc::clone(&options);
            async move {
                serve_connection(connection, service, &options)
                    .await
                    .map_err(kite_connection_middleware::ConnectionError::other)
            }
        });
        let accept = tokio::spawn(async move {
            while let Ok(connection) = listener.accept().await {
                let pipeline = pipeline.clone();
                tokio::spawn(async move {
                    if let Err(e) = pipeline.handle(connection).await {
                        tracing::debug!(error = %e, "test connection ended with an error");
                    }
                });
            }
        });
        Self { transport, accept }
    }

    /// The in-memory transport, to open raw connections with
    /// [`MemoryTransport::connect`].
    pub fn transport(&self) -> &MemoryTransport {
        &self.transport
    }

    /// Opens a client connection; it can send several requests in turn.
    ///
    /// # Errors
    ///
    /// [`TestError`] when the connection or the HTTP handshake fails.
    pub async fn client(&self) -> Result<TestClient, TestError> {
        let stream = self.transport.connect().await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(TestClient { sender })
    }

    /// Sends `request` on a new connection and collects the response.
    ///
    /// # Errors
    ///
    /// [`TestError`] when the exchange fails.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Response<Bytes>, TestError> {
        self.client().await?.send(request).await
    }

    /// `GET path` on a new connection.
    ///
    /// # Errors
    ///
    /// [`TestError`] when the exchange fails.
    pub async fn get(&self, path: &str) -> Result<Response<Bytes>, TestError> {
        let request = Request::get(path).body(Full::new(Bytes::new())).expect("a valid path");
        self.send(request).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// One client connection to a [`TestServer`] (hyper's HTTP/1.1 client).
pub struct TestClient {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl TestClient {
    /// Sends `request` and collects the response body. A request without a
    /// `Host` gets `Host: localhost`, since HTTP/1.1 requires one.
    ///
    /// # Errors
    ///
    /// [`TestError`] when the exchange fails.
    pub async fn send(&mut self, mut request: Request<Full<Bytes>>) -> Result<Response<Bytes>, TestError> {
        if !request.headers().contains_key(http::header::HOST) {
            request.headers_mut().insert(http::header::HOST, HeaderValue::from_static("localhost"));
        }
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Response::from_parts(parts, body))
    }
}
