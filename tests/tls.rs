//! TLS end to end: rustls and curl clients, SNI, client certificates, the
//! TLS filter, the handshake timeout, and logging on either side of TLS.

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use kite::middleware::{ConnectionBuilder, ConnectionLogging};
use kite::tls::{Certificate, ClientCertificateMode, TlsFilter, TlsOptions, TlsVersion};
use kite::tls::{HandshakeError, HandshakeObserver, RootCertStore, TlsHandshake, TlsMiddleware};
use kite::transport::{ConnectionContext, ConnectionId, Transport};
use kite::ServerOptions;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A test certificate authority and the certificates it signs.
struct Ca {
    cert: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

/// A certificate with its key, for either side.
struct Issued {
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

impl Issued {
    fn server(&self) -> Certificate {
        Certificate::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes()).unwrap()
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone().into())
    }
}

fn ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "Kite test CA");
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).unwrap();
        Ca { cert: cert.der().clone(), issuer: rcgen::Issuer::new(params, key) }
    })
}

fn issue(name: &str, usage: rcgen::ExtendedKeyUsagePurpose) -> Issued {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, &ca().issuer).unwrap();
    Issued {
        chain: vec![cert.der().clone()],
        key_der: key.serialize_der(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn server_cert(name: &str) -> Issued {
    issue(name, rcgen::ExtendedKeyUsagePurpose::ServerAuth)
}

fn roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add(ca().cert.clone()).unwrap();
    roots
}

/// A rustls client: which versions and suites it offers, and its
/// certificate if any.
#[derive(Default)]
struct Client {
    versions: Option<Vec<&'static rustls::SupportedProtocolVersion>>,
    suite: Option<rustls::CipherSuite>,
    /// The suites offered, in this order of preference.
    suites: Option<Vec<rustls::CipherSuite>>,
    identity: Option<Issued>,
}

/// What a TLS exchange gave the client.
struct Exchange {
    server_leaf: CertificateDer<'static>,
    response: Option<RawResponse>,
}

impl Client {
    fn config(&self) -> rustls::ClientConfig {
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(suite) = self.suite {
            provider.cipher_suites.retain(|s| s.suite() == suite);
        }
        if let Some(order) = &self.suites {
            let all = std::mem::take(&mut provider.cipher_suites);
            provider.cipher_suites =
                order.iter().map(|wanted| *all.iter().find(|s| s.suite() == *wanted).expect("a known suite")).collect();
        }
        let versions = self.versions.clone().unwrap_or_else(|| vec![&rustls::version::TLS12, &rustls::version::TLS13]);
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&versions)
            .unwrap()
            .with_root_certificates(roots());
        let mut config = match &self.identity {
            Some(identity) => builder.with_client_auth_cert(identity.chain.clone(), identity.key()).unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }

    /// Connects to `addr` as `name`, sends `GET path` and reads the answer.
    /// `Err` when the handshake fails; `response: None` when the server
    /// closes instead of answering.
    async fn get(&self, addr: std::net::SocketAddr, name: &str, path: &str) -> Result<Exchange, String> {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(self.config()));
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let server_name = ServerName::try_from(name.to_string()).unwrap();
        let mut tls = tokio::time::timeout(WAIT, connector.connect(server_name, tcp))
            .await
            .expect("handshake in time")
            .map_err(|e| e.to_string())?;
        let server_leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
        let mut raw = Vec::new();
        // With TLS 1.3 a refused client certificate surfaces only now, at
        // the first read or write.
        let sent = tls.write_all(request.as_bytes()).await;
        let read = tokio::time::timeout(WAIT, tls.read_to_end(&mut raw)).await.expect("answer in time");
        let response = match (sent, read) {
            (Ok(()), Ok(_)) if !raw.is_empty() => Some(parse(&raw)),
            _ => None,
        };
        Ok(Exchange { server_leaf, response })
    }
}

