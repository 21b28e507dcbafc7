use std::task::Poll;
use std::time::Duration;

use kite_transport_core::{ConnectionExecutor, Endpoint, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const WAIT: Duration = Duration::from_secs(10);

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

/// How many loop threads of transport `id` exist.
fn loop_threads(id: usize) -> usize {
    let prefix = format!("kite-uring-{id}-");
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
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("transport {id} has {} loop threads, not {count}", loop_threads(id)));
}

fn transport(options: UringOptions) -> UringTransport {
    UringTransport::new(options).expect("this machine offers io_uring (kernel 6.0 or later, not disabled)")
}

async fn bind_local(transport: &UringTransport) -> (Box<dyn Listener>, std::net::SocketAddr) {
    let listener = transport.bind(&Endpoint::Tcp("127.0.0.1:0".parse().unwrap())).await.unwrap();
    let addr = listener.local_endpoint().as_tcp().unwrap();
    (listener, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_spread_round_robin_and_loops_stop_when_unused() {
    let transport = transport(UringOptions::default().threads(3));
    let id = transport.id();
    wait_for_loop_threads(id, 3).await;
    let (mut listener, addr) = bind_local(&transport).await;

    let mut clients = Vec::new();
    let mut connections = Vec::new();
    for _ in 0..3 {
        clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        connections.push(listener.accept().await.unwrap());
    }
    // Large writes both ways: many buffers, partial sends, back-pressure.
    let payload: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
    for (client, connection) in clients.iter_mut().zip(connections.iter_mut()) {
        let sent = payload.clone();
        let write = async { connection.write_all(&sent).await.unwrap() };
        let mut got = vec![0u8; payload.len()];
        let read = async { client.read_exact(&mut got).await.unwrap() };
        tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(write, read) }).await.unwrap();
        assert!(got == payload, "bytes arrive intact from the server");

        let upload = payload.clone();
        let write = async { client.write_all(&upload).await.unwrap() };
        let mut got = vec![0u8; payload.len()];
        let read = async { connection.read_exact(&mut got).await.unwrap() };
        tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(write, read) }).await.unwrap();
        assert!(got == payload, "bytes arrive intact at the server");
    }

    drop(connections);
    drop(clients);
    drop(listener);
    drop(transport);
    // The threads end once nothing uses them.
    wait_for_loop_threads(id, 0).await;
}

#[tokio::test]
async fn unix_sockets_eof_and_shutdown() {
    let dir = std::env::temp_dir().join(format!("kite-uring-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("uring.sock");
    let transport = transport(UringOptions::default().threads(1));
    let mut listener = transport.bind(&Endpoint::Unix(path.clone())).await.unwrap();
    let mut client = tokio::net::UnixStream::connect(&path).await.unwrap();
    let mut connection = listener.accept().await.unwrap();
    client.write_all(b"hello").await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, connection.read_to_end(&mut got)).await.unwrap().unwrap();
    assert_eq!(got, b"hello");

    // Shutdown waits for what was queued, then the peer reads the end.
    connection.write_all(b"bye").await.unwrap();
    connection.shutdown().await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(WAIT, client.read_to_end(&mut back)).await.unwrap().unwrap();
    assert_eq!(back, b"bye");
    drop(listener);
    assert!(!path.exists(), "socket file removed");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn addr_in_use_is_reported() {
    let transport = transport(UringOptions::default().threads(1));
    let (listener, _) = bind_local(&transport).await;
    let err = transport.bind(listener.local_endpoint()).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
}

#[tokio::test]
async fn accepting_pauses_at_the_connection_limit_and_resumes_when_one_closes() {
    let transport = transport(UringOptions::default().threads(1).max_connections(Some(2)));
    let (mut listener, addr) = bind_local(&transport).await;

    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let first = listener.accept().await.unwrap();
    let _second = listener.accept().await.unwrap();
    assert_eq!(transport.live_connections(), 2);

    let polled = std::future::poll_fn(|cx| Poll::Ready(listener.poll_accept(cx).is_pending())).await;
    assert!(polled, "accept must wait at the connection limit");

    drop(first);
    let third = tokio::time::timeout(WAIT, listener.accept()).await.expect("accepting resumes");
    assert!(third.is_ok());
    assert_eq!(transport.live_connections(), 2);
}

/// With every receive buffer of the loop held by connections whose reader
/// is not reading, another connection's data waits (in the kernel) rather
/// than failing, and flows once buffers come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_buffer_ring_is_back_pressure_not_failure() {
    // 8 buffers of 64 bytes; a connection may hold 16 before it pauses,
    // so one fast writer alone empties the ring.
    let transport = transport(UringOptions::default().threads(1).buffers(8, 64));
    let (mut listener, addr) = bind_local(&transport).await;
    let mut hog_client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut hog = listener.accept().await.unwrap();
    let mut other_client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut other = listener.accept().await.unwrap();

    // The hog's server side reads nothing: its bytes take the whole ring.
    let flood: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    hog_client.write_all(&flood).await.unwrap();
    // Wait until the loop has handed the whole ring to the hog; the kernel
    // may still hold the flood when `write_all` returns.
    let (ring_loop, _) = transport.loops.next();
    let emptied = async {
        while crate::handle::lock(&ring_loop.shared().buffers).free() > 0 {
            tokio::task::yield_now().await;
            std::thread::yield_now();
        }
    };
    tokio::time::timeout(WAIT, emptied).await.expect("the hog's bytes take every buffer");
    // The other connection's bytes cannot be received until buffers free.
    other_client.write_all(b"still here").await.unwrap();
    let mut first = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), other.read_exact(&mut first)).await;
    assert!(early.is_err(), "with the ring empty the other connection waits for buffers");

    // Reading the hog frees buffers; both connections then get every byte.
    let mut got = vec![0u8; flood.len()];
    tokio::time::timeout(WAIT, hog.read_exact(&mut got)).await.expect("the hog's bytes flow").unwrap();
    assert!(got == flood);
    let mut rest = [0u8; 10];
    tokio::time::timeout(WAIT, other.read_exact(&mut rest)).await.expect("the other connection resumes").unwrap();
    assert_eq!(&rest, b"still here");
}

