//! WebSockets on Kite's opaque upgrade: RFC 6455 over HTTP/1.1 (and TLS),
//! RFC 8441 extended CONNECT over HTTP/2, spoken by tokio-tungstenite.
//!
//! [`WebSocketUpgrade::from_request`] checks the handshake once (method,
//! `Upgrade`/`Connection` or `:protocol`, version 13, the key), an
//! [`origin`](WebSocketUpgrade::check_origin) policy can refuse it, and
//! [`on_upgrade`](WebSocketUpgrade::on_upgrade) answers the switch and runs
//! a callback with the [`WebSocket`] once the response is on the wire. The
//! same handler serves both HTTP versions.
//!
//! ```
//! use futures_util::{SinkExt, StreamExt};
//! use http::{Request, Response};
//! use http_body_util::Empty;
//! use bytes::Bytes;
//! use kite_websocket::WebSocketUpgrade;
//! use kite_http_core::RequestBody;
//!
//! /// Echoes every text and binary message.
//! fn echo(mut req: Request<RequestBody>) -> Response<Empty<Bytes>> {
//!     match WebSocketUpgrade::from_request(&mut req) {
//!         Ok(upgrade) => upgrade.on_upgrade(|mut socket| async move {
//!             while let Some(Ok(message)) = socket.next().await {
//!                 if (message.is_text() || message.is_binary()) && socket.send(message).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         }),
//!         Err(rejection) => rejection.into_response(),
//!     }
//! }
//! ```
//!
//! permessage-deflate (RFC 7692) is on by default: a client that offers
//! it gets compressed messages, within a bounded memory per connection
//! ([`DeflateOptions`]; [`WebSocketUpgrade::deflate`] to tune or turn it
//! off).
//!
//! The server crate and the facade re-export this crate as
//! `kite_server::websocket` and `kite::websocket`.

#![warn(missing_docs)]

mod deflate;
mod io;
mod rejection;

use std::future::Future;

