//! The `kite` binary gives memory back once it goes quiet: after a burst
//! of connections closes, its trimming thread returns the allocator's free
//! pages (jemalloc's purge by default, glibc's `malloc_trim` without the
//! `jemalloc` feature) and logs that it did.
#![cfg(target_os = "linux")]

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Connections in the burst: under the default limit of 1,024 descriptors.
const CONNECTIONS: usize = 400;

/// Requests on each connection.
const REQUESTS: usize = 10;

/// The process's resident set in KiB.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Starts `kite` on a free port with `args`, its stderr piped; returns
/// the child, its pid and the address it listens on.
async fn start_kite(args: &[&str]) -> (tokio::process::Child, u32, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kite"))
        .args(["--urls", "http://127.0.0.1:0"])
        .args(args)
        .kill_on_drop(true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kite starts");
    let pid = child.id().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut line)).await.expect("an address").unwrap();
    let addr = line.trim().strip_prefix("Now listening on: http://").unwrap_or_else(|| panic!("{line:?}")).to_string();
    (child, pid, addr)
}

#[tokio::test]
async fn kite_returns_freed_memory_once_quiet() {
    let (mut child, pid, addr) = start_kite(&["--log", "warn,kite::trim=debug"]).await;

    // Trimming events as they are logged, with when they were read: one
    // logged before the burst ends (after start-up) must not count.
    let (events, mut trims) = tokio::sync::mpsc::unbounded_channel();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            if line.contains("quiet: returned free memory to the system")
                && events.send((Instant::now(), line)).is_err()
            {
                return;
            }
        }
    });

    // A burst, busy enough to count as one: every connection makes
    // requests and stays open.
    let mut held = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        held.push(tokio::net::TcpStream::connect(&addr).await.expect("connect"));
    }
    for _ in 0..REQUESTS {
        for stream in &mut held {
            stream.write_all(b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
            let mut head = [0u8; 256];
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut head)).await.unwrap().unwrap();
            assert!(head[..n].starts_with(b"HTTP/1.1 200 OK"), "{}", String::from_utf8_lossy(&head[..n]));
        }
    }
    let during = rss(pid);
    drop(held);
    let closed = Instant::now();

    // The first quiet second after the burst returns the free pages.
    let event = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (at, line) = trims.recv().await.expect("kite's stderr ended before the trimming event");
            if at > closed {
                return line;
            }
        }
    })
    .await
    .expect("kite trims within 20 s of going quiet");
    // jemalloc's purge says whether the control exists; glibc's
    // malloc_trim, whether it found pages to return.
    let purged = event.contains("released=true");
    assert!(purged || !cfg!(feature = "jemalloc"), "jemalloc purged its arenas: {event}");
    let after = rss(pid);
    assert!(
        after <= during,
        "RSS after the connections closed ({after} KiB) is above RSS while they were open ({during} KiB)"
    );
}

/// Idle keep-alive connections in the big test: 10,000, or fewer where the
/// descriptor limit allows fewer (each side needs one per connection).
const IDLE: usize = 10_000;

/// Raises this process's descriptor limit to its hard limit; returns it.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write only `limit`.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    limit.rlim_cur
}

/// An idle keep-alive connection holds no read buffer on any transport:
/// 10,000 connections, each idle after one request, grow the server's RSS
/// by less than 3 KiB each (a 4 KiB buffer apiece would not fit), and
/// every one still answers a second request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_hold_no_buffer_on_any_transport() {
    let limit = raise_fd_limit();
    let count = IDLE.min(limit.saturating_sub(200) as usize);
    if count < IDLE {
        eprintln!("the descriptor limit is {limit}: {count} idle connections, not {IDLE}");
    }
    for transport in ["sockets", "mio", "uring"] {
        // The child inherits the raised limit.
        let (mut child, pid, addr) = start_kite(&["--log", "warn", "--transport", transport]).await;
        // Keep the piped log flowing, so the server never waits on it.
        let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });

        let request = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n";
        let answer = |stream: &mut std::net::TcpStream| {
            use std::io::{Read, Write};
            stream.write_all(request).unwrap();
            let mut response = Vec::new();
            let mut buf = [0u8; 512];
            while !response.ends_with(b"Hello, World!") {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "the connection closed before its response");
                response.extend_from_slice(&buf[..n]);
            }
            assert!(response.starts_with(b"HTTP/1.1 200 OK"));
        };
        // Warm up (first-use allocations, pools), then the baseline.
        let warm: Vec<_> = (0..50).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
        let mut warm = warm;
        warm.iter_mut().for_each(answer);
        drop(warm);
        let before = rss(pid);
        let addr2 = addr.clone();
        let held = tokio::task::spawn_blocking(move || {
            let mut held = Vec::with_capacity(count);
            for _ in 0..count {
                let mut stream = std::net::TcpStream::connect(&addr2).expect("connect");
                answer(&mut stream);
                held.push(stream);
            }
            held
        })
        .await
        .unwrap();
        let during = rss(pid);
        let per_connection = (during.saturating_sub(before)) as f64 / count as f64;
        eprintln!("{transport}: {count} idle connections, {per_connection:.2} KiB each ({before} → {during} KiB)");
        assert!(per_connection < 3.0, "{transport}: {per_connection:.2} KiB per idle connection");
        // Each one still serves.
        let mut held = held;
        tokio::task::spawn_blocking(move || {
            for stream in held.iter_mut().step_by(97) {
                answer(stream);
            }
        })
        .await
        .unwrap();
        child.kill().await.unwrap();
    }
}
