//! A service from a function.

use std::future::Future;
use std::task::{Context, Poll};

use tower_service::Service;

/// Makes a [`Service`] from an async function of a request, for small
/// applications and tests. (tower's `service_fn`, without the dependency.)
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use kite_server::{service_fn, RequestBody};
///
/// let hello = service_fn(|_req: Request<RequestBody>| async {
///     Ok::<_, Infallible>(Response::new(String::from("Hello, World!")))
/// });
/// # let _ = hello;
/// ```
pub fn service_fn<F>(f: F) -> ServiceFn<F> {
    ServiceFn { f }
}

/// The service [`service_fn`] returns.
#[derive(Clone, Copy, Debug)]
pub struct ServiceFn<F> {
    f: F,
}

impl<F, Fut, Req, Res, E> Service<Req> for ServiceFn<F>
where
    F: FnMut(Req) -> Fut,
    Fut: Future<Output = Result<Res, E>>,
{
    type Response = Res;
    type Error = E;
    type Future = Fut;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Fut {
        (self.f)(request)
    }
}
