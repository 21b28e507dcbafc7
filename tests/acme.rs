//! Automatic HTTPS against a real ACME server: Debian's pebble (Let's
//! Encrypt's test server) and its DNS, on loopback. Certificates issued
//! with TLS-ALPN-01 and with HTTP-01 on every socket transport, verified
//! against pebble's issuing root and served over HTTP/1.1, HTTP/2 and
//! HTTP/3; renewed while a client keeps a connection and makes requests
//! across it; kept serving while pebble is down; read from the cache at
//! the next start with no new order; and each failure named.

mod common;
#[path = "common/h3.rs"]
mod h3_client;
#[path = "common/pebble.rs"]
mod pebble;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use kite::tls::acme::{Acme, AcmeOptions, AcmeStatus, Challenge};
use kite::tls::TlsOptions;
use kite::{Protocols, ServerOptions};
use pebble::{Pebble, DOMAIN};
use tokio::io::{AsyncWriteExt, BufReader};

/// How long an issuance may take.
const ISSUE_WAIT: Duration = Duration::from_secs(30);

/// This test binary's Prometheus recorder, installed once.
fn recorder() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).expect("the only recorder of this binary");
        handle
    })
}

fn tools_present() -> bool {
    match pebble::binaries() {
        Ok(()) => true,
        Err(message) => missing(&message),
    }
}

