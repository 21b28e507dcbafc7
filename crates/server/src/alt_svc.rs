//! `Alt-Svc: h3=":PORT"; ma=86400` on the HTTP/1.1 and HTTP/2 responses of
//! an endpoint that also serves HTTP/3, so clients learn they may switch
//! (RFC 7838, RFC 9114 §3.1.1). A header the application set wins.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::ALT_SVC;
use http::{HeaderValue, Request, Response};
use kite_http_core::RequestBody;
use tower_service::Service;

/// The service, with `Alt-Svc` added to its responses.
#[derive(Clone, Debug)]
pub(crate) struct AltSvc<S> {
    pub inner: S,
    pub value: HeaderValue,
}

impl<S> AltSvc<S> {
    /// The value advertising HTTP/3 on `port` for a day, as Kestrel does.
    pub fn header(port: u16) -> HeaderValue {
        HeaderValue::try_from(format!("h3=\":{port}\"; ma=86400")).expect("a port makes a valid header value")
    }
}

impl<S, B> Service<Request<RequestBody>> for AltSvc<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = AltSvcFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        AltSvcFuture { inner: self.inner.call(request), value: Some(self.value.clone()) }
    }
}

pin_project_lite::pin_project! {
    /// A response on its way, to be given `Alt-Svc`.
    pub(crate) struct AltSvcFuture<F> {
        #[pin]
        inner: F,
        value: Option<HeaderValue>,
    }
}

impl<F, B, E> Future for AltSvcFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        if let Some(value) = this.value.take() {
            response.headers_mut().entry(ALT_SVC).or_insert(value);
        }
        Poll::Ready(Ok(response))
    }
}
