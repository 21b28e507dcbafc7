//! The per-request body size limit.

use std::sync::Arc;

use super::shared::Shared;

/// A request extension that reads and changes the request's body-size limit
/// (Kestrel's `IHttpMaxRequestBodySizeFeature`).
///
/// Every request with a body carries one (a request without a body has
/// nothing to limit); it starts at
/// [`Limits::max_request_body_size`](crate::Limits::max_request_body_size).
/// It can be changed until the application starts reading the body; after
/// that it is read-only and [`set`](Self::set) fails.
///
/// ```no_run
/// use http::Request;
/// use kite_http_core::{MaxRequestBodySize, RequestBody};
///
/// fn allow_large_uploads(request: &Request<RequestBody>) {
///     if let Some(limit) = request.extensions().get::<MaxRequestBodySize>() {
///         limit.set(Some(1 << 30)).expect("set before the body is read");
///     }
/// }
/// ```
#[derive(Clone)]
pub struct MaxRequestBodySize {
    shared: Arc<Shared>,
}

/// The body has started to be read; its limit can no longer change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body size limit cannot be changed after the body has started to be read")]
pub struct ReadOnlyError;

impl MaxRequestBodySize {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The limit in bytes, `None` for no limit.
    pub fn get(&self) -> Option<u64> {
        self.shared.lock().limit
    }

    /// Whether the body has started to be read, so the limit is fixed.
    pub fn is_read_only(&self) -> bool {
        self.shared.lock().read_started
    }

    /// Sets the limit in bytes, `None` for no limit.
    ///
    /// # Errors
    ///
    /// [`ReadOnlyError`] once the body has started to be read.
    pub fn set(&self, limit: Option<u64>) -> Result<(), ReadOnlyError> {
        let mut state = self.shared.lock();
        if state.read_started {
            return Err(ReadOnlyError);
        }
        state.limit = limit;
        Ok(())
    }
}

impl std::fmt::Debug for MaxRequestBodySize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaxRequestBodySize")
            .field("limit", &self.get())
            .field("read_only", &self.is_read_only())
            .finish()
    }
}
