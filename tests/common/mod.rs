//! The end-to-end harness: a real server on loopback port 0, a test
//! application, and small raw-socket clients.
#![allow(dead_code)]

mod tools;

#[allow(unused_imports)]
pub use tools::{missing, python, require_tool, INSTALLS};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use kite::{ConnectionInfo, MaxRequestBodySize, RequestBody, Server, ServerOptions, ShutdownHandle, StreamReset};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type TestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// An upper bound on any one wait in these tests, so a bug fails a test
/// instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(10);

/// The transports the end-to-end tests run on: every one compiled in
/// (or those `KITE_TEST_TRANSPORTS` names, comma-separated).
pub fn transports() -> Vec<&'static str> {
    let mut all = vec!["sockets"];
    if cfg!(feature = "mio") {
        all.push("mio");
    }
    if cfg!(feature = "uring") {
        all.push("uring");
    }
    // KITE_TEST_TRANSPORTS=uring,mio narrows a run to some of them.
    if let Ok(only) = std::env::var("KITE_TEST_TRANSPORTS") {
        all.retain(|t| only.split(',').any(|o| o.trim() == *t));
    }
    all
}

/// A builder on the transport named `transport`.
pub fn builder_on(transport: &str) -> kite::ServerBuilder {
    match transport {
        "sockets" => Server::builder(),
        #[cfg(feature = "mio")]
        "mio" => Server::builder().transport(
            kite::mio::MioTransport::new(kite::mio::MioOptions::default().threads(2)).expect("mio transport"),
        ),
        #[cfg(feature = "uring")]
        "uring" => Server::builder().transport(
            kite::uring::UringTransport::new(kite::uring::UringOptions::default().threads(2))
                .expect("the io_uring transport: this machine must offer io_uring (Linux 6.0 or later)"),
        ),
        other => panic!("unknown transport {other}"),
    }
}

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub addresses: Vec<String>,
    pub shutdown: ShutdownHandle,
    pub done: tokio::task::JoinHandle<Result<(), kite::ServerError>>,
    pub gate: Arc<Gate>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Shuts down and waits for the server to finish.
    pub async fn stop(self) {
        self.shutdown.shutdown();
        tokio::time::timeout(WAIT, self.done).await.expect("server stops in time").unwrap().unwrap();
    }
}

/// Lets a test hold a request inside the application: `/slow` signals
/// `entered` and waits for `release`.
#[derive(Default)]
pub struct Gate {
    pub entered: Notify,
    pub release: Notify,
    /// Notified when a `/slow` request is dropped before it was released.
    pub cancelled: Notify,
    /// The last body error `/count` saw, and its notification.
    pub body_error: std::sync::Mutex<Option<String>>,
    pub body_failed: Notify,
}

/// Notifies `cancelled` when dropped while armed.
struct CancelGuard<'a>(&'a Gate, bool);

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.cancelled.notify_one();
        }
    }
}

pub async fn start(transport: &str, options: ServerOptions) -> TestServer {
    start_with(transport, options, |b| b).await
}

pub async fn start_with(
    transport: &str,
    mut options: ServerOptions,
    configure: impl FnOnce(kite::ServerBuilder) -> kite::ServerBuilder,
) -> TestServer {
    // KITE_TEST_LOG=debug (a tracing filter) shows the server's events.
    if let Ok(filter) = std::env::var("KITE_TEST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    }
    options.handle_signals = false;
    // Short timeouts in these tests need a finer beat than Kestrel's 1 s.
    options.http = options.http.heartbeat_interval(Duration::from_millis(20));
    let gate = Arc::new(Gate::default());
    let builder = builder_on(transport).urls(["http://127.0.0.1:0"]).options(options);
    let server = configure(builder).bind().await.expect("bind");
    let addresses = server.addresses();
    let addr =
        server.local_endpoints().iter().find_map(|e| e.as_tcp()).unwrap_or_else(|| "127.0.0.1:1".parse().unwrap());
    let shutdown = server.shutdown_handle();
    let app_gate = Arc::clone(&gate);
    let done = tokio::spawn(server.serve(kite::service_fn(move |req| app(req, Arc::clone(&app_gate)))));
    TestServer { addr, addresses, shutdown, done, gate }
}

fn full(body: impl Into<Bytes>) -> Response<TestBody> {
    Response::new(http_body_util::Full::new(body.into()).map_err(|e| match e {}).boxed_unsync())
}

/// Sends one chunk, then resets the stream with CANCEL (0x8).
struct ResetAfterFirstChunk {
    reset: StreamReset,
    sent: bool,
}

impl Body for ResetAfterFirstChunk {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if !self.sent {
            self.sent = true;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"partial")))));
        }
        self.reset.reset(0x8);
        Poll::Pending
    }
}

