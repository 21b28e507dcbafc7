//! Behind Apache httpd, the third reverse proxy the Kestrel documentation
//! names: Debian's apache2 with mod_proxy forwards to Kite's TCP endpoint
//! and to its Unix-socket endpoint, adding `X-Forwarded-For`,
//! `X-Forwarded-Host`, `X-Forwarded-Server` and `X-Forwarded-Proto`; a
//! request body and a WebSocket go through both.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use kite::ServerOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// apache2's path: where Debian puts it, or on PATH.
fn apache() -> Option<String> {
    if std::path::Path::new("/usr/sbin/apache2").is_file() {
        return Some("/usr/sbin/apache2".into());
    }
    let found = std::process::Command::new("apache2").arg("-v").output().is_ok();
    found.then(|| "apache2".into()).or_else(|| {
        missing(&format!("apache2 is required by this test but is not installed; {INSTALLS}"));
        None
    })
}

/// Sends SIGTERM to Apache's parent when dropped, a failed test included.
struct Stop(u32);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.0.to_string()]).status();
    }
}

const MODULES: &str = "/usr/lib/apache2/modules";

#[tokio::test]
async fn apache_proxies_to_a_tcp_and_a_unix_endpoint_with_bodies_and_websockets() {
    let Some(apache) = apache() else { return };
    for transport in transports() {
        proxied_on(transport, &apache).await;
    }
}

async fn proxied_on(transport: &str, apache: &str) {
    let dir = std::env::temp_dir().join(format!("kite-apache-{transport}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Apache's children run as www-data: the socket and its directory are
    // open to them.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let socket = dir.join("kite.sock");
    let path = socket.clone();
    let server = start_with(transport, ServerOptions::default(), move |builder| {
        builder
            .listen(([127, 0, 0, 1], 0))
            .listen_address_with(kite::ListenAddress::Unix(path), |listen| listen.permissions(0o666))
    })
    .await;

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let d = dir.display();
    let config = format!(
        r#"ServerRoot "{d}"
ServerName localhost
Listen 127.0.0.1:{port}
PidFile {d}/httpd.pid
ErrorLog {d}/error.log
LogLevel warn
Mutex file:{d} default
User www-data
Group www-data
LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule headers_module {MODULES}/mod_headers.so
LoadModule proxy_module {MODULES}/mod_proxy.so
LoadModule proxy_http_module {MODULES}/mod_proxy_http.so
ProxyPreserveHost On
RequestHeader set X-Forwarded-Proto "http"
ProxyPass "/tcp/" "http://{kite}/" upgrade=websocket
ProxyPass "/unix/" "unix:{sock}|http://localhost/" upgrade=websocket
"#,
        kite = server.addr,
        sock = socket.display()
    );
    std::fs::write(dir.join("httpd.conf"), config).unwrap();
    let mut child = tokio::process::Command::new(apache)
        .arg("-f")
        .arg(dir.join("httpd.conf"))
        .arg("-DFOREGROUND")
        .stderr(Stdio::piped())
        .spawn()
        .expect("apache2 starts");
    // SIGTERM to the parent stops its children too (SIGKILL would orphan
    // them, holding the port and this test's pipes).
    let stop = Stop(child.id().expect("running"));

    // Wait on Apache's address: connect until it accepts, bounded.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        match tokio::net::TcpStream::connect(addr).await {
            Ok(_) => break,
            Err(e) => {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    let _ = child.stderr.take().unwrap().read_to_string(&mut err).await;
                    let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                    panic!("apache2 exited ({status}): {err}{log}");
                }
                assert!(tokio::time::Instant::now() < deadline, "apache2 never listened: {e}");
            }
        }
    }

    for prefix in ["/tcp", "/unix"] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        // The forwarded headers arrive.
        let request = format!("GET {prefix}/headers HTTP/1.1\r\nHost: proxied.example\r\nX-Custom: kept\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let response = read_response(&mut stream, &mut buf).await;
        assert_eq!(response.status, 200, "{prefix}");
        let seen = String::from_utf8(response.body).unwrap();
        for line in [
            "host: proxied.example\n",
            "x-forwarded-for: 127.0.0.1\n",
            "x-forwarded-host: proxied.example\n",
            "x-forwarded-server: localhost\n",
            "x-forwarded-proto: http\n",
            "x-custom: kept\n",
        ] {
            assert!(seen.contains(line), "{prefix}: no {line:?} in {seen}");
        }

        // A body goes through and back, on the same client connection.
        let body = "x".repeat(100_000);
        let request =
            format!("POST {prefix}/count HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        stream.write_all(request.as_bytes()).await.unwrap();
        let response = read_response(&mut stream, &mut buf).await;
        assert_eq!(response.status, 200, "{prefix}");
        assert_eq!(String::from_utf8_lossy(&response.body), "100000", "{prefix}");
        let request = format!("POST {prefix}/echo HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        stream.write_all(request.as_bytes()).await.unwrap();
        let response = read_response(&mut stream, &mut buf).await;
        assert_eq!(response.body.len(), body.len(), "{prefix}: the echo");

        // A WebSocket through Apache's tunnel.
        let request = format!("ws://{addr}{prefix}/ws?plain").into_client_request().unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut socket, response) = tokio_tungstenite::client_async(request, tcp).await.expect("handshake");
        assert_eq!(response.status(), 101, "{prefix}");
        for text in ["hello", &"y".repeat(70_000)] {
            socket.send(Message::text(text)).await.unwrap();
            let echoed = tokio::time::timeout(WAIT, socket.next()).await.expect("an echo").unwrap().unwrap();
            assert_eq!(echoed, Message::text(text), "{prefix}");
        }
        socket.close(None).await.unwrap();
    }

    drop(stop);
    // A child still in a proxied exchange may take Apache's whole stop
    // schedule: SIGTERM again at 3, 5 and 7 s, SIGKILL at 9 s.
    let stopping = Duration::from_secs(20);
    tokio::time::timeout(stopping, child.wait()).await.expect("apache2 stops on SIGTERM").unwrap();
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
