//! Reload: when the configuration file changes, changed endpoints are
//! rebound, new ones bound, and unchanged ones keep their connections.

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response};
use kite_server::config::Config;
use kite_server::{service_fn, RequestBody, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Sends a keep-alive GET on `stream` and reads the whole response.
async fn get(stream: &mut TcpStream) -> Option<String> {
    stream.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.ok()?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk)).await.expect("an answer in time").ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&raw).to_string();
        if text.ends_with("\r\n\r\nok") {
            return Some(text);
        }
    }
}

fn config(keep: u16, change: u16, change_protocols: &str, new: Option<u16>) -> String {
    let new = new.map(|p| format!(r#", "New": {{ "Url": "http://127.0.0.1:{p}" }}"#)).unwrap_or_default();
    format!(
        r#"{{ "Kestrel": {{ "Endpoints": {{
            "Keep": {{ "Url": "http://127.0.0.1:{keep}" }},
            "Change": {{ "Url": "http://127.0.0.1:{change}", "Protocols": "{change_protocols}" }}{new} }} }} }}"#
    )
}

#[tokio::test]
async fn a_changed_file_rebinds_only_what_changed() {
    let dir = std::env::temp_dir().join(format!("kite-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("kite.json");
    let (keep, change, new) = (free_port(), free_port(), free_port());
    std::fs::write(&file, config(keep, change, "Http1AndHttp2", None)).unwrap();

    let loaded = Config::load(Some(&file)).unwrap();
    let server = Server::builder().handle_signals(false).configuration(&loaded).unwrap().bind().await.unwrap();
    let shutdown = server.shutdown_handle();
    let done = tokio::spawn(server.serve(service_fn(|_req: Request<RequestBody>| async {
        Ok::<_, Infallible>(Response::new(String::from("ok")))
    })));

    let mut kept = TcpStream::connect(("127.0.0.1", keep)).await.unwrap();
    assert!(get(&mut kept).await.is_some());
    let mut changed = TcpStream::connect(("127.0.0.1", change)).await.unwrap();
    assert!(get(&mut changed).await.is_some());

    std::fs::write(&file, config(keep, change, "Http1", Some(new))).unwrap();
    // The file is looked at once a second: connect to the new endpoint
    // until it answers, bounded.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", new)).await {
            if get(&mut stream).await.is_some() {
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "the new endpoint was never bound");
    }

    // The unchanged endpoint kept its connection.
    assert!(get(&mut kept).await.is_some(), "the kept endpoint's connection still serves");
    // The changed one closed its connection and speaks HTTP/1.1 only now.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, changed.read_to_end(&mut rest)).await.expect("closed in time");
    assert!(closed.is_ok_and(|n| n == 0) || rest.is_empty(), "the changed endpoint's connection was closed");
    let mut stream = TcpStream::connect(("127.0.0.1", change)).await.unwrap();
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    assert_eq!(&answer[answer.len() - 4..], &[0, 0, 0, 0x0d], "rebound as Http1: HTTP_1_1_REQUIRED");

    drop(kept);
    shutdown.shutdown();
    tokio::time::timeout(WAIT, done).await.unwrap().unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