/// A WebSocket echo; `?protocols` offers the `chat` subprotocol,
/// `?origin` allows only `https://good.example`, `?small` compresses with
/// a 1 KiB window, `?context` carries the server's compression context
/// across messages, and `?plain` turns permessage-deflate off.
fn websocket_echo(mut req: Request<RequestBody>) -> Response<TestBody> {
    use futures_util::{SinkExt, StreamExt};
    use kite::websocket::{DeflateOptions, WebSocketUpgrade};
    let query = req.uri().query().unwrap_or_default().to_string();
    let mut deflate = DeflateOptions::default();
    if query.contains("small") {
        deflate.server_max_window_bits = 10;
    }
    if query.contains("context") {
        deflate.server_no_context_takeover = false;
    }
    let deflate = (!query.contains("plain")).then_some(deflate);
    let upgrade = WebSocketUpgrade::from_request(&mut req).and_then(|upgrade| {
        if query.contains("origin") {
            upgrade.check_origin(|origin| origin == Some("https://good.example"))
        } else {
            Ok(upgrade)
        }
    });
    match upgrade {
        Ok(upgrade) => upgrade.protocols(&["chat"]).deflate(deflate).on_upgrade(|mut socket| async move {
            while let Some(Ok(message)) = socket.next().await {
                if (message.is_text() || message.is_binary()) && socket.send(message).await.is_err() {
                    break;
                }
            }
        }),
        Err(rejection) => rejection.into_response(),
    }
}

/// An opaque upgrade to a made-up `echo` protocol: bytes come back as they
/// are, those sent with the request head included.
fn raw_upgrade(mut req: Request<RequestBody>) -> Response<TestBody> {
    let on_upgrade = kite::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(mut stream) = on_upgrade.await {
            let (mut reader, mut writer) = tokio::io::split(&mut stream);
            let _ = tokio::io::copy(&mut reader, &mut writer).await;
        }
    });
    let mut response = full("");
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("upgrade"));
    response.headers_mut().insert(http::header::UPGRADE, http::HeaderValue::from_static("echo"));
    response
}

/// Sends a chunk, then panics.
struct PanicAfterFirstChunk(bool);

impl Body for PanicAfterFirstChunk {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if !self.0 {
            self.0 = true;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first")))));
        }
        panic!("the response body panicked on purpose");
    }
}

/// Notifies the gate's `cancelled` when dropped.
struct DropNotify(Arc<Gate>);

impl Drop for DropNotify {
    fn drop(&mut self) {
        self.0.cancelled.notify_one();
    }
}

/// 64 KiB chunks without end; tells the gate when it is dropped.
struct Forever(DropNotify);

impl Body for Forever {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        static CHUNK: [u8; 65536] = [b'f'; 65536];
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK)))))
    }
}

