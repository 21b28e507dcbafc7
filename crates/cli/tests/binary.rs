//! The `kite` binary end to end: it prints its real addresses, serves the
//! demo routes, and shuts down gracefully on SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

#[path = "../../../tests/common/tools.rs"]
mod tools;

#[path = "../../../tests/common/h3.rs"]
mod h3_client;

#[path = "../../../tests/common/haproxy.rs"]
mod haproxy;

/// A `kite` command whose process is killed if the test drops it, so a
/// failing test cannot leave a server holding the test's output pipes.
fn kite() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kite"));
    command.kill_on_drop(true).stdout(Stdio::piped());
    command
}

/// The first line the child prints: `Now listening on: …`.
async fn first_line(child: &mut tokio::process::Child) -> String {
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), tokio::io::BufReader::new(stdout).read_line(&mut line))
        .await
        .expect("kite prints its address in time")
        .unwrap();
    line
}

/// Sends SIGTERM and waits, bounded, for the exit.
async fn terminate(child: &mut tokio::process::Child) -> std::process::ExitStatus {
    let pid = child.id().expect("kite is running");
    let status = Command::new("sh").arg("-c").arg(format!("kill -TERM {pid}")).status().unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("kite exits within 10 s of SIGTERM")
        .unwrap()
}

async fn get(addr: &str, request: &str) -> (String, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await.unwrap().unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
    (String::from_utf8_lossy(&raw[..split]).to_string(), raw[split..].to_vec())
}

#[tokio::test]
async fn kite_serves_the_demo_and_stops_on_sigterm() {
    for transport in ["sockets", "mio", "uring"] {
        serves_the_demo_on(transport).await;
    }
}

