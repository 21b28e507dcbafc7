//! Host filtering: the `AllowedHosts` setting of ASP.NET Core's Host
//! Filtering Middleware, in front of the application.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use kite_http_core::{BoxError, RequestBody};
use tower_service::Service;

/// The hosts a server answers for. `*` (or `[::]`, `0.0.0.0`) allows any;
/// `*.example.com` allows the subdomains of example.com, not example.com
/// itself; anything else is an exact host, compared without case and
/// without the port. A request without a host is allowed, as with
/// Kestrel's default `AllowEmptyHosts`.
#[derive(Clone, Debug)]
pub(crate) struct AllowedHosts {
    exact: Vec<String>,
    suffixes: Vec<String>,
}

impl AllowedHosts {
    /// `None` when the list turns filtering off.
    pub fn new(hosts: &[String]) -> Option<Self> {
        let hosts: Vec<String> = hosts
            .iter()
            .flat_map(|h| h.split(';'))
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if hosts.is_empty() || hosts.iter().any(|h| h == "*" || h == "[::]" || h == "0.0.0.0") {
            return None;
        }
        let (wild, exact): (Vec<String>, Vec<String>) = hosts.into_iter().partition(|h| h.starts_with("*."));
        let suffixes = wild.into_iter().map(|h| h[1..].to_string()).collect();
        Some(Self { exact, suffixes })
    }

    /// Whether `host` (a `Host` value or an authority, maybe with a port)
    /// is allowed.
    pub fn allows(&self, host: &str) -> bool {
        let host = strip_port(host.trim()).to_ascii_lowercase();
        if host.is_empty() {
            return true;
        }
        self.exact.contains(&host)
            || self.suffixes.iter().any(|suffix| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
    }
}

/// `example.com:80` → `example.com`, `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rfind(':') {
        Some(colon) if host[colon + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..colon],
        _ => host,
    }
}

/// The application behind what the server answers itself: the readiness
/// probe, then the host filter. With neither it passes every request
/// through.
#[derive(Clone)]
pub(crate) struct HostFilter<S> {
    pub inner: S,
    /// HTTP-01 answers of the server's ACME certificates.
    pub acme: Option<Arc<crate::acme_answers::AcmeAnswers>>,
    pub allowed: Option<Arc<AllowedHosts>>,
    pub readiness: Option<Arc<crate::readiness::Readiness>>,
}

const REJECTED: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"\"http://www.w3.org/TR/html4/strict.dtd\"><HTML><HEAD><TITLE>Bad Request</TITLE><META HTTP-EQUIV=\"Content-Type\" Content=\"text/html; charset=us-ascii\"></ HEAD ><BODY><h2>Bad Request - Invalid Hostname</h2><hr><p>HTTP Error 400. The request hostname is invalid.</p></BODY></HTML>";

impl<S, B> Service<Request<RequestBody>> for HostFilter<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = Response<Filtered<B>>;
    type Error = S::Error;
    type Future = FilterFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        if let Some(page) = self.acme.as_ref().and_then(|acme| acme.answer(request.uri().path())) {
            return FilterFuture::Answered { status: StatusCode::OK, content_type: "application/octet-stream", page };
        }
        if let Some((status, text)) = self.readiness.as_ref().and_then(|r| r.answer(request.uri().path())) {
            return FilterFuture::Answered { status, content_type: "text/plain", page: text };
        }
        if let Some(allowed) = &self.allowed {
            let host = request
                .headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| request.uri().authority().map(|a| a.as_str()))
                .unwrap_or_default();
            if !allowed.allows(host) {
                tracing::debug!(target: "kite::host_filtering", host, "the request's host is not allowed; 400");
                let page = Bytes::from_static(REJECTED.as_bytes());
                return FilterFuture::Answered { status: StatusCode::BAD_REQUEST, content_type: "text/html", page };
            }
        }
        FilterFuture::Inner(self.inner.call(request))
    }
}

pin_project_lite::pin_project! {
    /// The application's answer, or the server's own (the probe's, the
    /// filter's 400).
    #[project = FilterFutureProj]
    pub(crate) enum FilterFuture<F> {
        Inner { #[pin] future: F },
        Answered { status: StatusCode, content_type: &'static str, page: Bytes },
    }
}

#[allow(non_snake_case)]
impl<F> FilterFuture<F> {
    fn Inner(future: F) -> Self {
        FilterFuture::Inner { future }
    }
}

impl<F, B, E> Future for FilterFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Filtered<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FilterFutureProj::Inner { future } => {
                future.poll(cx).map(|result| result.map(|response| response.map(|body| Filtered::Inner { body })))
            }
            FilterFutureProj::Answered { status, content_type, page } => {
                let length = page.len();
                let mut response = Response::new(Filtered::Rejected { page: Some(std::mem::take(page)) });
                *response.status_mut() = *status;
                let headers = response.headers_mut();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
                headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
                Poll::Ready(Ok(response))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The application's body, or the filter's page.
    #[project = FilteredProj]
    pub(crate) enum Filtered<B> {
        Inner { #[pin] body: B },
        Rejected { page: Option<Bytes> },
    }
}

impl<B> Body for Filtered<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project() {
            // Zero-copy when the application's data is already `Bytes`.
            FilteredProj::Inner { body } => body.poll_frame(cx).map(|frame| {
                frame.map(|f| f.map(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining()))).map_err(Into::into))
            }),
            FilteredProj::Rejected { page } => Poll::Ready(page.take().map(|page| Ok(Frame::data(page)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Filtered::Inner { body } => body.is_end_stream(),
            Filtered::Rejected { page } => page.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Filtered::Inner { body } => body.size_hint(),
            Filtered::Rejected { page } => SizeHint::with_exact(page.as_ref().map_or(0, |p| p.len() as u64)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(hosts: &str) -> Option<AllowedHosts> {
        AllowedHosts::new(&[hosts.to_string()])
    }

    #[test]
    fn kestrel_rules() {
        assert!(allowed("*").is_none(), "* turns filtering off");
        assert!(allowed("example.com;*").is_none());
        let hosts = allowed("example.com;*.contoso.com;[::1]").unwrap();
        assert!(hosts.allows("example.com"));
        assert!(hosts.allows("EXAMPLE.com:8080"), "ports and case are ignored");
        assert!(!hosts.allows("www.example.com"));
        assert!(hosts.allows("api.contoso.com"));
        assert!(!hosts.allows("contoso.com"), "a wildcard matches subdomains only");
        assert!(hosts.allows("[::1]:5000"));
        assert!(hosts.allows(""), "an empty host is allowed");
        assert!(!hosts.allows("evil.com"));
    }
}