/// The test application.
pub async fn app(req: Request<RequestBody>, gate: Arc<Gate>) -> Result<Response<TestBody>, Infallible> {
    let path = req.uri().path().to_string();
    let response = match path.as_str() {
        "/plaintext" => full("Hello, World!"),
        "/remote" => {
            let info = req.extensions().get::<ConnectionInfo>().expect("connection info");
            full(info.remote().to_string())
        }
        "/echo" => {
            let (_, body) = req.into_parts();
            Response::new(body.map_err(BoxError::from).boxed_unsync())
        }
        "/count" => {
            // Reads the whole body and answers with its length.
            match req.into_body().collect().await {
                Ok(collected) => full(collected.to_bytes().len().to_string()),
                Err(e) => {
                    *gate.body_error.lock().unwrap() = Some(e.to_string());
                    gate.body_failed.notify_one();
                    let mut response = full(e.to_string());
                    *response.status_mut() = StatusCode::BAD_REQUEST;
                    response
                }
            }
        }
        "/unlimited" => {
            let limit = req.extensions().get::<MaxRequestBodySize>().expect("limit extension").clone();
            limit.set(None).expect("writable before reading");
            let (_, mut body) = req.into_parts();
            let first = body.frame().await;
            let read_only = limit.set(Some(1)).is_err();
            let mut total = first.and_then(|f| f.ok()).and_then(|f| f.into_data().ok()).map_or(0, |d| d.len());
            while let Some(frame) = body.frame().await {
                total += frame.expect("body frame").into_data().map_or(0, |d| d.len());
            }
            full(format!("{total} read_only={read_only}"))
        }
        "/relaxed" => {
            let rates = req.extensions().get::<kite::MinDataRates>().expect("HTTP/1.x carries the rates").clone();
            rates.set_request_body(None).expect("HTTP/1.x may change its rate");
            match req.into_body().collect().await {
                Ok(collected) => full(collected.to_bytes().len().to_string()),
                Err(e) => full(e.to_string()),
            }
        }
        "/fingerprint" => {
            // The client's JA4 as Kite computed it, and the ClientHello it
            // came from, in hex.
            use kite::middleware::client_hello::TlsFingerprint;
            let info = req.extensions().get::<ConnectionInfo>().expect("connection info");
            let ja4 = info.features().get::<TlsFingerprint>().map_or("-".to_string(), |f| f.ja4.clone());
            let hello = info
                .features()
                .get::<RawHello>()
                .map_or(String::new(), |h| h.0.iter().map(|b| format!("{b:02x}")).collect());
            full(format!("{ja4} {hello}"))
        }
        "/proxy" => {
            // The PROXY protocol's view: the client, the proxy, v2's authority.
            use kite::middleware::proxy_protocol::{ProxyPeer, ProxyTlvs};
            let info = req.extensions().get::<ConnectionInfo>().expect("connection info");
            let peer = info.features().get::<ProxyPeer>().map_or("-".to_string(), |p| p.0.to_string());
            let authority = info.features().get::<ProxyTlvs>().and_then(|t| t.authority()).unwrap_or("-").to_string();
            full(format!("client={} proxy={peer} authority={authority}", info.remote()))
        }
        "/headers" => {
            // The request's headers, one `name: value` a line.
            let lines: String = req
                .headers()
                .iter()
                .map(|(name, value)| format!("{name}: {}\n", value.to_str().unwrap_or("?")))
                .collect();
            full(lines)
        }
        "/ignore" => full("ignored"),
        "/part" => {
            // Reads at most one frame of the body, then answers.
            let mut body = req.into_body();
            let _ = body.frame().await;
            full("read-part")
        }
        "/digest" => {
            // Reads the whole body, then answers with its length and digest.
            match req.into_body().collect().await {
                Ok(collected) => full(digest(&collected.to_bytes())),
                Err(e) => {
                    let mut response = full(e.to_string());
                    *response.status_mut() = StatusCode::BAD_REQUEST;
                    response
                }
            }
        }
        "/tls" => {
            let info = req.extensions().get::<ConnectionInfo>().expect("connection info");
            match info.features().get::<kite::tls::TlsHandshake>() {
                Some(tls) => full(format!(
                    "{} {} {} {} {}",
                    tls.version,
                    tls.cipher_suite,
                    tls.sni.as_deref().unwrap_or("-"),
                    tls.alpn_str().unwrap_or("-"),
                    tls.peer_certificates.len()
                )),
                None => full("plaintext"),
            }
        }
        "/thread" => full(std::thread::current().name().unwrap_or("unnamed").to_string()),
        "/panic" => panic!("the application panicked on purpose"),
        "/panic-mid-body" => Response::new(PanicAfterFirstChunk(false).boxed_unsync()),
        "/forever" => {
            let guard = DropNotify(Arc::clone(&gate));
            Response::new(Forever(guard).boxed_unsync())
        }
        "/slow" => {
            let mut guard = CancelGuard(&gate, true);
            gate.entered.notify_one();
            gate.release.notified().await;
            guard.1 = false;
            full("finished")
        }
        "/reset" => {
            // `?code=N` resets the HTTP/2 stream before any response.
            let code = req.uri().query().and_then(|q| q.strip_prefix("code=")).and_then(|c| c.parse().ok());
            match req.extensions().get::<StreamReset>() {
                Some(reset) => {
                    reset.reset(code.unwrap_or(2));
                    full("reset")
                }
                None => full("no reset on this protocol"),
            }
        }
        "/ws" => websocket_echo(req),
        "/raw-upgrade" => raw_upgrade(req),
        "/reset-mid-body" => {
            let reset = req.extensions().get::<StreamReset>().expect("HTTP/2 only").clone();
            Response::new(ResetAfterFirstChunk { reset, sent: false }.boxed_unsync())
        }
        "/stream" => Response::new(Chunks { left: 3 }.boxed_unsync()),
        "/nocontent" => {
            let mut response = full("");
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        _ => {
            let mut response = full("not found");
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    Ok(response)
}

/// `n` bytes that differ from one position to the next, so a lost, doubled
/// or reordered piece shows.
pub fn pattern(n: usize) -> Bytes {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect::<Vec<u8>>().into()
}

/// The length and FNV-1a digest of `bytes`, as `/digest` answers.
pub fn digest(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{} {hash:016x}", bytes.len())
}

/// A body of unknown length: three chunks of `chunk\n`.
pub struct Chunks {
    pub left: u32,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"chunk\n")))))
    }
    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A parsed response read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Reads one response (content-length, chunked, or to EOF) from `stream`,
