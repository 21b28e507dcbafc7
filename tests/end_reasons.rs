//! Why each connection closed: every `error.type` of
//! `kite.connection.duration` provoked for real, then found in a scrape of
//! a Prometheus endpoint (a second Kite server rendering this test
//! binary's recorder).

mod common;
#[path = "common/h3.rs"]
mod h3_client;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use kite::middleware::client_hello::ClientHelloListener;
use kite::middleware::proxy_protocol::{ProxyMode, ProxyProtocol};
use kite::middleware::{ConnectionError, ConnectionMiddleware, Next};
use kite::tls::{TlsFilter, TlsOptions};
use kite::transport::{Connection, ConnectionEndReason};
use kite::{MinDataRate, Protocols, ServerOptions};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A middleware that refuses every connection.
struct RefuseAll;

#[async_trait]
impl ConnectionMiddleware for RefuseAll {
    async fn on_connection(&self, _connection: Connection, _next: Next) -> Result<(), ConnectionError> {
        Err(ConnectionError::rejected("refused by the test"))
    }
}

/// An application that is never ready: its `poll_ready` fails.
#[derive(Clone)]
struct NeverReady;

impl tower_service::Service<http::Request<kite::RequestBody>> for NeverReady {
    type Response = http::Response<String>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<http::Response<String>, std::io::Error>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), std::io::Error>> {
        std::task::Poll::Ready(Err(std::io::Error::other("the test's service is never ready")))
    }

    fn call(&mut self, _request: http::Request<kite::RequestBody>) -> Self::Future {
        std::future::ready(Ok(http::Response::new(String::new())))
    }
}

/// Serves `handle`'s rendering at `/metrics` on a Kite server of its own;
/// returns its address.
async fn prometheus_endpoint(handle: PrometheusHandle) -> std::net::SocketAddr {
    let server = kite::Server::builder()
        .urls(["http://127.0.0.1:0"])
        .handle_signals(false)
        .bind()
        .await
        .expect("bind the metrics endpoint");
    let addr = server.local_endpoints()[0].as_tcp().expect("tcp");
    tokio::spawn(server.serve(kite::service_fn(move |_request| {
        let text = handle.render();
        async move { Ok::<_, std::convert::Infallible>(http::Response::new(text)) }
    })));
    addr
}