use http::header::{CONNECTION, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL};
use http::header::{SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_VERSION, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use kite_http_core::upgrade::{self, OnUpgrade};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

pub use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
pub use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
pub use tokio_tungstenite::tungstenite::{Error as WebSocketError, Message};

/// The stream and sink methods a [`WebSocket`] is read and written with
/// (`next`, `send`), so a handler needs no `futures` dependency of its own.
pub use futures_util::{SinkExt, StreamExt};

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use deflate::fuzzing as deflate_fuzzing;
pub use deflate::DeflateOptions;
pub use io::WebSocketIo;
pub use rejection::WebSocketRejection;

/// An accepted WebSocket: a `Stream` of [`Message`]s and a `Sink` for
/// them (futures' `StreamExt`/`SinkExt`). Pings are answered and close
/// handshakes completed by tungstenite; with permessage-deflate agreed,
/// messages are compressed and inflated beneath it ([`WebSocketIo`]).
pub type WebSocket = WebSocketStream<WebSocketIo>;

/// A checked WebSocket handshake, ready to be accepted.
#[derive(Debug)]
pub struct WebSocketUpgrade {
    on_upgrade: OnUpgrade,
    /// `Sec-WebSocket-Accept` for HTTP/1.1; HTTP/2 has none.
    accept: Option<HeaderValue>,
    origin: Option<HeaderValue>,
    offered_protocols: Option<HeaderValue>,
    protocol: Option<HeaderValue>,
    /// The `Sec-WebSocket-Extensions` values the client sent.
    extensions: Vec<HeaderValue>,
    deflate: Option<DeflateOptions>,
    config: WebSocketConfig,
}

impl WebSocketUpgrade {
    /// Checks that `request` opens a WebSocket and takes its upgrade.
    ///
    /// On HTTP/1.1: `GET`, `Connection: upgrade`, `Upgrade: websocket`,
    /// `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key` of 16 base64
    /// bytes. On HTTP/2: `CONNECT` with `:protocol = websocket` and version
    /// 13.
    ///
    /// # Errors
    ///
    /// A [`WebSocketRejection`] whose [`status`](WebSocketRejection::status)
    /// is the answer to send.
    pub fn from_request<B>(request: &mut Request<B>) -> Result<Self, WebSocketRejection> {
        let headers = request.headers();
        let http2 = request.version() == Version::HTTP_2;
        if http2 {
            if request.method() != Method::CONNECT || !upgrade::is_upgradable(request) {
                return Err(WebSocketRejection::NotWebSocket);
            }
        } else {
            if request.method() != Method::GET {
                return Err(WebSocketRejection::MethodNotGet);
            }
            if !has_token(headers, CONNECTION, "upgrade") || !has_token(headers, UPGRADE, "websocket") {
                return Err(WebSocketRejection::NotWebSocket);
            }
        }
        if headers.get(SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13") {
            return Err(WebSocketRejection::UnsupportedVersion);
        }
        let accept = if http2 {
            None
        } else {
            let key = headers.get(SEC_WEBSOCKET_KEY).ok_or(WebSocketRejection::InvalidKey)?;
            if !is_valid_key(key.as_bytes()) {
                return Err(WebSocketRejection::InvalidKey);
            }
            Some(
                HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
                    .map_err(|_| WebSocketRejection::InvalidKey)?,
            )
        };
        if !http2 && !upgrade::is_upgradable(request) {
            return Err(WebSocketRejection::NotWebSocket);
        }
        let origin = headers.get(ORIGIN).cloned();
        let offered_protocols = headers.get(SEC_WEBSOCKET_PROTOCOL).cloned();
        let extensions = headers.get_all(SEC_WEBSOCKET_EXTENSIONS).iter().cloned().collect();
        Ok(Self {
            on_upgrade: upgrade::on(request),
            accept,
            origin,
            offered_protocols,
            protocol: None,
            extensions,
            deflate: Some(DeflateOptions::default()),
            config: WebSocketConfig::default(),
        })
    }

    /// The origin policy: `allow` sees the `Origin` header (`None` when
    /// the client sent none, as non-browser clients do).
    ///
    /// # Errors
    ///
    /// [`WebSocketRejection::OriginNotAllowed`] (`403`) when `allow`
    /// returns `false`.
    pub fn check_origin(self, allow: impl FnOnce(Option<&str>) -> bool) -> Result<Self, WebSocketRejection> {
        let origin = self.origin.as_ref().and_then(|o| o.to_str().ok());
        if allow(origin) {
            Ok(self)
        } else {
            Err(WebSocketRejection::OriginNotAllowed)
        }
    }

    /// Picks the first subprotocol the client offered that is in
    /// `supported`, and names it in the answer. Default: none chosen.
    pub fn protocols(mut self, supported: &[&str]) -> Self {
        let offered = self.offered_protocols.as_ref().and_then(|v| v.to_str().ok()).unwrap_or_default();
        self.protocol = offered
            .split(',')
            .map(str::trim)
            .find(|p| supported.contains(p))
            .and_then(|p| HeaderValue::from_str(p).ok());
        self
    }

    /// tungstenite's settings (message and frame size limits, buffers).
    /// Default: [`WebSocketConfig::default`] (64 MiB messages, 16 MiB
    /// frames).
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = config;
        self
    }

    /// permessage-deflate's settings, or `None` to run uncompressed even
    /// when the client offers it. Default:
    /// `Some(DeflateOptions::default())`, on whenever the client offers it.
    pub fn deflate(mut self, options: Option<DeflateOptions>) -> Self {
        self.deflate = options;
        self
    }

    /// The answer that switches protocols (`101` on HTTP/1.1, `200` on
    /// HTTP/2); once it is sent, `callback` runs on a new task with the
    /// WebSocket. If the switch fails (the upgraded-connection limit, the
    /// client leaving), the callback does not run and a debug event says
    /// why.
    pub fn on_upgrade<B, F, Fut>(self, callback: F) -> Response<B>
    where
        B: Default,
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Self { on_upgrade, accept, protocol, config, extensions, deflate, .. } = self;
        let agreed = deflate.as_ref().and_then(|options| deflate::negotiate(&extensions, options));
        let mut response = Response::new(B::default());
        let headers = response.headers_mut();
        if let Some(accept) = accept {
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        }
        if let Some(protocol) = protocol {
            response.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        if let Some(agreed) = &agreed {
            response.headers_mut().insert(SEC_WEBSOCKET_EXTENSIONS, agreed.response.clone());
        }
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = WebSocketIo::new(upgraded, agreed.as_ref(), config.max_frame_size);
                    let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                    callback(socket).await;
                }
                Err(error) => tracing::debug!(%error, "the WebSocket upgrade did not happen"),
            }
        });
        response
    }
}

/// Whether a comma-separated header holds `token`, in any case.
fn has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
}

/// A key is 16 bytes in base64: 22 characters of the alphabet and `==`.
fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22].iter().all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sixteen_bytes_of_base64() {
        assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25j!!=="));
        assert!(!is_valid_key(b""));
        // RFC 6455 §1.3's example.
        assert_eq!(derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn a_plain_request_is_refused_with_426() {
        let mut request = Request::get("/ws").body(()).unwrap();
        let rejection = WebSocketUpgrade::from_request(&mut request).unwrap_err();
        assert_eq!(rejection, WebSocketRejection::NotWebSocket);
        let response: Response<()> = rejection.into_response();
        assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(response.headers()[SEC_WEBSOCKET_VERSION], "13");
    }
}