/// keeping bytes that follow it in `buf`.
pub async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> RawResponse {
    tokio::time::timeout(WAIT, read_response_inner(stream, buf, false)).await.expect("response in time")
}

/// Reads the response to a HEAD request: a head only, whatever its
/// framing headers say.
pub async fn read_head_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> RawResponse {
    tokio::time::timeout(WAIT, read_response_inner(stream, buf, true)).await.expect("response in time")
}

async fn read_response_inner(stream: &mut TcpStream, buf: &mut Vec<u8>, head_only: bool) -> RawResponse {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head_len) = parsed.parse(buf).expect("valid response head") {
            let status = parsed.code.unwrap();
            let headers: Vec<(String, String)> = parsed
                .headers
                .iter()
                .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).to_string()))
                .collect();
            buf.drain(..head_len);
            let response = RawResponse { status, headers, body: Vec::new() };
            if head_only {
                return response;
            }
            return read_body(stream, buf, response).await;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed before a response head; got {:?}", String::from_utf8_lossy(buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await.expect("read");
    buf.extend_from_slice(&chunk[..n]);
    n
}

async fn read_body(stream: &mut TcpStream, buf: &mut Vec<u8>, mut response: RawResponse) -> RawResponse {
    if response.status == 100 || response.status == 204 || response.status == 304 {
        return response;
    }
    if let Some(length) = response.header("content-length").map(|v| v.parse::<usize>().unwrap()) {
        while buf.len() < length {
            assert!(fill(stream, buf).await > 0, "closed mid-body");
        }
        response.body = buf.drain(..length).collect();
    } else if response.header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let line_end = loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                assert!(fill(stream, buf).await > 0, "closed mid-chunk");
            };
            let size = usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).unwrap(), 16).unwrap();
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                assert!(fill(stream, buf).await > 0, "closed mid-chunk");
            }
            response.body.extend(buf.drain(..size));
            buf.drain(..2);
            if size == 0 {
                break;
            }
        }
    } else {
        while fill(stream, buf).await > 0 {}
        response.body = std::mem::take(buf);
    }
    response
}