/// A peer that resets while the server is sending: the write fails with
/// the reset, nothing hangs, and the loop serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_resets_mid_send_fails_the_write() {
    let transport = transport(UringOptions::default().threads(1));
    let (mut listener, addr) = bind_local(&transport).await;
    let client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut connection = listener.accept().await.unwrap();
    // A reset on close: linger zero.
    socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO)).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    // Fill the client's window, then reset it.
    let mut written = 0usize;
    while written < 8 * 1024 * 1024 {
        match tokio::time::timeout(Duration::from_millis(200), connection.write_all(&chunk)).await {
            Ok(Ok(())) => written += chunk.len(),
            Ok(Err(e)) => panic!("write failed before the reset: {e}"),
            Err(_) => break,
        }
    }
    drop(client);
    let failed = tokio::time::timeout(WAIT, async {
        loop {
            if let Err(e) = connection.write_all(&chunk).await {
                return e;
            }
        }
    })
    .await
    .expect("the write fails instead of hanging");
    assert!(
        matches!(failed.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe),
        "the write failed with the reset, not {failed:?}"
    );
    drop(connection);

    // The loop goes on serving.
    let mut next_client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut next = listener.accept().await.unwrap();
    next.write_all(b"ok").await.unwrap();
    let mut got = [0u8; 2];
    tokio::time::timeout(WAIT, next_client.read_exact(&mut got)).await.unwrap().unwrap();
    assert_eq!(&got, b"ok");
}

/// A stream dropped with bytes queued still delivers them, then closes.
#[tokio::test]
async fn a_dropped_stream_sends_what_it_queued_then_closes() {
    let transport = transport(UringOptions::default().threads(1));
    let (mut listener, addr) = bind_local(&transport).await;
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut connection = listener.accept().await.unwrap();
    let payload: Vec<u8> = (0..200_000).map(|i| (i % 249) as u8).collect();
    connection.write_all(&payload).await.unwrap();
    drop(connection);
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, client.read_to_end(&mut got)).await.unwrap().unwrap();
    assert!(got == payload, "every queued byte arrives before the end of the stream");
    assert_eq!(transport.live_connections(), 0);
}

