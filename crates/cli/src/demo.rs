//! The demo application the `kite` binary serves.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use kite_server::client_hello::TlsFingerprint;
use kite_server::proxy_protocol::ProxyPeer;
use kite_server::websocket::{WebSocket, WebSocketUpgrade};
use kite_server::{ConnectionInfo, RequestBody, TlsHandshake};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const INDEX: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Kite</title></head>
<body>
<h1>Kite</h1>
<p>A Kestrel-style HTTP server for Rust. Routes:</p>
<ul>
<li><a href="/plaintext">GET /plaintext</a>: Hello, World!</li>
<li><a href="/json">GET /json</a>: a JSON message</li>
<li>POST /echo: streams the request body back</li>
<li><a href="/bytes/1024">GET /bytes/{n}</a>: streams n bytes</li>
<li><a href="/info">GET /info</a>: the connection as JSON</li>
<li>GET /ws: a WebSocket echo (HTTP/1.1, TLS, or HTTP/2 extended CONNECT)</li>
</ul>
</body>
</html>
"#;

/// The largest `/bytes/{n}`: 1 GiB.
const MAX_BYTES: u64 = 1 << 30;

/// The demo routes as a tower service.
#[derive(Clone, Debug, Default)]
pub struct Demo {
    /// The `--acme` certificate, whose status `/info` shows.
    #[cfg(feature = "acme")]
    pub acme: Option<kite_server::acme::Acme>,
}

impl tower_service::Service<Request<RequestBody>> for Demo {
    type Response = Response<DemoBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<DemoBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        #[cfg(feature = "acme")]
        if request.uri().path() == "/info" {
            if let Some(acme) = &self.acme {
                return ready(Ok(full("application/json", info_with_acme(&request, acme).into())));
            }
        }
        ready(Ok(route(request)))
    }
}