/// Sends `request` on a new connection and reads one response.
pub async fn roundtrip(addr: SocketAddr, request: &[u8]) -> (RawResponse, TcpStream) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut buf = Vec::new();
    let response = read_response(&mut stream, &mut buf).await;
    (response, stream)
}

/// Asserts the server closes `stream` (EOF or reset) in time.
pub async fn assert_closed(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    let result = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await.expect("server closes in time");
    if let Ok(n) = result {
        assert_eq!(n, 0, "unexpected bytes before close: {:?}", String::from_utf8_lossy(&rest));
    }
}

/// A Python interpreter that can import `module` ([`tools::python`]). A
/// missing one fails the test, as [`missing`] says.
pub fn python_with(module: &str) -> Option<String> {
    let python = tools::python();
    let found = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|out| out.status.success());
    let usable = found || missing(&format!("{python} cannot import {module}; {}", tools::INSTALLS));
    usable.then_some(python)
}

/// Runs `script` of `tests/clients/` with `args` under `python`, bounded
/// in time, and parses the one JSON object it prints.
pub async fn python_client(python: &str, script: &str, args: &[&str]) -> serde_json::Value {
    let path = format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let run = tokio::process::Command::new(python).arg(path).args(args).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(30), run).await.expect("the client finishes").unwrap();
    assert!(out.status.success(), "{script} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{script} {args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Runs `script` of `tests/clients/` with `args` under `python`, bounded
/// in time, and returns what it printed.
pub async fn python_client_text(python: &str, script: &str, args: &[&str]) -> String {
    let path = format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let run = tokio::process::Command::new(python).arg(path).args(args).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(30), run).await.expect("the client finishes").unwrap();
    assert!(out.status.success(), "{script} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A server whose HTTPS endpoint speaks HTTP/1.1, HTTP/2 and HTTP/3 (on
/// QUIC, whatever `transport` serves TCP), and its certificate.
pub async fn start_h3(
    transport: &str,
    options: ServerOptions,
) -> (TestServer, rustls::pki_types::CertificateDer<'static>) {
    let (certificate, der) = self_signed();
    let server = start_with(transport, options, move |builder| {
        builder.listen_with(([127, 0, 0, 1], 0), move |listen| {
            listen
                .protocols(kite::Protocols::Http1AndHttp2AndHttp3)
                .use_https(kite::tls::TlsOptions::new().certificate(certificate))
        })
    })
    .await;
    (server, der)
}

/// A server on an HTTPS endpoint with a fresh self-signed certificate for
/// `localhost`, and that certificate, to trust it.
pub async fn start_https(transport: &str) -> (TestServer, rustls::pki_types::CertificateDer<'static>) {
    start_https_with(transport, ServerOptions::default()).await
}

/// [`start_https`] with `options`.
pub async fn start_https_with(
    transport: &str,
    options: ServerOptions,
) -> (TestServer, rustls::pki_types::CertificateDer<'static>) {
    let (certificate, der) = self_signed();
    let server = start_with(transport, options, move |builder| {
        builder.listen_tls(([127, 0, 0, 1], 0), kite::tls::TlsOptions::new().certificate(certificate))
    })
    .await;
    (server, der)
}

/// A ClientHello's bytes, kept by the tests' listener for `/fingerprint`.
pub struct RawHello(pub Vec<u8>);

/// A fresh self-signed certificate for `localhost`, and its DER to trust.
pub fn self_signed() -> (kite::tls::Certificate, rustls::pki_types::CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let der = certified.cert.der().clone();
    let certificate = kite::tls::Certificate::from_pem(
        certified.cert.pem().as_bytes(),
        certified.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    (certificate, der)
}

/// A TLS connection to `server` (trusting `certificate`) that offers
/// `alpn`.
pub async fn connect_tls(
    server: &TestServer,
    certificate: rustls::pki_types::CertificateDer<'static>,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    connector.connect("localhost".try_into().unwrap(), tcp).await.expect("TLS handshake")
}