/// `poll_close` stops accepting and hands back what was accepted ahead,
/// so a stopping server can still serve it.
#[tokio::test]
async fn closing_a_listener_returns_what_it_accepted_ahead() {
    let transport = transport(UringOptions::default().threads(1));
    let endpoint = Endpoint::Tcp("127.0.0.1:0".parse().unwrap());
    let mut listener = UringListener::bind(&endpoint, Arc::clone(&transport.loops), &SocketOptions::default()).unwrap();
    let addr = listener.local_endpoint().as_tcp().unwrap();
    // Arm the accept, then let three connections in.
    let waited = std::future::poll_fn(|cx| Poll::Ready(listener.poll_accept(cx).is_pending())).await;
    assert!(waited);
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::timeout(WAIT, async {
        while listener.queued() < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the loop accepts ahead of the consumer");
    let mut held = std::future::poll_fn(|cx| listener.poll_close(cx)).await;
    assert_eq!(held.len(), 3, "the connections accepted ahead are handed back");
    drop(listener);
    for (client, connection) in clients.iter_mut().zip(held.iter_mut()) {
        connection.write_all(b"served").await.unwrap();
        let mut got = [0u8; 6];
        tokio::time::timeout(WAIT, client.read_exact(&mut got)).await.unwrap().unwrap();
    }
    // Closed: a new connection is refused, not accepted and dropped.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[test]
fn an_unavailable_reason_names_the_way_out() {
    let refused = Unavailable::Refused(io::Error::from_raw_os_error(libc::EPERM));
    let message = refused.to_string();
    assert!(message.contains("kernel.io_uring_disabled") && message.contains("seccomp"), "{message}");
    let error: io::Error = refused.into();
    assert_eq!(error.kind(), io::ErrorKind::Unsupported);
    assert!(error.get_ref().and_then(|e| e.downcast_ref::<Unavailable>()).is_some());
}

/// A connection task aborted from another thread (a server's shutdown
/// timeout) drops its stream, and the client sees the connection close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_task_closes_its_connection() {
    for round in 0..50 {
        let transport = transport(UringOptions::default().threads(2));
        let (mut listener, addr) = bind_local(&transport).await;
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let connection = listener.accept().await.unwrap();
        let executor = connection.context().features().get::<ConnectionExecutor>().cloned().unwrap();
        let (entered, wait_entered) = tokio::sync::oneshot::channel::<()>();
        let abort = executor.spawn(Box::pin(async move {
            let mut connection = connection;
            let mut buf = [0u8; 3];
            connection.read_exact(&mut buf).await.unwrap();
            let _ = entered.send(());
            std::future::pending::<()>().await;
        }));
        client.write_all(b"abc").await.unwrap();
        wait_entered.await.unwrap();
        drop(listener);
        drop(transport);
        abort.abort();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(WAIT, client.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "round {round}: the aborted task's connection closes");
    }
}

#[test]
fn chunks_keep_their_order_across_the_inline_slot() {
    use crate::conn::{Chunk, Chunks};
    let mut chunks = Chunks::default();
    assert!(chunks.is_empty() && chunks.front_mut().is_none());
    for id in 0..5 {
        chunks.push_back(Chunk { id, start: 0, end: 1 });
    }
    assert_eq!(chunks.len(), 5);
    assert_eq!(chunks.pop_front().map(|c| c.id), Some(0));
    assert_eq!(chunks.front_mut().map(|c| c.id), Some(1));
    chunks.push_back(Chunk { id: 9, start: 0, end: 1 });
    let order: Vec<u16> = chunks.drain().map(|c| c.id).collect();
    assert_eq!(order, [1, 2, 3, 4, 9]);
    assert!(chunks.is_empty());
    assert_eq!(chunks.len(), 0);
}

/// With SQPOLL a kernel thread takes the submissions; the loop still
/// waits in the kernel for completions, and bytes flow both ways.
#[tokio::test]
async fn sqpoll_rings_serve_too() {
    let transport = transport(UringOptions::default().threads(1).sqpoll(Some(Duration::from_millis(10))));
    let (mut listener, addr) = bind_local(&transport).await;
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut connection = listener.accept().await.unwrap();
    for round in 0..20u8 {
        if round % 5 == 4 {
            // Idle past the kernel thread's 10 ms: it sleeps, and the
            // next submission must wake it.
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        client.write_all(&[round; 100]).await.unwrap();
        let mut got = [0u8; 100];
        tokio::time::timeout(WAIT, connection.read_exact(&mut got)).await.unwrap().unwrap();
        assert_eq!(got, [round; 100]);
        connection.write_all(&got).await.unwrap();
        let mut back = [0u8; 100];
        tokio::time::timeout(WAIT, client.read_exact(&mut back)).await.unwrap().unwrap();
        assert_eq!(back, [round; 100]);
    }
}

/// Shutdown does not wait for the peer to read: with the send queue full
/// of bytes a client has not read, it returns at once; every byte and then
/// the end of the stream still reach the client when it reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_at_once_and_the_end_follows_the_queued_bytes() {
    let transport = transport(UringOptions::default().threads(1));
    let (mut listener, addr) = bind_local(&transport).await;
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut connection = listener.accept().await.unwrap();
    // Write until the kernel's buffers and the queue are full.
    let chunk = vec![5u8; 64 * 1024];
    let mut written = 0usize;
    loop {
        match tokio::time::timeout(Duration::from_millis(200), connection.write(&chunk)).await {
            Ok(Ok(n)) => written += n,
            Ok(Err(e)) => panic!("write failed: {e}"),
            Err(_) => break,
        }
    }
    assert!(written > 256 * 1024, "the writes filled the buffers ({written} bytes)");
    tokio::time::timeout(Duration::from_secs(1), connection.shutdown())
        .await
        .expect("shutdown returns without waiting for the peer")
        .unwrap();
    assert!(connection.write(b"late").await.is_err(), "no write after shutdown");
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, client.read_to_end(&mut got)).await.expect("the end of the stream arrives").unwrap();
    assert_eq!(got.len(), written, "every byte before the end");
    assert!(got.iter().all(|&b| b == 5));
}

/// The accept cancelled because the queue ahead of the consumer filled is
/// armed again when its cancellation completes, even when the consumer
/// drained the queue while the cancel was in flight and waits: the loop is
/// held (by a task of its own that blocks) between reaping the accepts and
/// submitting the cancel, so that interleaving happens every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_cancelled_at_a_full_queue_is_armed_again() {
    let transport = transport(UringOptions::default().threads(1));
    let (mut listener, addr) = bind_local(&transport).await;
    let mut control = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connection = listener.accept().await.unwrap();
    let executor = connection.context().features().get::<ConnectionExecutor>().cloned().unwrap();
    // A task on the loop that, for each byte read, blocks the loop thread
    // until released.
    let (blocked, wait_blocked) = std::sync::mpsc::channel::<()>();
    let (release, wait_release) = std::sync::mpsc::channel::<()>();
    let holder = executor.spawn(Box::pin(async move {
        let mut connection = connection;
        let mut byte = [0u8; 1];
        while connection.read_exact(&mut byte).await.is_ok() {
            blocked.send(()).unwrap();
            if wait_release.recv().is_err() {
                return;
            }
        }
    }));
    let wait_held = || {
        let wait = wait_blocked.recv_timeout(WAIT);
        assert!(wait.is_ok(), "the loop task did not run");
    };
    // Armed, and the loop held.
    assert!(std::future::poll_fn(|cx| Poll::Ready(listener.poll_accept(cx).is_pending())).await);
    control.write_all(b"1").await.unwrap();
    tokio::task::block_in_place(wait_held);
    // More connections than the queue holds, and a byte that holds the
    // loop again right after it reaps them (and queues the cancel).
    let mut clients = Vec::new();
    for _ in 0..crate::accept::ACCEPT_QUEUE + 4 {
        clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    control.write_all(b"2").await.unwrap();
    release.send(()).unwrap();
    tokio::task::block_in_place(wait_held);
    // The consumer takes all of them while the cancel waits, then waits
    // to be woken, as a server's accept loop does.
    let woken = Arc::new(Woken::default());
    let waker = std::task::Waker::from(Arc::clone(&woken));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut taken = 0;
    while let Poll::Ready(accepted) = listener.poll_accept(&mut cx) {
        drop(accepted.unwrap());
        taken += 1;
    }
    assert_eq!(taken, clients.len(), "every connection was accepted ahead");
    release.send(()).unwrap();
    // The cancel completes; the next connection must wake the consumer.
    let _late = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(tokio::task::block_in_place(|| woken.wait(WAIT)), "the accept was armed again after its cancellation");
    assert!(listener.poll_accept(&mut cx).is_ready(), "woken with the late connection");
    drop(release);
    holder.abort();
}

/// A waker that records that it was woken.
#[derive(Default)]
struct Woken {
    woken: std::sync::Mutex<bool>,
    signal: std::sync::Condvar,
}

impl Woken {
    /// Whether a wake came within `timeout`.
    fn wait(&self, timeout: Duration) -> bool {
        let woken = self.woken.lock().unwrap();
        *self.signal.wait_timeout_while(woken, timeout, |woken| !*woken).unwrap().0
    }
}

impl std::task::Wake for Woken {
    fn wake(self: Arc<Self>) {
        *self.woken.lock().unwrap() = true;
        self.signal.notify_all();
    }
}