async fn serves_the_demo_on(transport: &str) {
    let mut child = kite()
        .args(["--urls", "http://127.0.0.1:0", "--log", "warn", "--transport", transport])
        .spawn()
        .expect("kite starts");
    let line = first_line(&mut child).await;
    let url = line.trim().strip_prefix("Now listening on: ").unwrap_or_else(|| panic!("unexpected line {line:?}"));
    let addr = url.strip_prefix("http://").unwrap().to_string();
    assert!(!addr.ends_with(":0"), "the real port is printed: {addr}");

    let close = "\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let (head, body) = get(&addr, &format!("GET /plaintext HTTP/1.1{close}")).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("content-type: text/plain"), "{head}");
    assert_eq!(body, b"Hello, World!");

    let (_, body) = get(&addr, &format!("GET /json HTTP/1.1{close}")).await;
    assert_eq!(body, br#"{"message":"Hello, World!"}"#);

    let (_, body) = get(&addr, &format!("GET /info HTTP/1.1{close}")).await;
    let info: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(info["protocol"], "HTTP/1.1");
    assert_eq!(info["transport"], transport);
    assert_eq!(info["local"], addr.as_str());
    assert!(info["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(info["tls"].is_null());

    let (head, body) =
        get(&addr, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello").await;
    assert!(head.contains("content-length: 5"), "{head}");
    assert_eq!(body, b"hello");

    let (head, body) = get(&addr, &format!("GET /bytes/100000 HTTP/1.1{close}")).await;
    assert!(head.contains("content-length: 100000"), "{head}");
    assert_eq!(body.len(), 100_000);

    let (head, body) = get(&addr, &format!("GET / HTTP/1.1{close}")).await;
    assert!(head.contains("text/html"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("/plaintext"));

    let (head, _) = get(&addr, &format!("GET /nope HTTP/1.1{close}")).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    let exit = terminate(&mut child).await;
    assert!(exit.success(), "graceful shutdown exits 0, got {exit}");
}

#[test]
fn kite_names_the_bad_url_and_fails() {
    let output = Command::new(env!("CARGO_BIN_EXE_kite")).args(["--urls", "http://a:1/base"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("http://a:1/base") && stderr.contains("path base"), "{stderr}");
}

#[test]
fn kite_refuses_an_unknown_transport() {
    let output = Command::new(env!("CARGO_BIN_EXE_kite")).args(["--transport", "carrier-pigeon"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown transport 'carrier-pigeon'"));
}

/// Out of file descriptors, the accept loop backs off (and says so) rather
/// than spinning, and serves again once descriptors free up.
#[tokio::test]
async fn kite_backs_off_when_out_of_file_descriptors_and_recovers() {
    for transport in ["sockets", "mio", "uring"] {
        backs_off_on(transport).await;
    }
}

async fn backs_off_on(transport: &str) {
    let script = format!(
        "ulimit -n 64 && exec {} --urls http://127.0.0.1:0 --log kite_server=error --transport {transport}",
        env!("CARGO_BIN_EXE_kite")
    );
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .kill_on_drop(true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = first_line(&mut child).await;
    let addr = line.trim().strip_prefix("Now listening on: http://").expect("an address").to_string();

    // More connections than the server has descriptors for.
    let mut clients = Vec::new();
    for _ in 0..100 {
        match tokio::net::TcpStream::connect(&addr).await {
            Ok(stream) => clients.push(stream),
            Err(_) => break,
        }
    }
    assert!(clients.len() > 64, "{transport}: only {} connections opened", clients.len());
    let stderr = child.stderr.take().unwrap();
    let (found_tx, found_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        // Keep draining after the match: a full pipe would block the
        // server's own log writes.
        let mut found_tx = Some(found_tx);
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("accept failed; backing off") {
                if let Some(tx) = found_tx.take() {
                    let _ = tx.send(line);
                }
            }
        }
    });
    let event = tokio::time::timeout(Duration::from_secs(10), found_rx)
        .await
        .expect("the server reports that it backs off")
        .expect("a back-off line");
    assert!(event.contains("Too many open files") || event.contains("os error 24"), "{event}");

    drop(clients);
    // Recovered: a request is served again.
    let served = async {
        loop {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(&addr).await {
                let _ = stream.write_all(b"GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
                let mut raw = Vec::new();
                if stream.read_to_end(&mut raw).await.is_ok() && raw.ends_with(b"Hello, World!") {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(15), served).await.expect("the server serves again");
    terminate(&mut child).await;
}

/// A fresh temporary directory for one test.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kite-bin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a self-signed localhost certificate and key; returns their paths.
fn write_certificate(dir: &std::path::Path) -> (String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert.display().to_string(), key.display().to_string())
}

#[tokio::test]
async fn kite_serves_https_with_the_given_certificate() {
    if !tools::require_tool("curl") {
        return;
    }
    let dir = temp_dir("https");
    let (cert, key) = write_certificate(&dir);
    let mut child = kite()
        .args(["--urls", "https://127.0.0.1:0", "--log", "warn", "--certificate", &cert, "--certificate-key", &key])
        .env("KITE_DEV_CERTS_DIR", &dir)
        .spawn()
        .unwrap();
    let line = first_line(&mut child).await;
    let url = line.trim().strip_prefix("Now listening on: ").unwrap_or_else(|| panic!("{line:?}")).to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let port = url.rsplit(':').next().unwrap();
    let out = tokio::process::Command::new("curl")
        .args(["-sSk", "--max-time", "10", "--resolve", &format!("localhost:{port}:127.0.0.1")])
        .arg(format!("https://localhost:{port}/info"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["tls"]["version"], "TLSv1.3");
    assert_eq!(info["tls"]["sni"], "localhost");
    // curl offers h2 and http/1.1; Kite prefers h2.
    assert_eq!(info["tls"]["alpn"], "h2");
    assert_eq!(info["protocol"], "HTTP/2");
    assert!(info["tls"]["cipher_suite"].as_str().unwrap().starts_with("TLS13_"));
    terminate(&mut child).await;
    std::fs::remove_dir_all(&dir).ok();
}

/// Runs `tests/clients/h3_client.py` (aioquic) with `args`; `None` when
/// the interpreter lacks aioquic and missing tools may be skipped.
async fn aioquic_client(args: &[&str]) -> Option<serde_json::Value> {
    let python = tools::python();
    let usable = Command::new(&python).args(["-c", "import aioquic"]).output().is_ok_and(|o| o.status.success());
    if !usable && !tools::missing(&format!("{python} cannot import aioquic; {}", tools::INSTALLS)) {
        return None;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/clients/h3_client.py");
    let run = tokio::process::Command::new(&python).arg(script).args(args).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(30), run).await.expect("the client finishes").unwrap();
    assert!(out.status.success(), "h3_client.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[tokio::test]
async fn kite_serves_http3_beside_http1_and_http2() {
    let dir = temp_dir("http3");
    let (cert, key) = write_certificate(&dir);
    let mut child = kite()
        .args(["--urls", "https://127.0.0.1:0", "--protocols", "Http1AndHttp2AndHttp3", "--log", "warn"])
        .args(["--certificate", &cert, "--certificate-key", &key])
        .env("KITE_DEV_CERTS_DIR", &dir)
        .spawn()
        .unwrap();
    let line = first_line(&mut child).await;
    let url = line.trim().strip_prefix("Now listening on: ").unwrap_or_else(|| panic!("{line:?}")).to_string();
    let port = url.rsplit(':').next().unwrap().to_string();
    // The h3 crate's client.
    let certified_pem = std::fs::read(&cert).unwrap();
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(&certified_pem).expect("the certificate's DER");
    let mut client = h3_client::connect(format!("127.0.0.1:{port}").parse().unwrap(), der).await;
    let info = client.get("/info").await;
    assert_eq!(info.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(body["protocol"], "HTTP/3", "{body}");
    let sent: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let echo = client.post("/echo", &sent, true).await;
    assert!(echo.status == 200 && echo.body == sent, "the demo echoes 2 MB over HTTP/3");
    client.close().await;
    // An outside client: aioquic.
    if let Some(info) = aioquic_client(&[&port, "/info"]).await {
        assert_eq!(info["status"], 200, "{info}");
        let body: serde_json::Value = serde_json::from_str(info["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["protocol"], "HTTP/3", "{body}");
        assert_eq!(body["transport"], "quic", "{body}");
        assert_eq!(body["tls"]["alpn"], "h3", "{body}");
        let echo = aioquic_client(&[&port, "/echo", "200000"]).await.unwrap();
        assert_eq!(echo["status"], 200, "{echo}");
        assert_eq!(echo["body_matches"], true, "{echo}");
    }
    // HTTP/1.1 on the same port advertises HTTP/3.
    let (head, _) = tls_get(&port).await;
    assert!(head.contains(&format!("alt-svc: h3=\":{port}\"; ma=86400")), "{head}");
    terminate(&mut child).await;
    std::fs::remove_dir_all(&dir).ok();
}

/// An HTTPS/1.1 GET of `/info` on 127.0.0.1:`port`, not checking the
/// certificate; the response head and body.
async fn tls_get(port: &str) -> (String, Vec<u8>) {
    if !tools::require_tool("curl") {
        return (String::new(), Vec::new());
    }
    let out = tokio::process::Command::new("curl")
        .args(["-sSk", "-i", "--http1.1", "--max-time", "10"])
        .arg(format!("https://127.0.0.1:{port}/info"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let raw = out.stdout;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
    (String::from_utf8_lossy(&raw[..split]).to_string(), raw[split..].to_vec())
}

/// The ClientHello handshake message curl sends to 127.0.0.1:`port` as
/// `localhost`, caught by a bare listener (curl then fails, unanswered).
async fn curl_client_hello() -> Vec<u8> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut curl = tokio::process::Command::new("curl")
        .args(["-sSk", "--max-time", "5", "--resolve", &format!("localhost:{port}:127.0.0.1")])
        .arg(format!("https://localhost:{port}/"))
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (mut stream, _) = listener.accept().await.unwrap();
    let mut handshake = Vec::new();
    loop {
        let mut header = [0u8; 5];
        stream.read_exact(&mut header).await.unwrap();
        let mut record = vec![0u8; usize::from(u16::from_be_bytes([header[3], header[4]]))];
        stream.read_exact(&mut record).await.unwrap();
        handshake.extend_from_slice(&record);
        let whole = 4 + (usize::from(handshake[1]) << 16 | usize::from(handshake[2]) << 8 | usize::from(handshake[3]));
        if handshake.len() >= whole {
            handshake.truncate(whole);
            let _ = curl.kill().await;
            return handshake;
        }
    }
}

#[tokio::test]
async fn info_shows_the_ja4_of_curl_computed_apart() {
    if !tools::require_tool("curl") {
        return;
    }
    let python = tools::python();
    // JA4 of curl's ClientHello, computed from FoxIO's specification by
    // tests/clients/ja4.py, which shares nothing with Kite.
    let hello: String = curl_client_hello().await.iter().map(|b| format!("{b:02x}")).collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/clients/ja4.py");
    let out = tokio::process::Command::new(&python).arg(script).arg(&hello).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let dir = temp_dir("ja4");
    let (cert, key) = write_certificate(&dir);
    let mut child = kite()
        .args([
            "--urls",
            "https://127.0.0.1:0",
            "--ja4",
            "--log",
            "warn",
            "--certificate",
            &cert,
            "--certificate-key",
            &key,
        ])
        .spawn()
        .unwrap();
    let line = first_line(&mut child).await;
    let port = line.trim().rsplit(':').next().unwrap().to_string();
    let out = tokio::process::Command::new("curl")
        .args(["-sSk", "--max-time", "10", "--resolve", &format!("localhost:{port}:127.0.0.1")])
        .arg(format!("https://localhost:{port}/info"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["ja4"], expected.as_str(), "{info}");
    assert!(info["ja3"].as_str().unwrap().starts_with("771,"), "{info}");
    terminate(&mut child).await;
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn kite_dev_certs_creates_shows_and_cleans() {
    let dir = temp_dir("dev-certs");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_kite")).args(args).env("KITE_DEV_CERTS_DIR", &dir).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let created = run(&["dev-certs"]);
    assert!(created.contains("Created a development certificate"), "{created}");
    assert!(dir.join("localhost.pem").is_file() && dir.join("localhost.key.pem").is_file());
    let pem = std::fs::read(dir.join("localhost.pem")).unwrap();
    let key = std::fs::read(dir.join("localhost.key.pem")).unwrap();
    kite_server::Certificate::from_pem(&pem, &key).expect("a usable certificate");
    let shown = run(&["dev-certs"]);
    assert!(!shown.contains("Created") && shown.contains("localhost.pem"), "{shown}");
    assert!(run(&["dev-certs", "--clean"]).contains("Removed"));
    assert!(!dir.join("localhost.pem").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_https_url_without_a_certificate_fails_naming_the_endpoint_and_the_fix() {
    let dir = temp_dir("no-cert");
    let out = Command::new(env!("CARGO_BIN_EXE_kite"))
        .args(["--urls", "https://127.0.0.1:0"])
        .env("KITE_DEV_CERTS_DIR", &dir)
        .env("KITE_ENVIRONMENT", "Production")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("https://127.0.0.1:0"), "{stderr}");
    assert!(stderr.contains("--certificate") && stderr.contains("kite dev-certs"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn http_and_https_cannot_share_a_port() {
    let dir = temp_dir("shared-port");
    let (cert, key) = write_certificate(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_kite"))
        .args([
            "--urls",
            "http://127.0.0.1:5099;https://127.0.0.1:5099",
            "--certificate",
            &cert,
            "--certificate-key",
            &key,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("http and https cannot share port 5099"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Reads stdout lines until one starts with `prefix`.
async fn line_starting(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    prefix: &str,
) -> String {
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("kite prints in time")
            .unwrap()
            .unwrap_or_else(|| panic!("kite's output ended before a line starting {prefix:?}"));
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.trim().to_string();
        }
    }
}

#[tokio::test]
async fn kite_serves_its_metrics_in_prometheus_text() {
    let mut child = kite()
        .args(["--urls", "http://127.0.0.1:0", "--log", "warn", "--metrics-addr", "http://127.0.0.1:0"])
        .spawn()
        .expect("kite starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let app = line_starting(&mut lines, "Now listening on: http://").await;
    let metrics = line_starting(&mut lines, "Metrics on: http://").await;
    let metrics = metrics.strip_suffix("/metrics").expect("the metrics URL").to_string();

    // One connection comes and goes, one stays open.
    let (head, _) = get(&app, "GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut open = tokio::net::TcpStream::connect(&app).await.unwrap();
    open.write_all(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let mut first = [0u8; 17];
    open.read_exact(&mut first).await.unwrap();

    let port = app.rsplit(':').next().unwrap();
    let active = format!(
        "kite_active_connections{{server_address=\"127.0.0.1\",server_port=\"{port}\",network_transport=\"tcp\"}} 1"
    );
    // The closed connection leaves the gauge just after the client saw its
    // end: read the metrics until it has, for up to 10 s.
    let started = std::time::Instant::now();
    let text = loop {
        let (head, body) = get(&metrics, "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
        assert!(head.contains("text/plain"), "{head}");
        let text = String::from_utf8(body).unwrap();
        if text.contains(&active) || started.elapsed() > Duration::from_secs(10) {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(text.contains(&active), "one connection is open on the app's endpoint ({active}):\n{text}");
    assert!(text.contains("kite_connection_duration"), "the closed one was timed:\n{text}");
    assert!(text.contains("kite_queued_connections{"), "{text}");
    terminate(&mut child).await;
}

#[tokio::test]
async fn sigterm_under_load_completes_every_accepted_request() {
    let mut child = kite().args(["--urls", "http://127.0.0.1:0", "--log", "warn"]).spawn().expect("kite starts");
    let line = first_line(&mut child).await;
    let addr = line.trim().strip_prefix("Now listening on: http://").unwrap().to_string();

    // Sixteen keep-alive clients send requests back to back.
    let mut clients = Vec::new();
    for _ in 0..16 {
        let addr = addr.clone();
        clients.push(tokio::spawn(async move {
            let (mut complete, mut refused) = (0u32, 0u32);
            'connections: loop {
                let Ok(mut stream) = tokio::net::TcpStream::connect(&addr).await else {
                    refused += 1;
                    return (complete, refused);
                };
                loop {
                    if stream.write_all(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n").await.is_err() {
                        continue 'connections;
                    }
                    let mut raw = Vec::new();
                    let mut chunk = [0u8; 256];
                    let total = loop {
                        let n: usize = stream.read(&mut chunk).await.unwrap_or_default();
                        if n == 0 {
                            // Closed: allowed only between responses.
                            assert!(raw.is_empty(), "a response was cut: {:?}", String::from_utf8_lossy(&raw));
                            if complete == 0 {
                                refused += 1;
                            }
                            return (complete, refused);
                        }
                        raw.extend_from_slice(&chunk[..n]);
                        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                            if raw.len() >= end + 4 + 13 {
                                break raw;
                            }
                        }
                    };
                    let text = String::from_utf8_lossy(&total);
                    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
                    assert!(text.ends_with("Hello, World!"), "a whole body: {text}");
                    complete += 1;
                    if text.contains("connection: close") {
                        continue 'connections;
                    }
                }
            }
        }));
    }
    // Let the load run for twenty requests of a prober, then stop.
    for _ in 0..20 {
        let (head, _) = get(&addr, "GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200"));
    }
    let status = terminate(&mut child).await;
    assert!(status.success(), "kite exits cleanly: {status:?}");
    let mut served = 0;
    for client in clients {
        let (complete, _) = tokio::time::timeout(Duration::from_secs(10), client).await.expect("clients end").unwrap();
        served += complete;
    }
    assert!(served > 0, "the load ran");
    eprintln!("{served} requests completed under load; none was cut");
}

#[tokio::test]
async fn kite_serves_every_endpoint_a_config_file_names() {
    let dir = std::env::temp_dir().join(format!("kite-bin-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    let config = dir.join("kite.json");
    std::fs::write(
        &config,
        r#"{ "Kestrel": {
              "Endpoints": {
                "Http": { "Url": "http://127.0.0.1:0", "Protocols": "Http1" },
                "Https": { "Url": "https://127.0.0.1:0", "Certificate": { "Path": "cert.pem", "KeyPath": "key.pem" } }
              } },
            "AllowedHosts": "localhost" }"#,
    )
    .unwrap();
    let mut child = kite().arg("--config").arg(&config).args(["--log", "warn"]).spawn().expect("kite starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let http = line_starting(&mut lines, "Now listening on: http://").await;
    let https = line_starting(&mut lines, "Now listening on: https://").await;
    let named = line_starting(&mut lines, "Endpoint Http: ").await;
    assert!(named.ends_with("(Http1)"), "{named}");
    assert!(https.starts_with("127.0.0.1:"), "{https}");

    let (head, body) = get(&http, "GET /plaintext HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"Hello, World!");
    let (head, _) = get(&http, "GET /plaintext HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 400"), "AllowedHosts from the file: {head}");
    terminate(&mut child).await;

    // A bad value: exit code 2 and one line naming the file, key and fix.
    std::fs::write(&config, r#"{ "Kestrel": { "Limits": { "MaxRequestLineSize": -1 } } }"#).unwrap();
    let out = kite().arg("--config").arg(&config).stderr(Stdio::piped()).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("kite.json: Kestrel:Limits:MaxRequestLineSize: is -1"), "{message}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn haproxy_in_front_of_kite_shows_the_client_address_in_info() {
    let dir = std::env::temp_dir().join(format!("kite-bin-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("kite.json");
    std::fs::write(
        &config,
        r#"{ "Kestrel": { "Endpoints": { "Behind": { "Url": "http://127.0.0.1:0",
              "ProxyProtocol": { "Mode": "Required", "TrustedProxies": [ "127.0.0.1" ] } } } } }"#,
    )
    .unwrap();
    let mut child = kite().arg("--config").arg(&config).args(["--log", "warn"]).spawn().expect("kite starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let address = line_starting(&mut lines, "Now listening on: http://").await;
    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
    for send in ["send-proxy", "send-proxy-v2"] {
        let front = haproxy::free_port();
        let proxy = match haproxy::Haproxy::start(front, port, send).await {
            Ok(proxy) => proxy,
            Err(message) => {
                tools::missing(&message);
                break;
            }
        };
        let mut stream = haproxy::from_127_0_0_2(front).await;
        stream.write_all(b"GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await.unwrap().unwrap();
        let raw = String::from_utf8_lossy(&raw).to_string();
        let body = raw.split("\r\n\r\n").nth(1).unwrap_or_default();
        let info: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {raw}"));
        assert!(info["remote"].as_str().unwrap().starts_with("127.0.0.2:"), "{send}: {info}");
        assert!(info["proxy"].as_str().unwrap().starts_with("127.0.0.1:"), "{send}: {info}");
        proxy.stop().await;
    }
    // Without the header, the endpoint refuses the connection.
    let (head, _) = get_or_closed(&address).await;
    assert!(head.is_empty(), "closed without a header: {head}");
    terminate(&mut child).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Like [`get`], but a connection closed without a response gives an empty head.
async fn get_or_closed(addr: &str) -> (String, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(b"GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await.unwrap();
    (String::from_utf8_lossy(&raw).to_string(), raw)
}

#[tokio::test]
async fn kite_serves_a_socket_passed_by_systemd_socket_activation() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    for transport in ["sockets", "mio", "uring"] {
        // The parent binds, as systemd does, and passes the socket as fd 3.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let fd = listener.as_raw_fd();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kite"));
        command.args(["--log", "warn", "--transport", transport]).env("LISTEN_FDS", "1").stdout(Stdio::piped());
        // SAFETY: only dup2 and fcntl, which are async-signal-safe, run in
        // the child. When the listener already is fd 3, dup2 would leave its
        // close-on-exec flag set, so the flag is cleared instead.
        unsafe {
            command.pre_exec(move || {
                let done = if fd == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(fd, 3) };
                if done < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = tokio::process::Command::from(command).kill_on_drop(true).spawn().expect("kite starts");
        drop(listener);
        let line = first_line(&mut child).await;
        assert_eq!(line.trim(), format!("Now listening on: http://{addr}"), "{transport}: the inherited socket");
        let (head, body) =
            get(&addr.to_string(), "GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{transport}: {head}");
        assert_eq!(body, b"Hello, World!");
        terminate(&mut child).await;
    }
}

#[tokio::test]
async fn the_demo_echo_keeps_the_body_rules() {
    if !tools::require_tool("curl") {
        return;
    }
    for transport in ["sockets", "mio", "uring"] {
        echo_keeps_the_body_rules_on(transport).await;
    }
}

async fn echo_keeps_the_body_rules_on(transport: &str) {
    let mut child = kite()
        .args(["--urls", "http://127.0.0.1:0", "--log", "warn", "--transport", transport])
        .env("KITE__Kestrel__Limits__MaxRequestBodySize", "100")
        .env("KITE__Kestrel__Limits__MinRequestBodyDataRate__BytesPerSecond", "240")
        .env("KITE__Kestrel__Limits__MinRequestBodyDataRate__GracePeriod", "00:00:02")
        .spawn()
        .expect("kite starts");
    let line = first_line(&mut child).await;
    let addr = line.trim().strip_prefix("Now listening on: http://").unwrap_or_else(|| panic!("{line:?}")).to_string();

    // 100 Continue comes before the echo's response.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut interim)).await.unwrap().unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n", "{transport}");
    stream.write_all(b"hello").await.unwrap();

    // A declared length over MaxRequestBodySize is 413, nothing before it.
    let (head, _) = get(&addr, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 413 "), "{transport}: {head}");

    // Both protocols echo every byte within the limit.
    let body: String = (0..100).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    for protocol in ["--http1.1", "--http2-prior-knowledge"] {
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", protocol, "--data-binary", &body])
            .arg(format!("http://{addr}/echo"))
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{transport} {protocol}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, body.as_bytes(), "{transport} {protocol}");
    }

    // 10 bytes a second against 240 B/s: cut off soon after the 2 s grace.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let mut chunk = [0u8; 1024];
    let closed = loop {
        if started.elapsed() > Duration::from_secs(8) || slow.write_all(b"0123456789").await.is_err() {
            break started.elapsed();
        }
        let next = tokio::time::Instant::now() + Duration::from_secs(1);
        match tokio::time::timeout_at(next, slow.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
            _ => tokio::time::sleep_until(next).await,
        }
    };
    assert!(closed < Duration::from_secs(6), "{transport}: a 10 B/s upload lasted {closed:?}");
    terminate(&mut child).await;
}

#[tokio::test]
async fn logs_to_a_pipe_carry_no_colour_codes() {
    let mut child = kite()
        .args(["--urls", "http://127.0.0.1:0", "--log", "debug"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("kite starts");
    let line = first_line(&mut child).await;
    let addr = line.trim().strip_prefix("Now listening on: http://").unwrap_or_else(|| panic!("{line:?}")).to_string();
    let (head, _) = get(&addr, "GET /plaintext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    terminate(&mut child).await;
    let mut logs = String::new();
    stderr.read_to_string(&mut logs).await.unwrap();
    assert!(logs.contains("connection started"), "the debug log was written: {logs}");
    assert!(!logs.contains('\u{1b}'), "no ANSI escapes in a pipe: {logs:?}");
}

/// Installs, in a child about to exec, a seccomp filter that refuses
/// `io_uring_setup` with EPERM, as Docker's default profile does.
fn refuse_io_uring() -> std::io::Result<()> {
    let filter = [
        // A = the system call number (seccomp_data.nr, at offset 0).
        libc::sock_filter { code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16, jt: 0, jf: 0, k: 0 },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_io_uring_setup as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
        libc::sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW },
    ];
    let program = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut libc::sock_filter };
    // SAFETY: prctl with these arguments reads only `program`, which lives
    // across the calls; no memory is written.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &program as *const libc::sock_fprog) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Where io_uring is refused (here by a seccomp filter), `--transport
/// uring` fails with one line that says so and names the way out, and a
/// non-zero exit; it never falls back silently, never panics.
#[test]
fn kite_on_uring_where_io_uring_is_refused_says_so_in_one_line() {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kite"));
    command.args(["--urls", "http://127.0.0.1:0", "--transport", "uring"]);
    // SAFETY: only prctl, async-signal-safe, runs in the child.
    unsafe { command.pre_exec(refuse_io_uring) };
    let out = command.output().expect("kite runs");
    assert!(!out.status.success(), "kite must fail without io_uring");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("io_uring") && stderr.contains("seccomp"), "says why: {stderr}");
    assert!(stderr.contains("--transport sockets"), "names the way out: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    eprintln!("refused, as it should be: {}", stderr.trim_end());
    assert!(out.stdout.is_empty() || !String::from_utf8_lossy(&out.stdout).contains("Now listening"));

    // The same machine still serves with the sockets transport under the
    // same filter: nothing else needs io_uring.
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kite"));
    command.args(["--urls", "http://127.0.0.1:0", "--transport", "sockets", "--log", "warn"]).stdout(Stdio::piped());
    // SAFETY: as above.
    unsafe { command.pre_exec(refuse_io_uring) };
    let mut child = command.spawn().expect("kite starts");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.starts_with("Now listening on: "), "{line}");
    child.kill().unwrap();
    child.wait().unwrap();
}