/// One scrape of the Prometheus endpoint, as a client would make it.
async fn scrape(metrics: std::net::SocketAddr) -> String {
    let (response, _) = roundtrip(metrics, b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n").await;
    assert_eq!(response.status, 200);
    String::from_utf8(response.body).expect("text")
}

/// Waits until a scrape shows `kite.connection.duration` with
/// `error.type` = `reason` on `port`, or fails naming it.
async fn expect_reason(metrics: std::net::SocketAddr, port: u16, reason: ConnectionEndReason) {
    expect_reason_on(metrics, port, "tcp", reason).await
}

/// [`expect_reason`] for a connection over `network` (`tcp` or `udp`).
async fn expect_reason_on(metrics: std::net::SocketAddr, port: u16, network: &str, reason: ConnectionEndReason) {
    let wanted = format!("server_port=\"{port}\"");
    let transport = format!("network_transport=\"{network}\"");
    let tag = format!("error_type=\"{reason}\"");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = scrape(metrics).await;
        let found = text.lines().any(|line| {
            line.starts_with("kite_connection_duration_count{")
                && line.contains(&wanted)
                && line.contains(&transport)
                && line.contains(&tag)
        });
        if found {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {tag} on port {port} in:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).expect("a port")
}

/// Sends `bytes` on a new connection and reads until the server closes it.
async fn send_and_read_to_close(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await.expect("closed in time");
    answer
}

fn starts_with_status(answer: &[u8], status: &str) -> bool {
    answer.starts_with(format!("HTTP/1.1 {status}").as_bytes())
}

#[tokio::test]
async fn every_end_reason_is_tagged_and_scraped() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only recorder of this binary");
    let metrics = prometheus_endpoint(handle).await;

    // An application whose service fails to become ready.
    let failing = kite::Server::builder().urls(["http://127.0.0.1:0"]).handle_signals(false).bind().await.unwrap();
    let failing_addr = failing.local_endpoints()[0].as_tcp().expect("tcp");
    let failing_stop = failing.shutdown_handle();
    let failing_done = tokio::spawn(failing.serve(NeverReady));
    let answer = send_and_read_to_close(failing_addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    expect_reason(metrics, failing_addr.port(), ConnectionEndReason::ServiceFailed).await;
    failing_stop.shutdown();
    let _ = failing_done.await;

    for transport in transports() {
        let mut options = ServerOptions::default();
        options.http.limits.keep_alive_timeout = Duration::from_millis(300);
        options.http.limits.request_headers_timeout = Duration::from_millis(300);
        options.http.limits.max_request_body_size = Some(16);
        options.http.limits.max_request_headers_total_size = 4096;
        options.http.limits.min_request_body_data_rate = Some(MinDataRate::new(1_000, Duration::from_millis(1_100)));
        options.http.limits.min_response_data_rate = Some(MinDataRate::new(1_000_000, Duration::from_millis(1_100)));
        options.shutdown_timeout = Duration::from_millis(200);
        let (certificate, der) = self_signed();
        let server = start_with(transport, options, move |builder| {
            let tls = || TlsOptions::new().certificate(certificate.clone());
            let refusing_hello = ClientHelloListener::new(|_, _| Err("refused by the test".into()));
            builder
                .listen(([127, 0, 0, 1], 0))
                .listen_tls(([127, 0, 0, 1], 0), tls())
                .listen_with(([127, 0, 0, 1], 0), |listen| {
                    listen.use_proxy_protocol(ProxyProtocol::new(ProxyMode::Required))
                })
                .listen_with(([127, 0, 0, 1], 0), |listen| listen.use_(refusing_hello).use_https(tls()))
                .listen_with(([127, 0, 0, 1], 0), |listen| listen.use_https(tls()).use_(TlsFilter::new(|_| false)))
                .listen_with(([127, 0, 0, 1], 0), |listen| listen.use_(RefuseAll))
                .listen(([127, 0, 0, 1], 0))
                .listen_with(([127, 0, 0, 1], 0), |listen| listen.protocols(Protocols::Http3).use_https(tls()))
        })
        .await;
        assert_eq!(server.addresses.len(), 8, "{:?}", server.addresses);
        let ports: Vec<u16> = server.addresses.iter().map(|url| port_of(url)).collect();
        let [plain, tls, proxy, hello, filter, refused, idle_h2, idle_h3] = ports[..] else { unreachable!() };
        let at = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
        use ConnectionEndReason::*;

        // A clean close carries no error.type.
        let (answer, _) =
            roundtrip(at(plain), b"GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
        assert_eq!(answer.status, 200);

        // HTTP/1.1 on the plain endpoint.
        let (answer, mut idle) = roundtrip(at(plain), b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(answer.status, 200);
        assert_closed(&mut idle).await;
        expect_reason(metrics, plain, KeepAliveTimeout).await;

        let answer = send_and_read_to_close(at(plain), b"GET /plaintext HTTP/1.1\r\nHost:").await;
        assert!(starts_with_status(&answer, "408"), "{}", String::from_utf8_lossy(&answer));
        expect_reason(metrics, plain, RequestHeadersTimeout).await;

        let answer = send_and_read_to_close(at(plain), b"GET / HTTP/1.1\r\nHost: a\r\nbad header\r\n\r\n").await;
        assert!(starts_with_status(&answer, "400"));
        expect_reason(metrics, plain, InvalidRequestHeaders).await;

        let answer = send_and_read_to_close(at(plain), b"GET\r\n\r\n").await;
        assert!(starts_with_status(&answer, "400"));
        expect_reason(metrics, plain, InvalidRequestLine).await;

        let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "b".repeat(8192));
        let answer = send_and_read_to_close(at(plain), big.as_bytes()).await;
        assert!(starts_with_status(&answer, "431"));
        expect_reason(metrics, plain, MaxRequestHeadersSize).await;

        let answer =
            send_and_read_to_close(at(plain), b"POST /count HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n").await;
        assert!(starts_with_status(&answer, "413"), "{}", String::from_utf8_lossy(&answer));
        expect_reason(metrics, plain, MaxRequestBodySize).await;

        let answer =
            send_and_read_to_close(at(plain), b"POST /count HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nx").await;
        assert!(starts_with_status(&answer, "408"), "{}", String::from_utf8_lossy(&answer));
        expect_reason(metrics, plain, MinRequestBodyDataRate).await;

        let chunked = b"POST /count HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        let answer = send_and_read_to_close(at(plain), chunked).await;
        assert!(starts_with_status(&answer, "400"), "{}", String::from_utf8_lossy(&answer));
        expect_reason(metrics, plain, InvalidRequestBody).await;

        let mut early = TcpStream::connect(at(plain)).await.unwrap();
        early.write_all(b"POST /count HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc").await.unwrap();
        early.shutdown().await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(WAIT, early.read_to_end(&mut answer)).await.expect("closed");
        expect_reason(metrics, plain, UnexpectedEndOfRequestContent).await;

        let reset = TcpStream::connect(at(plain)).await.unwrap();
        let mut reset = reset.into_std().unwrap();
        std::io::Write::write_all(&mut reset, b"GET /plaintext HTTP/1.1\r\nHo").unwrap();
        socket2::SockRef::from(&reset).set_linger(Some(Duration::ZERO)).unwrap();
        drop(reset);
        expect_reason(metrics, plain, ConnectionReset).await;

        // A client that stops reading a response that never ends.
        let mut stalled = TcpStream::connect(at(plain)).await.unwrap();
        stalled.write_all(b"GET /forever HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
        tokio::time::timeout(WAIT, server.gate.cancelled.notified()).await.expect("the response was aborted");
        expect_reason(metrics, plain, MinResponseDataRate).await;
        drop(stalled);

        // The head may or may not have left before the abort; the body never ends.
        let answer = send_and_read_to_close(at(plain), b"GET /panic-mid-body HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert!(!answer.ends_with(b"0\r\n\r\n"), "{}", String::from_utf8_lossy(&answer));
        expect_reason(metrics, plain, ResponseBodyFailed).await;

        // HTTP/2 with prior knowledge and a broken preface.
        let goaway = send_and_read_to_close(at(plain), b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n").await;
        // SETTINGS, then GOAWAY(PROTOCOL_ERROR).
        assert_eq!(goaway.get(12), Some(&0x7), "a GOAWAY frame: {goaway:?}");
        assert!(goaway.ends_with(&[0, 0, 0, 1]), "PROTOCOL_ERROR: {goaway:?}");
        expect_reason(metrics, plain, ProtocolError).await;

        // An idle HTTP/2 connection (prior knowledge) and an idle HTTP/3
        // one: the server ends each after the keep-alive timeout.
        let tcp = TcpStream::connect(at(idle_h2)).await.unwrap();
        let (mut send, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
        let driver = tokio::spawn(connection);
        let request = http::Request::get("http://a/plaintext").body(()).unwrap();
        let (response, _) = send.send_request(request, true).unwrap();
        assert_eq!(response.await.unwrap().status(), 200);
        let ended = tokio::time::timeout(WAIT, driver).await.expect("the server ended the idle HTTP/2 connection");
        assert!(ended.unwrap().is_ok(), "a GOAWAY(NO_ERROR), not a failure");
        expect_reason(metrics, idle_h2, KeepAliveTimeout).await;

        let mut h3 = h3_client::connect(at(idle_h3), der.clone()).await;
        assert_eq!(h3.get("/plaintext").await.status, 200);
        let driver = std::mem::replace(&mut h3.driver, tokio::spawn(std::future::pending()));
        let ended = tokio::time::timeout(WAIT, driver).await.expect("the server ended the idle HTTP/3 connection");
        let ended = ended.unwrap();
        assert!(ended.is_h3_no_error(), "closed with H3_NO_ERROR: {ended:?}");
        expect_reason_on(metrics, idle_h3, "udp", KeepAliveTimeout).await;
        h3.close().await;

        // The connection middleware endpoints.
        let alert = send_and_read_to_close(at(tls), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert!(!alert.starts_with(b"HTTP"), "no HTTP answer on a TLS endpoint");
        expect_reason(metrics, tls, TlsHandshakeFailed).await;

        let answer = send_and_read_to_close(at(proxy), b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert!(answer.is_empty(), "closed without an answer");
        expect_reason(metrics, proxy, ProxyProtocolInvalid).await;

        let tls_client = |port: u16| {
            let der = der.clone();
            async move {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(der).unwrap();
                let config =
                    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                        .with_safe_default_protocol_versions()
                        .unwrap()
                        .with_root_certificates(roots)
                        .with_no_client_auth();
                let tcp = TcpStream::connect(at(port)).await.unwrap();
                let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
                match connector.connect("localhost".try_into().unwrap(), tcp).await {
                    Ok(mut stream) => {
                        let _ = stream.write_all(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n").await;
                        let mut rest = Vec::new();
                        let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await.expect("closed");
                        rest
                    }
                    Err(_) => Vec::new(),
                }
            }
        };
        assert!(tls_client(hello).await.is_empty(), "the ClientHello was refused");
        expect_reason(metrics, hello, ClientHelloRefused).await;
        assert!(tls_client(filter).await.is_empty(), "the TLS filter refused the connection");
        expect_reason(metrics, filter, TlsNotAllowed).await;

        let answer = send_and_read_to_close(at(refused), b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert!(answer.is_empty());
        expect_reason(metrics, refused, ConnectionRejected).await;

        // A request that outlives the shutdown timeout.
        let mut stuck = TcpStream::connect(at(plain)).await.unwrap();
        stuck.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
        tokio::time::timeout(WAIT, server.gate.entered.notified()).await.expect("the request reached the app");
        server.shutdown.shutdown();
        tokio::time::timeout(WAIT, server.done).await.expect("stopped in time").unwrap().unwrap();
        expect_reason(metrics, plain, AppShutdownTimeout).await;

        let text = scrape(metrics).await;
        let clean = text.lines().any(|line| {
            line.starts_with("kite_connection_duration_count{")
                && line.contains(&format!("server_port=\"{plain}\""))
                && !line.contains("error_type")
        });
        assert!(clean, "the clean close has no error.type: {text}");
    }
}