fn parse(raw: &[u8]) -> RawResponse {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut head = httparse::Response::new(&mut headers);
    head.parse(&raw[..split]).unwrap();
    RawResponse {
        status: head.code.unwrap(),
        headers: head.headers.iter().map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into())).collect(),
        body: raw[split..].to_vec(),
    }
}

async fn start_tls(transport: &str, tls: TlsOptions, after_tls: Option<TlsFilter>) -> TestServer {
    start_with(transport, ServerOptions::default(), move |builder| {
        let builder = builder.listen_tls(([127, 0, 0, 1], 0), tls);
        match after_tls {
            Some(filter) => builder.connection_middleware_after_tls(filter),
            None => builder,
        }
    })
    .await
}

fn body(exchange: &Exchange) -> String {
    String::from_utf8_lossy(&exchange.response.as_ref().expect("a response").body).to_string()
}

#[tokio::test]
async fn https_with_a_rustls_client_and_curl() {
    for transport in transports() {
        let server = start_tls(transport, TlsOptions::new().certificate(server_cert("localhost").server()), None).await;
        assert!(server.addresses[0].starts_with("https://127.0.0.1:"), "{:?}", server.addresses);
        let exchange = Client::default().get(server.addr, "localhost", "/tls").await.unwrap();
        let text = body(&exchange);
        assert!(text.starts_with("TLSv1.3 TLS13_"), "{text}");
        assert!(text.ends_with(" localhost http/1.1 0"), "{text}");

        let tls12 = Client { versions: Some(vec![&rustls::version::TLS12]), ..Client::default() };
        let text = body(&tls12.get(server.addr, "localhost", "/tls").await.unwrap());
        assert!(text.starts_with("TLSv1.2 TLS_ECDHE_"), "TLS 1.2 is on by default: {text}");

        if require_tool("curl") {
            let url = format!("https://localhost:{}/plaintext", server.addr.port());
            let resolve = format!("localhost:{}:127.0.0.1", server.addr.port());
            let out = tokio::process::Command::new("curl")
                .args(["-sSk", "--max-time", "10", "--resolve", &resolve, &url])
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(out.stdout, b"Hello, World!");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn sni_picks_exact_then_wildcard_then_default_and_a_selector_wins() {
    for transport in transports() {
        let (exact, wildcard, fallback, chosen) =
            (server_cert("a.test"), server_cert("*.wild.test"), server_cert("other.test"), server_cert("pick.test"));
        let chosen_cert = chosen.server();
        let options = TlsOptions::new()
            .sni("a.test", exact.server())
            .sni("*.wild.test", wildcard.server())
            .certificate(fallback.server())
            .certificate_selector(move |_ctx, sni| (sni == Some("pick.test")).then(|| chosen_cert.clone()));
        let server = start_tls(transport, options, None).await;
        let leaf = |name: &'static str| {
            let addr = server.addr;
            async move { Client::default().get(addr, name, "/tls").await.unwrap().server_leaf }
        };
        assert_eq!(leaf("a.test").await, exact.chain[0], "{transport}: exact name");
        assert_eq!(leaf("x.wild.test").await, wildcard.chain[0], "wildcard");
        assert_eq!(leaf("other.test").await, fallback.chain[0], "default certificate");
        assert_eq!(leaf("pick.test").await, chosen.chain[0], "the selector wins");
        server.stop().await;
    }
}

#[tokio::test]
async fn client_certificates_required_allowed_and_validated() {
    for transport in transports() {
        let server_identity = server_cert("localhost");
        let required = TlsOptions::new()
            .certificate(server_identity.server())
            .client_certificate_mode(ClientCertificateMode::RequireCertificate)
            .client_certificate_roots(roots());
        let server = start_tls(transport, required, None).await;
        let anonymous = Client::default().get(server.addr, "localhost", "/tls").await;
        assert!(
            anonymous.as_ref().map_or(true, |e| e.response.is_none()),
            "{transport}: a client without a certificate must be refused"
        );
        let trusted =
            Client { identity: Some(issue("client", rcgen::ExtendedKeyUsagePurpose::ClientAuth)), ..Client::default() };
        let text = body(&trusted.get(server.addr, "localhost", "/tls").await.unwrap());
        assert!(text.ends_with(" 1"), "the app sees the client's chain: {text}");
        server.stop().await;

        // Allowed: in without a certificate; a callback refuses this one.
        let allowed = TlsOptions::new()
            .certificate(server_identity.server())
            .client_certificate_mode(ClientCertificateMode::AllowCertificate)
            .client_certificate_roots(roots())
            .client_certificate_validation(|_chain| false);
        let server = start_tls(transport, allowed, None).await;
        let text = body(&Client::default().get(server.addr, "localhost", "/tls").await.unwrap());
        assert!(text.ends_with(" 0"), "{text}");
        let refused = trusted.get(server.addr, "localhost", "/tls").await;
        assert!(refused.map_or(true, |e| e.response.is_none()), "the validation callback refuses");
        server.stop().await;
    }
}

#[tokio::test]
async fn the_tls_filter_refuses_a_disallowed_tls12_suite_and_lets_tls13_through() {
    for transport in transports() {
        let filter = TlsFilter::new(|handshake| {
            handshake.version == TlsVersion::Tls13
                || handshake.cipher_suite == "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        });
        let server =
            start_tls(transport, TlsOptions::new().certificate(server_cert("localhost").server()), Some(filter)).await;
        let tls13 = Client::default().get(server.addr, "localhost", "/tls").await.unwrap();
        assert!(body(&tls13).starts_with("TLSv1.3"));
        let allowed12 = Client {
            versions: Some(vec![&rustls::version::TLS12]),
            suite: Some(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
            ..Client::default()
        };
        assert!(body(&allowed12.get(server.addr, "localhost", "/tls").await.unwrap()).starts_with("TLSv1.2"));
        let refused12 = Client {
            versions: Some(vec![&rustls::version::TLS12]),
            suite: Some(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
            ..Client::default()
        };
        let exchange = refused12.get(server.addr, "localhost", "/tls").await.unwrap();
        assert!(exchange.response.is_none(), "{transport}: the filter closes the connection before HTTP");
        server.stop().await;
    }
}

#[tokio::test]
async fn the_servers_cipher_suite_order_decides() {
    use rustls::CipherSuite::{TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384};
    for transport in transports() {
        // By default AES-128-GCM comes first, whatever the client prefers.
        let server = start_tls(transport, TlsOptions::new().certificate(server_cert("localhost").server()), None).await;
        let prefers_256 =
            Client { suites: Some(vec![TLS13_AES_256_GCM_SHA384, TLS13_AES_128_GCM_SHA256]), ..Client::default() };
        let text = body(&prefers_256.get(server.addr, "localhost", "/tls").await.unwrap());
        assert!(text.starts_with("TLSv1.3 TLS13_AES_128_GCM_SHA256 "), "{transport}: {text}");
        server.stop().await;

        // A configured order is the server's preference too.
        let options = TlsOptions::new()
            .certificate(server_cert("localhost").server())
            .cipher_suites(["TLS13_AES_256_GCM_SHA384", "TLS13_AES_128_GCM_SHA256"]);
        let server = start_tls(transport, options, None).await;
        let prefers_128 =
            Client { suites: Some(vec![TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384]), ..Client::default() };
        let text = body(&prefers_128.get(server.addr, "localhost", "/tls").await.unwrap());
        assert!(text.starts_with("TLSv1.3 TLS13_AES_256_GCM_SHA384 "), "{transport}: {text}");
        server.stop().await;
    }
}

/// Collects this test binary's log output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter("kite::connection_logging=debug,kite_connection_middleware=debug")
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        captured
    })
}

/// Serves `pipeline` on a sockets listener: a custom server from the parts.
async fn serve_pipeline(
    pipeline: kite::middleware::ConnectionPipeline,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let transport = kite::sockets::SocketTransport::default();
    let mut listener = transport.bind(&kite::transport::Endpoint::Tcp("127.0.0.1:0".parse().unwrap())).await.unwrap();
    let addr = listener.local_endpoint().as_tcp().unwrap();
    let task = tokio::spawn(async move {
        while let Ok(connection) = listener.accept().await {
            let pipeline = pipeline.clone();
            tokio::spawn(async move {
                let _ = pipeline.handle(connection).await;
            });
        }
    });
    (addr, task)
}

fn http_terminal() -> impl kite::middleware::ConnectionHandler {
    |connection: kite::transport::Connection| async move {
        let service = kite::service_fn(|_req: http::Request<kite::RequestBody>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(String::from("secret")))
        });
        kite::http_core::serve_connection(connection, service, &kite::HttpOptions::default())
            .await
            .map_err(kite::middleware::ConnectionError::other)
    }
}

#[tokio::test]
async fn a_silent_client_is_cut_at_the_handshake_timeout_and_counted() {
    let captured = captured();
    let tls = TlsMiddleware::new(
        TlsOptions::new().certificate(server_cert("localhost").server()).handshake_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let (addr, task) = serve_pipeline(ConnectionBuilder::new().use_(tls.clone()).run(http_terminal())).await;
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert_closed(&mut silent).await;
    assert_eq!(tls.failed_handshakes(), 1);
    assert_eq!(tls.handshakes(), 0);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("Authentication of the HTTPS connection timed out."), "{log}");
    task.abort();
}

#[tokio::test]
async fn logging_before_tls_sees_ciphertext_and_after_it_plaintext() {
    let captured = captured();
    let tls = TlsMiddleware::new(TlsOptions::new().certificate(server_cert("localhost").server())).unwrap();
    let pipeline = ConnectionBuilder::new()
        .use_(ConnectionLogging::with_name("before-tls"))
        .use_(tls.clone())
        .use_(ConnectionLogging::with_name("after-tls"))
        .run(http_terminal());
    let (addr, task) = serve_pipeline(pipeline).await;
    let exchange = Client::default().get(addr, "localhost", "/").await.unwrap();
    assert_eq!(body(&exchange), "secret");
    task.abort();

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let events: Vec<&str> = log.split("kite::connection_logging:").skip(1).collect();
    let seen_by = |logger: &str| -> String {
        events.iter().filter(|e| e.contains(&format!("logger={logger}"))).copied().collect::<Vec<_>>().join("\n")
    };
    let (before, after) = (seen_by("before-tls"), seen_by("after-tls"));
    // "GET /" is 47 45 54 20 2F; a TLS handshake record starts 16 03.
    assert!(before.contains("ReadAsync[") && before.contains("16 03"), "before TLS: the ClientHello record\n{before}");
    assert!(!before.contains("47 45 54 20 2F"), "before TLS: no plaintext request\n{before}");
    assert!(after.contains("47 45 54 20 2F"), "after TLS: the plaintext request\n{after}");
    // A response write starts a dump line, so its first eight bytes,
    // "HTTP/1.1", stand together: in plaintext after TLS only.
    let http11 = "48 54 54 50 2F 31 2E 31";
    assert!(after.contains("WriteAsync[") && after.contains(http11), "after TLS: the plaintext response\n{after}");
    assert!(before.contains("WriteAsync[") && !before.contains(http11), "before TLS: the response is encrypted");
}

#[tokio::test]
async fn a_renewed_certificate_file_is_used_by_the_next_handshakes() {
    let dir = std::env::temp_dir().join(format!("kite-rotate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let (first, renewed) = (server_cert("rotate.test"), server_cert("rotate.test"));
    std::fs::write(&cert, &first.cert_pem).unwrap();
    std::fs::write(&key, &first.key_pem).unwrap();
    let certificate = Certificate::from_pem_files(&cert, &key).unwrap();
    let server = start_tls("sockets", TlsOptions::new().certificate(certificate), None).await;
    let leaf = || async { Client::default().get(server.addr, "rotate.test", "/tls").await.unwrap().server_leaf };
    assert_eq!(leaf().await, first.chain[0]);

    // Renew the files in place, as a certificate manager does.
    std::fs::write(&key, &renewed.key_pem).unwrap();
    std::fs::write(&cert, &renewed.cert_pem).unwrap();
    // Files are looked at once a second at most: handshake until the new
    // one shows, bounded.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        if leaf().await == renewed.chain[0] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the renewed certificate was never used");
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a [`HandshakeObserver`] was told, in order.
#[derive(Default)]
struct Observed(Mutex<Vec<String>>);

impl Observed {
    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits (bounded) until `count` events are in.
    async fn wait_for(&self, count: usize) -> Vec<String> {
        tokio::time::timeout(WAIT, async {
            while self.events().len() < count {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{count} events expected, got {:?}", self.events()));
        self.events()
    }
}

impl HandshakeObserver for Observed {
    fn started(&self, _context: &ConnectionContext) {
        self.0.lock().unwrap().push("started".into());
    }

    fn ended(&self, _id: ConnectionId, _elapsed: Duration, outcome: Result<&TlsHandshake, &HandshakeError>) {
        let event = match outcome {
            Ok(handshake) => format!("ok {:?}", handshake.version),
            Err(HandshakeError::Tls(_)) => "tls".into(),
            Err(HandshakeError::PeerClosed) => "peer closed".into(),
            Err(HandshakeError::Timeout(_)) => "timeout".into(),
            Err(HandshakeError::Aborted) => "aborted".into(),
            Err(other) => format!("other: {other}"),
        };
        self.0.lock().unwrap().push(event);
    }
}

#[tokio::test]
async fn an_observer_hears_each_handshake_start_and_its_one_end() {
    let observed = Arc::new(Observed::default());
    let tls = TlsMiddleware::new(
        TlsOptions::new()
            .certificate(server_cert("localhost").server())
            .handshake_timeout(Duration::from_millis(300))
            .observe(Arc::clone(&observed) as Arc<dyn HandshakeObserver>),
    )
    .unwrap();
    let pipeline = ConnectionBuilder::new().use_(tls).run(http_terminal());
    let (addr, task) = serve_pipeline(pipeline.clone()).await;

    // A handshake that completes.
    let exchange = Client::default().get(addr, "localhost", "/").await.unwrap();
    assert_eq!(body(&exchange), "secret");
    assert_eq!(observed.wait_for(2).await[..], ["started", "ok Tls13"]);
    // Not TLS at all: rustls refuses it.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let mut alert = Vec::new();
    tokio::time::timeout(WAIT, plain.read_to_end(&mut alert)).await.expect("closed").unwrap();
    assert_eq!(alert.first(), Some(&0x15), "a TLS alert, then the close: {alert:?}");
    assert_eq!(observed.wait_for(4).await[2..], ["started", "tls"]);
    // Half a ClientHello, then the client closes.
    let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00]).await.unwrap();
    half.shutdown().await.unwrap();
    assert_closed(&mut half).await;
    assert_eq!(observed.wait_for(6).await[4..], ["started", "peer closed"]);
    // A silent client, cut at the handshake timeout.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert_closed(&mut silent).await;
    assert_eq!(observed.wait_for(8).await[6..], ["started", "timeout"]);
    task.abort();

    // A connection dropped mid-handshake (its task aborted, as a server's
    // shutdown timeout does) still ends, as aborted.
    let transport = kite::sockets::SocketTransport::default();
    let mut listener = transport.bind(&kite::transport::Endpoint::Tcp("127.0.0.1:0".parse().unwrap())).await.unwrap();
    let addr = listener.local_endpoint().as_tcp().unwrap();
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connection = listener.accept().await.unwrap();
    let serving = tokio::spawn(async move { pipeline.handle(connection).await });
    client.write_all(&[0x16, 0x03, 0x01, 0x00, 0x40, 0x01]).await.unwrap();
    assert_eq!(observed.wait_for(9).await[8..], ["started"]);
    serving.abort();
    assert!(serving.await.unwrap_err().is_cancelled());
    assert_eq!(observed.wait_for(10).await[8..], ["started", "aborted"]);
    assert_eq!(observed.events().len(), 10, "one end for each start");
}
