//! What Kite can serve.

use http::{Request, Response};
use tower_service::Service;

use crate::{BoxError, RequestBody};

/// A `tower::Service` Kite can serve: it takes a `Request<RequestBody>` and
/// answers with a response whose body is an [`http_body::Body`], and its
/// errors (and its body's) convert into [`BoxError`]. Every such service
/// implements it, an axum `Router` among them; it exists so the bounds are
/// written once.
pub trait HttpService:
    Service<Request<RequestBody>, Response = Response<<Self as HttpService>::Body>, Error: Into<BoxError>>
{
    /// The response body.
    type Body: http_body::Body<Error: Into<BoxError>>;
}

impl<S, B> HttpService for S
where
    S: Service<Request<RequestBody>, Response = Response<B>, Error: Into<BoxError>>,
    B: http_body::Body<Error: Into<BoxError>>,
{
    type Body = B;
}
