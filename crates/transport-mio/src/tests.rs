use std::task::Poll;
use std::time::Duration;

use kite_transport_core::{Endpoint, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|name| name.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// How many event-loop threads of transport `id` exist.
fn loop_threads(id: usize) -> usize {
    let prefix = format!("kite-mio-{id}-");
    thread_names().iter().filter(|n| n.starts_with(&prefix)).count()
}

/// Waits, bounded, until transport `id` has `count` loop threads.
async fn wait_for_loop_threads(id: usize, count: usize) {
    let wait = async {
        while loop_threads(id) != count {
            tokio::task::yield_now().await;
            std::thread::yield_now();
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("transport {id} has {} loop threads, not {count}", loop_threads(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_spread_round_robin_and_loops_stop_when_unused() {
    let transport = MioTransport::new(MioOptions::default().threads(3)).unwrap();
    let id = transport.id;
    wait_for_loop_threads(id, 3).await;
    let mut listener = transport.bind(&Endpoint::Tcp("127.0.0.1:0".parse().unwrap())).await.unwrap();
    let addr = listener.local_endpoint().as_tcp().unwrap();

    let mut clients = Vec::new();
    let mut connections = Vec::new();
    for _ in 0..3 {
        clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        connections.push(listener.accept().await.unwrap());
    }
    // Large writes both ways: readiness must carry across partial writes.
    let payload: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
    for (client, connection) in clients.iter_mut().zip(connections.iter_mut()) {
        let sent = payload.clone();
        let write = async { connection.write_all(&sent).await.unwrap() };
        let mut got = vec![0u8; payload.len()];
        let read = async { client.read_exact(&mut got).await.unwrap() };
        tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(write, read) }).await.unwrap();
        assert!(got == payload, "bytes arrive intact");
    }

    drop(connections);
    drop(clients);
    drop(listener);
    drop(transport);
    // The threads end once nothing uses them.
    wait_for_loop_threads(id, 0).await;
}

#[tokio::test]
async fn unix_sockets_and_eof() {
    let dir = std::env::temp_dir().join(format!("kite-mio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mio.sock");
    let transport = MioTransport::new(MioOptions::default().threads(1)).unwrap();
    let mut listener = transport.bind(&Endpoint::Unix(path.clone())).await.unwrap();
    let mut client = tokio::net::UnixStream::connect(&path).await.unwrap();
    let mut connection = listener.accept().await.unwrap();
    client.write_all(b"hello").await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), connection.read_to_end(&mut got)).await.unwrap().unwrap();
    assert_eq!(got, b"hello");
    drop(listener);
    assert!(!path.exists(), "socket file removed");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn addr_in_use_is_reported() {
    let transport = MioTransport::new(MioOptions::default().threads(1)).unwrap();
    let listener = transport.bind(&Endpoint::Tcp("127.0.0.1:0".parse().unwrap())).await.unwrap();
    let err = transport.bind(listener.local_endpoint()).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
}

#[tokio::test]
async fn accepting_pauses_at_the_connection_limit_and_resumes_when_one_closes() {
    let transport = MioTransport::new(MioOptions::default().threads(1).max_connections(Some(2))).unwrap();
    let mut listener = transport.bind(&Endpoint::Tcp("127.0.0.1:0".parse().unwrap())).await.unwrap();
    let addr = listener.local_endpoint().as_tcp().unwrap();

    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let first = listener.accept().await.unwrap();
    let _second = listener.accept().await.unwrap();
    assert_eq!(transport.live_connections(), 2);

    // At the limit accept does not even look at the socket.
    let polled = std::future::poll_fn(|cx| Poll::Ready(listener.poll_accept(cx).is_pending())).await;
    assert!(polled, "accept must wait at the connection limit");

    drop(first);
    let third = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await.expect("accepting resumes");
    assert!(third.is_ok());
    assert_eq!(transport.live_connections(), 2);
}
