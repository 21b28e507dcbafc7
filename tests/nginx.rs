//! Behind nginx on a Unix socket, as the Kestrel docs recommend: Debian's
//! nginx proxies loopback TCP to Kite's socket, and requests, bodies and
//! forwarded headers pass through.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use kite::ServerOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// nginx's path: on PATH or where Debian puts it.
fn nginx() -> Option<String> {
    if std::path::Path::new("/usr/sbin/nginx").is_file() {
        return Some("/usr/sbin/nginx".into());
    }
    require_tool("nginx").then(|| "nginx".into())
}

#[tokio::test]
async fn nginx_proxies_to_kite_over_a_unix_socket() {
    let Some(nginx) = nginx() else { return };
    for transport in transports() {
        proxied_on(transport, &nginx).await;
    }
}

async fn proxied_on(transport: &str, nginx: &str) {
    let dir = std::env::temp_dir().join(format!("kite-nginx-{transport}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("kite.sock");
    let path = socket.clone();
    let server = start_with(transport, ServerOptions::default(), move |builder| {
        builder.listen_address_with(kite::ListenAddress::Unix(path), |listen| listen.permissions(0o660))
    })
    .await;

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let d = dir.display();
    let config = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream kite {{ server unix:{sock}; keepalive 4; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://kite;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"#,
        sock = socket.display()
    );
    std::fs::write(dir.join("nginx.conf"), config).unwrap();
    let mut child = tokio::process::Command::new(nginx)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("nginx starts");

    // Wait on nginx's address: connect until it accepts, bounded.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut stream = loop {
        tick.tick().await;
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => break stream,
            Err(e) => {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    let _ = child.stderr.take().unwrap().read_to_string(&mut err).await;
                    panic!("nginx exited ({status}): {err}");
                }
                assert!(tokio::time::Instant::now() < deadline, "nginx never listened: {e}");
            }
        }
    };

    // A request's headers arrive, forwarded ones included.
    stream.write_all(b"GET /headers HTTP/1.1\r\nHost: proxied.example\r\nX-Custom: kept\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let response = read_response(&mut stream, &mut buf).await;
    assert_eq!(response.status, 200);
    assert!(response.header("server").is_some_and(|s| s.starts_with("nginx")), "the answer came through nginx");
    let seen = String::from_utf8(response.body).unwrap();
    assert!(seen.contains("host: proxied.example\n"), "{seen}");
    assert!(seen.contains("x-forwarded-for: 127.0.0.1\n"), "{seen}");
    assert!(seen.contains("x-forwarded-proto: http\n"), "{seen}");
    assert!(seen.contains("x-custom: kept\n"), "{seen}");

    // A body goes through and back, on the same client connection.
    let body = "x".repeat(100_000);
    let request = format!("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    stream.write_all(request.as_bytes()).await.unwrap();
    let response = read_response(&mut stream, &mut buf).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), body.len());

    // Kite saw the Unix socket as the connection's remote end.
    stream.write_all(b"GET /remote HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let response = read_response(&mut stream, &mut buf).await;
    assert_eq!(String::from_utf8_lossy(&response.body), "unnamed", "a Unix peer has no address");

    drop(stream);
    child.kill().await.unwrap();
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