fn cache_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kite-acme-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn options(pebble: &Pebble, cache: &Path, challenge: Challenge) -> AcmeOptions {
    AcmeOptions::new([DOMAIN])
        .directory(pebble.directory())
        .root(Some(pebble.api_root.clone()))
        .cache_dir(cache.to_path_buf())
        .challenge(challenge)
        .retry_initial(Duration::from_millis(300))
        .retry_max(Duration::from_secs(2))
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A server with an HTTPS endpoint on `https` serving `acme`'s certificate
/// (HTTP/1.1, HTTP/2 and HTTP/3), and a plain one on `http` if given.
async fn serve(transport: &str, https: u16, http: Option<u16>, acme: &Acme, allowed: Option<&str>) -> TestServer {
    let acme = acme.clone();
    let allowed = allowed.map(str::to_string);
    start_with(transport, ServerOptions::default(), move |builder| {
        let builder = builder.listen_with(local(https), move |listen| {
            listen.use_https(TlsOptions::new().acme_shared(acme)).protocols(Protocols::Http1AndHttp2AndHttp3)
        });
        let builder = match http {
            Some(port) => builder.listen(local(port)),
            None => builder,
        };
        match allowed {
            Some(host) => builder.allowed_hosts([host]),
            None => builder,
        }
    })
    .await
}

/// Waits until `check` holds of the status, or fails showing it and
/// pebble's log.
async fn wait_status(acme: &Acme, pebble: &Pebble, what: &str, check: impl Fn(&AcmeStatus) -> bool) {
    let deadline = Instant::now() + ISSUE_WAIT;
    while !check(&acme.status()) {
        assert!(Instant::now() < deadline, "no {what}: {:?}\n{}", acme.status(), pebble.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET /plaintext` on a TLS stream kept alive; the status (0 when the
/// connection failed).
async fn get_on<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(stream: &mut BufReader<S>) -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    if stream.get_mut().write_all(b"GET /plaintext HTTP/1.1\r\nHost: kite.test\r\n\r\n").await.is_err() {
        return 0;
    }
    let mut line = String::new();
    if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
        return 0;
    }
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return 0;
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    if stream.read_exact(&mut body).await.is_err() {
        return 0;
    }
    status
}

/// HTTP/2 over TLS: `GET /plaintext`'s status.
async fn get_h2(addr: SocketAddr, root: rustls::pki_types::CertificateDer<'static>) -> u16 {
    let tls = pebble::connect(addr, root, &[b"h2"]).await.expect("TLS for h2");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
    let (mut send, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    let request = http::Request::get("https://kite.test/plaintext").body(()).unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    response.await.unwrap().status().as_u16()
}

fn key_file_mode(cache: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let key = std::fs::read_dir(cache)
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with(".key.pem"))
        .expect("a cached key");
    key.metadata().unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn_01_issues_on_every_transport_and_serves_http1_http2_and_http3() {
    if !tools_present() {
        return;
    }
    let metrics = recorder();
    for transport in transports() {
        let https = pebble::free_port();
        let pebble = Pebble::start(pebble::free_port(), https, Duration::from_secs(3600)).await;
        let cache = cache_dir(&format!("alpn-{transport}"));
        let acme = Acme::new(options(&pebble, &cache, Challenge::TlsAlpn01));
        let server = serve(transport, https, None, &acme, None).await;
        wait_status(&acme, &pebble, "certificate", |s| s.issued == 1).await;
        let root = pebble.issuing_root().await;

        let tls = pebble::connect(local(https), root.clone(), &[b"http/1.1"]).await.expect("verified by pebble's root");
        let mut stream = BufReader::new(tls);
        assert_eq!(get_on(&mut stream).await, 200, "{transport}: HTTP/1.1");
        assert_eq!(get_h2(local(https), root.clone()).await, 200, "{transport}: HTTP/2");
        let mut h3 = h3_client::connect_named(local(https), root, DOMAIN).await;
        assert_eq!(h3.get("/plaintext").await.status, 200, "{transport}: HTTP/3");
        h3.close().await;

        assert_eq!(key_file_mode(&cache), 0o600, "the key is the owner's alone");
        let status = acme.status();
        let lifetime = status.not_after.unwrap().duration_since(status.not_before.unwrap()).unwrap();
        let due = status.renew_at.unwrap().duration_since(status.not_before.unwrap()).unwrap();
        assert!(due <= lifetime * 2 / 3 && due >= lifetime * 2 / 3 - lifetime / 20, "renewal at 2/3, less jitter");
        let expiry = status.not_after.unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let text = metrics.render();
        let line = format!("kite_acme_certificate_expiry{{domain=\"{DOMAIN}\"}} {expiry}");
        assert!(text.contains(&line), "{line} in:\n{text}");
        server.stop().await;
        let _ = std::fs::remove_dir_all(&cache);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_01_is_answered_before_host_filtering_and_curl_verifies_the_certificate() {
    if !tools_present() || !require_tool("curl") {
        return;
    }
    for transport in transports() {
        let (http, https) = (pebble::free_port(), pebble::free_port());
        let pebble = Pebble::start(http, https, Duration::from_secs(3600)).await;
        let cache = cache_dir(&format!("http-{transport}"));
        let acme = Acme::new(options(&pebble, &cache, Challenge::Http01));
        // AllowedHosts would refuse pebble's `Host: kite.test`; the
        // challenge is answered before it.
        let server = serve(transport, https, Some(http), &acme, Some("example.com")).await;
        wait_status(&acme, &pebble, "certificate", |s| s.issued == 1).await;
        let root_pem = pebble.dir.join("issuing-root.pem");
        std::fs::write(&root_pem, pebble.issuing_root_pem().await).unwrap();
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&root_pem)
            .args(["--resolve", &format!("{DOMAIN}:{https}:127.0.0.1"), "-H", "Host: example.com"])
            .arg(format!("https://{DOMAIN}:{https}/plaintext"))
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{transport}: curl: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, b"Hello, World!");
        server.stop().await;
        let _ = std::fs::remove_dir_all(&cache);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_keeps_connections_survives_pebble_down_and_the_cache_is_reused() {
    if !tools_present() {
        return;
    }
    let https = pebble::free_port();
    // 12 s certificates: renewal falls due after 7.6 to 8 s.
    let mut pebble = Pebble::start(pebble::free_port(), https, Duration::from_secs(12)).await;
    let cache = cache_dir("renewal");
    let acme = Acme::new(options(&pebble, &cache, Challenge::Auto));
    let server = serve("sockets", https, None, &acme, None).await;
    wait_status(&acme, &pebble, "certificate", |s| s.issued == 1).await;
    let first = acme.status();
    let root = pebble.issuing_root().await;
    let tls = pebble::connect(local(https), root.clone(), &[b"http/1.1"]).await.expect("first certificate");
    let first_leaf = pebble::leaf(&tls);

    // A client keeps its connection and makes requests across the renewal.
    let answered = Arc::new(AtomicU64::new(0));
    let counting = Arc::clone(&answered);
    let kept = tokio::spawn(async move {
        let mut stream = BufReader::new(tls);
        let mut failures = Vec::new();
        loop {
            match get_on(&mut stream).await {
                200 => counting.fetch_add(1, Ordering::Relaxed),
                status => {
                    failures.push(status);
                    break failures;
                }
            };
            tokio::time::sleep(Duration::from_millis(50)).await;
            if counting.load(Ordering::Relaxed) >= 1_000_000 {
                break failures;
            }
        }
    });
    wait_status(&acme, &pebble, "renewal", |s| s.issued == 2).await;
    let second = acme.status();
    let issued_at = Instant::now();
    let due = first.renew_at.unwrap().duration_since(first.not_before.unwrap()).unwrap();
    println!(
        "renewal: due {:.1} s into a 12 s certificate; a new one served from {:?} after notBefore of the first",
        due.as_secs_f64(),
        second.not_before.unwrap().duration_since(first.not_before.unwrap()).unwrap()
    );
    let renewed = pebble::connect(local(https), root.clone(), &[b"http/1.1"]).await.expect("renewed certificate");
    assert_ne!(pebble::leaf(&renewed), first_leaf, "a new handshake gets the new certificate");
    let before = answered.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(answered.load(Ordering::Relaxed) > before, "the kept connection still answers after the renewal");
    assert!(!kept.is_finished(), "the kept connection saw a failure: {:?}", kept.await);

    // pebble goes away: the next renewal fails, the certificate serves on.
    pebble.pause();
    wait_status(&acme, &pebble, "failed renewal", |s| s.last_error.is_some()).await;
    let error = acme.status().last_error.unwrap();
    assert!(error.contains("unreachable"), "{error}");
    let during = pebble::connect(local(https), root.clone(), &[b"http/1.1"]).await.expect("still served");
    assert_eq!(pebble::leaf(&during), pebble::leaf(&renewed), "the current certificate keeps serving");
    // pebble is back (a new one: new accounts, a new root); the order succeeds.
    pebble.resume().await;
    wait_status(&acme, &pebble, "renewal after the outage", |s| s.issued == 3 && s.last_error.is_none()).await;
    let new_root = pebble.issuing_root().await;
    let third = pebble::connect(local(https), new_root, &[b"http/1.1"]).await.expect("issued by the new pebble");
    let third_leaf = pebble::leaf(&third);
    println!("renewal after pebble's outage: issued {:?} after the second", issued_at.elapsed());
    assert!(answered.load(Ordering::Relaxed) > 10, "the kept connection made requests throughout");
    assert!(!kept.is_finished(), "the kept connection saw a failure");
    kept.abort();
    server.stop().await;
    drop(acme);

    // The next start reads the cache: the same certificate at once, no order.
    let acme = Acme::new(options(&pebble, &cache, Challenge::Auto));
    let server = serve("sockets", https, None, &acme, None).await;
    let root = pebble.issuing_root().await;
    let cached = pebble::connect(local(https), root, &[b"http/1.1"]).await.expect("the cached certificate");
    assert_eq!(pebble::leaf(&cached), third_leaf, "the cached certificate serves from the first handshake");
    assert_eq!(acme.status().issued, 0, "no new order");
    server.stop().await;
    let _ = std::fs::remove_dir_all(&cache);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_say_what_to_fix_and_handshakes_wait_for_the_certificate() {
    if !tools_present() {
        return;
    }
    let metrics = recorder();
    // pebble validates TLS-ALPN-01 on a port where nothing listens.
    let https = pebble::free_port();
    let pebble = Pebble::start(pebble::free_port(), pebble::free_port(), Duration::from_secs(3600)).await;
    let slow = |o: AcmeOptions| o.retry_initial(Duration::from_secs(3600));

    let cache = cache_dir("refused");
    let refused = Acme::new(slow(options(&pebble, &cache, Challenge::TlsAlpn01)));
    let server = serve("sockets", https, None, &refused, None).await;
    wait_status(&refused, &pebble, "refusal", |s| s.last_error.is_some()).await;
    let error = refused.status().last_error.unwrap();
    assert!(error.contains("refused") && error.contains(DOMAIN), "{error}");
    assert_eq!(refused.status().failed_orders, 1, "one order, retried an hour later");
    let text = metrics.render();
    let failed = text
        .lines()
        .find_map(|line| line.strip_prefix(&format!("kite_acme_orders_failed{{domain=\"{DOMAIN}\"}} ")))
        .and_then(|count| count.parse::<u64>().ok());
    assert!(failed.is_some_and(|count| count >= 1), "the failure is counted in:\n{text}");
    // Meanwhile, the name's handshakes fail (no self-signed stand-in).
    let root = pebble.issuing_root().await;
    assert!(pebble::connect(local(https), root, &[b"http/1.1"]).await.is_err(), "no certificate yet");
    server.stop().await;
    drop(refused);

    let mut contact = slow(options(&pebble, &cache_dir("contact"), Challenge::TlsAlpn01));
    contact.contact = vec!["tel:+15551234567".into()];
    let bad_contact = Acme::new(contact);
    let server = serve("sockets", pebble::free_port(), None, &bad_contact, None).await;
    wait_status(&bad_contact, &pebble, "contact refusal", |s| s.last_error.is_some()).await;
    let error = bad_contact.status().last_error.unwrap();
    assert!(error.contains("contact"), "{error}");
    server.stop().await;

    let mut nowhere = slow(options(&pebble, &cache_dir("nowhere"), Challenge::TlsAlpn01));
    nowhere.directory = format!("https://127.0.0.1:{}/dir", pebble::free_port());
    let unreachable = Acme::new(nowhere);
    let server = serve("sockets", pebble::free_port(), None, &unreachable, None).await;
    wait_status(&unreachable, &pebble, "unreachable directory", |s| s.last_error.is_some()).await;
    let error = unreachable.status().last_error.unwrap();
    assert!(error.contains("unreachable"), "{error}");
    server.stop().await;
}