fn route(request: Request<RequestBody>) -> Response<DemoBody> {
    if request.uri().path() == "/ws" {
        return websocket(request);
    }
    let path = request.uri().path();
    let get = request.method() == Method::GET || request.method() == Method::HEAD;
    match path {
        "/" if get => full("text/html; charset=utf-8", Bytes::from_static(INDEX.as_bytes())),
        "/plaintext" if get => full("text/plain", Bytes::from_static(b"Hello, World!")),
        "/json" if get => full("application/json", Bytes::from_static(br#"{"message":"Hello, World!"}"#)),
        "/info" if get => full("application/json", info(&request).into()),
        "/echo" if request.method() == Method::POST => {
            let content_type = request.headers().get(CONTENT_TYPE).cloned();
            let mut response = Response::new(DemoBody::Echo(request.into_body()));
            if let Some(content_type) = content_type {
                response.headers_mut().insert(CONTENT_TYPE, content_type);
            }
            response
        }
        _ if path.starts_with("/bytes/") && get => match path["/bytes/".len()..].parse::<u64>() {
            Ok(n) if n <= MAX_BYTES => {
                let mut response = Response::new(DemoBody::Repeat { remaining: n });
                response.headers_mut().insert(CONTENT_TYPE, "application/octet-stream".parse().expect("static"));
                response
            }
            _ => status(StatusCode::BAD_REQUEST, "n must be a whole number of bytes up to 1073741824\n"),
        },
        "/" | "/plaintext" | "/json" | "/info" | "/echo" => {
            let mut response = status(StatusCode::METHOD_NOT_ALLOWED, "");
            let allow = if path == "/echo" { "POST" } else { "GET, HEAD" };
            response.headers_mut().insert(ALLOW, allow.parse().expect("static"));
            response
        }
        _ => status(StatusCode::NOT_FOUND, "Not Found\n"),
    }
}

/// `/ws`: echoes text and binary messages, fragmented ones reassembled;
/// tungstenite answers pings and completes the close handshake.
fn websocket(mut request: Request<RequestBody>) -> Response<DemoBody> {
    match WebSocketUpgrade::from_request(&mut request) {
        Ok(upgrade) => upgrade.on_upgrade(|mut socket: WebSocket| async move {
            while let Some(message) = socket.next().await {
                match message {
                    Ok(message) if message.is_text() || message.is_binary() => {
                        if socket.send(message).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::debug!(%error, "WebSocket closed with an error");
                        break;
                    }
                }
            }
        }),
        Err(rejection) => rejection.into_response(),
    }
}

/// `/info`, with the ACME certificate's status: its domains, expiry and
/// renewal time (Unix seconds), how many were issued, the last failure.
#[cfg(feature = "acme")]
fn info_with_acme(request: &Request<RequestBody>, acme: &kite_server::acme::Acme) -> String {
    let mut info: serde_json::Value = serde_json::from_str(&info(request)).unwrap_or_default();
    let status = acme.status();
    let unix = |t: Option<std::time::SystemTime>| {
        t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs())
    };
    info["acme"] = serde_json::json!({
        "domains": status.domains,
        "not_before": unix(status.not_before),
        "not_after": unix(status.not_after),
        "renew_at": unix(status.renew_at),
        "issued": status.issued,
        "last_error": status.last_error,
    });
    info.to_string()
}

fn info(request: &Request<RequestBody>) -> String {
    let protocol = match request.version() {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "unknown",
    };
    let connection = request.extensions().get::<ConnectionInfo>();
    let tls = connection.and_then(|c| c.features().get::<TlsHandshake>()).map(|tls| {
        serde_json::json!({
            "version": tls.version.as_str(),
            "cipher_suite": tls.cipher_suite,
            "sni": tls.sni,
            "alpn": tls.alpn_str(),
        })
    });
    let proxy = connection.and_then(|c| c.features().get::<ProxyPeer>()).map(|peer| peer.0.to_string());
    let fingerprint = connection.and_then(|c| c.features().get::<TlsFingerprint>());
    serde_json::json!({
        "protocol": protocol,
        "proxy": proxy,
        "ja4": fingerprint.map(|f| f.ja4.as_str()),
        "ja3": fingerprint.map(|f| f.ja3.as_str()),
        "pid": std::process::id(),
        "transport": connection.map(|c| c.transport()),
        "local": connection.map(|c| c.local().to_string()),
        "remote": connection.map(|c| c.remote().to_string()),
        "tls": tls,
    })
    .to_string()
}

fn full(content_type: &'static str, body: Bytes) -> Response<DemoBody> {
    let mut response = Response::new(DemoBody::Full(Some(body)));
    response.headers_mut().insert(CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response
}

fn status(code: StatusCode, text: &'static str) -> Response<DemoBody> {
    let mut response = full("text/plain", Bytes::from_static(text.as_bytes()));
    *response.status_mut() = code;
    response
}

/// The demo's response bodies.
pub enum DemoBody {
    /// One buffer.
    Full(Option<Bytes>),
    /// The request body, streamed back.
    Echo(RequestBody),
    /// `remaining` more bytes of `x`.
    Repeat { remaining: u64 },
}

impl Default for DemoBody {
    /// An empty body.
    fn default() -> Self {
        DemoBody::Full(None)
    }
}

static REPEAT_CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];

impl Body for DemoBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            DemoBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            DemoBody::Echo(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            DemoBody::Repeat { remaining } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let n = (*remaining).min(REPEAT_CHUNK.len() as u64) as usize;
                *remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&REPEAT_CHUNK[..n])))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            DemoBody::Full(bytes) => bytes.is_none(),
            DemoBody::Echo(body) => body.is_end_stream(),
            DemoBody::Repeat { remaining } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            DemoBody::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            DemoBody::Echo(body) => body.size_hint(),
            DemoBody::Repeat { remaining } => SizeHint::with_exact(*remaining),
        }
    }
}
