//! Why a request could not open a WebSocket, and the answer to send.

use http::header::{CONNECTION, SEC_WEBSOCKET_VERSION, UPGRADE};
use http::{HeaderValue, Response, StatusCode};

/// Why a request could not open a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebSocketRejection {
    /// An HTTP/1.1 WebSocket handshake must be a `GET`: `405`.
    #[error("a WebSocket handshake must be a GET request")]
    MethodNotGet,
    /// The request does not ask for a WebSocket (no `Upgrade: websocket`,
    /// `Connection: upgrade` or `:protocol`), or cannot be upgraded:
    /// `426 Upgrade Required`.
    #[error("the request does not ask to upgrade to a WebSocket")]
    NotWebSocket,
    /// `Sec-WebSocket-Version` is missing or not 13: `426`, with
    /// `Sec-WebSocket-Version: 13` in the answer.
    #[error("unsupported WebSocket version; 13 is supported")]
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` is missing or not 16 bytes of base64: `400`.
    #[error("missing or malformed Sec-WebSocket-Key")]
    InvalidKey,
    /// The origin policy refused the `Origin`: `403`.
    #[error("the WebSocket's origin is not allowed")]
    OriginNotAllowed,
}

impl WebSocketRejection {
    /// The status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MethodNotGet => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotWebSocket | Self::UnsupportedVersion => StatusCode::UPGRADE_REQUIRED,
            Self::InvalidKey => StatusCode::BAD_REQUEST,
            Self::OriginNotAllowed => StatusCode::FORBIDDEN,
        }
    }

    /// The answer: the status, with the headers RFC 6455 asks for
    /// (`Upgrade`, `Sec-WebSocket-Version`, `Allow`), and an empty body.
    pub fn into_response<B: Default>(self) -> Response<B> {
        tracing::debug!(reason = %self, "WebSocket handshake refused");
        let mut response = Response::new(B::default());
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        match self {
            Self::MethodNotGet => {
                headers.insert(http::header::ALLOW, HeaderValue::from_static("GET"));
            }
            Self::NotWebSocket | Self::UnsupportedVersion => {
                headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
                headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
                headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            }
            _ => {}
        }
        response
    }
}
