//! Request bodies and their limits.

mod incoming;
mod limit;
pub(crate) mod meter;
pub(crate) mod shared;

use std::sync::Arc;

pub use incoming::RequestBody;
pub use limit::{MaxRequestBodySize, ReadOnlyError};

use crate::RequestRejection;

/// Why reading a request body failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The client sent something the server refuses: a body over its limit
    /// (`413`), a malformed chunk, or too little before closing. The
    /// connection answers with the rejection's status if the response has
    /// not started.
    #[error("{0}")]
    Rejected(RequestRejection),
    /// Reading the connection failed.
    #[error("connection failed while reading the request body: {0}")]
    Io(Arc<std::io::Error>),
    /// The client reset the HTTP/2 stream (`RST_STREAM`) with this error
    /// code before the body ended; `0x8` is CANCEL.
    #[error("the client reset the stream with error code {0:#x}")]
    Reset(u32),
    /// The request's framing contradicts itself: an HTTP/3 body whose DATA
    /// frames do not add up to its `content-length`. The stream is reset
    /// with the protocol's message error (H3_MESSAGE_ERROR), whether or
    /// not the response has started.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
}
