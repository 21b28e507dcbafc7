//! Scaling out and restarting without losing a request: `--workers` with a
//! worker stopped under load, an upgrade (SIGUSR2) under load, and the
//! readiness probe's flip when a drain starts.
//!
//! The load mixes new connections (one request each) with kept-alive ones.
//! A request on a kept-alive connection that the server closed before any
//! byte of a response is sent again on a new connection, as HTTP clients do
//! for idempotent requests (RFC 9112 §9.3.1); everything else must be
//! answered: a refused or reset new connection, or a response cut short,
//! fails the test.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

fn kite(args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kite"))
        .args(args)
        .args(["--log", "warn"])
        .kill_on_drop(true)
        .stdout(Stdio::piped())
        .spawn()
        .expect("kite starts")
}

/// The port of the first `Now listening on:` line.
async fn port_of(child: &mut tokio::process::Child) -> u16 {
    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line()).await.expect("kite prints its address").unwrap().unwrap();
    // Keep reading, so the pipe never fills.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    line.rsplit(':').next().unwrap().trim().parse().unwrap_or_else(|_| panic!("{line}"))
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// Reads one response with a `content-length`; `None` when the connection
/// ended before its first byte.
async fn response(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<(u16, bool, Vec<u8>)>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let status: u16 = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (mut length, mut close) = (0, false);
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let lower = line.to_ascii_lowercase();
        if lower == "\r\n" {
            break;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        close |= lower.starts_with("connection:") && lower.contains("close");
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    Ok(Some((status, close, body)))
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    answered: AtomicU64,
    resent: AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
    pids: std::sync::Mutex<std::collections::BTreeSet<u64>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }

    fn answered(&self, body: &[u8]) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        let text = String::from_utf8_lossy(body);
        if let Some(pid) = text.split("\"pid\":").nth(1).and_then(|p| p.split([',', '}']).next()) {
            if let Ok(pid) = pid.trim().parse() {
                self.pids.lock().unwrap().insert(pid);
            }
        }
    }
}

const REQUEST: &[u8] = b"GET /info HTTP/1.1\r\nHost: x\r\n\r\n";

/// One request on a new connection.
async fn fresh(port: u16, tally: &Tally) -> Option<BufReader<TcpStream>> {
    let mut stream = match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(stream) => stream,
        Err(e) => {
            tally.fail(format!("connect: {e}"));
            return None;
        }
    };
    if let Err(e) = stream.write_all(REQUEST).await {
        tally.fail(format!("write on a new connection: {e}"));
        return None;
    }
    let mut reader = BufReader::new(stream);
    match tokio::time::timeout(WAIT, response(&mut reader)).await {
        Ok(Ok(Some((200, close, body)))) => {
            tally.answered(&body);
            (!close).then_some(reader)
        }
        other => {
            tally.fail(format!("a new connection's request: {other:?}"));
            None
        }
    }
}

/// Runs `clients` loops until `stop`: each sends a request on a new
/// connection, then up to 20 on the same connection while it lasts.
async fn load(port: u16, clients: usize, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (stop, tally) = (Arc::clone(&stop), Arc::clone(&tally));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tally.sent.fetch_add(1, Ordering::Relaxed);
                let Some(mut kept) = fresh(port, &tally).await else { continue };
                for _ in 0..20 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    tally.sent.fetch_add(1, Ordering::Relaxed);
                    let written = kept.get_mut().write_all(REQUEST).await;
                    let answer = match written {
                        Ok(()) => tokio::time::timeout(WAIT, response(&mut kept)).await,
                        Err(e) => Ok(Err(e)),
                    };
                    match answer {
                        Ok(Ok(Some((200, close, body)))) => {
                            tally.answered(&body);
                            if close {
                                break;
                            }
                        }
                        // Closed by the server before any byte of a response:
                        // send it again on a new connection.
                        Ok(Ok(None)) | Ok(Err(_)) => {
                            tally.resent.fetch_add(1, Ordering::Relaxed);
                            tally.sent.fetch_sub(1, Ordering::Relaxed);
                            break;
                        }
                        other => {
                            tally.fail(format!("a kept-alive request: {other:?}"));
                            break;
                        }
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_all_answered(tally: &Tally) {
    let failures = tally.failures.lock().unwrap();
    assert!(failures.is_empty(), "{} requests failed: {:?}", failures.len(), &failures[..failures.len().min(5)]);
    let (sent, answered) = (tally.sent.load(Ordering::Relaxed), tally.answered.load(Ordering::Relaxed));
    let resent = tally.resent.load(Ordering::Relaxed);
    eprintln!("load: {sent} requests, {answered} answered, {resent} resent after an idle close");
    assert_eq!(sent, answered, "every request is answered ({resent} resent after an idle close)");
    assert!(answered > 100, "the load ran: {answered} requests");
}

/// The transports the binary offers.
const TRANSPORTS: [&str; 3] = ["sockets", "mio", "uring"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_the_port_and_a_stopped_worker_is_replaced_without_a_lost_request() {
    for transport in TRANSPORTS {
        workers_on(transport).await;
    }
}

async fn workers_on(transport: &str) {
    let mut supervisor = kite(&["--urls", "http://127.0.0.1:0", "--workers", "2", "--transport", transport]);
    let port = port_of(&mut supervisor).await;
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let load = tokio::spawn(load(port, 4, Arc::clone(&stop), Arc::clone(&tally)));
    // Both workers answer.
    wait_until("both workers to answer", || tally.pids.lock().unwrap().len() >= 2).await;
    let first: Vec<u64> = tally.pids.lock().unwrap().iter().copied().collect();
    // One worker stops; the supervisor starts another on its sockets.
    signal(first[0] as u32, "TERM");
    wait_until("a third worker to answer", || tally.pids.lock().unwrap().len() >= 3).await;
    assert!(alive(supervisor.id().unwrap()), "the supervisor lives on");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_all_answered(&tally);
    // SIGTERM to the supervisor stops every worker.
    signal(supervisor.id().unwrap(), "TERM");
    let status = tokio::time::timeout(WAIT, supervisor.wait()).await.expect("the supervisor exits").unwrap();
    assert!(status.success(), "{status}");
    let pids: Vec<u64> = tally.pids.lock().unwrap().iter().copied().collect();
    for pid in pids {
        wait_until("the workers to exit", || !alive(pid as u32)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_under_load_loses_no_request_and_the_old_process_drains_and_exits() {
    for transport in TRANSPORTS {
        upgrade_on(transport).await;
    }
}

async fn upgrade_on(transport: &str) {
    let mut old = kite(&["--urls", "http://127.0.0.1:0", "--transport", transport]);
    let old_pid = old.id().unwrap();
    let port = port_of(&mut old).await;
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let load = tokio::spawn(load(port, 4, Arc::clone(&stop), Arc::clone(&tally)));
    wait_until("the first answers", || tally.answered.load(Ordering::Relaxed) > 50).await;
    signal(old_pid, "USR2");
    // The new process answers, and the old one exits once drained.
    wait_until("the new process to answer", || tally.pids.lock().unwrap().len() >= 2).await;
    let status = tokio::time::timeout(WAIT, old.wait()).await.expect("the old process exits").unwrap();
    assert!(status.success(), "{status}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_all_answered(&tally);
    let new_pid = *tally.pids.lock().unwrap().iter().find(|p| **p != u64::from(old_pid)).unwrap() as u32;
    signal(new_pid, "TERM");
    wait_until("the new process to exit", || !alive(new_pid)).await;
}

async fn get_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut reader = BufReader::new(stream);
    response(&mut reader).await.ok().flatten().map(|(status, _, _)| status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readiness_probe_turns_503_when_the_drain_starts() {
    let mut child = kite(&["--urls", "http://127.0.0.1:0", "--health-path", "/healthz", "--drain-delay", "2"]);
    let port = port_of(&mut child).await;
    assert_eq!(get_status(port, "/healthz").await, Some(200), "ready while accepting");
    signal(child.id().unwrap(), "TERM");
    // Within the drain delay: still accepting, and the probe says 503.
    let mut status = None;
    for _ in 0..50 {
        status = get_status(port, "/healthz").await;
        if status == Some(503) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, Some(503), "draining");
    assert_eq!(get_status(port, "/plaintext").await, Some(200), "other requests are still served while draining");
    let exit = tokio::time::timeout(WAIT, child.wait()).await.expect("exits after the drain").unwrap();
    assert!(exit.success());
}

/// Sends `GET /healthz` on a kept-alive connection; the status, or `None`
/// once the server has closed it.
async fn probe_on(reader: &mut BufReader<TcpStream>) -> Option<u16> {
    reader.get_mut().write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.ok()?;
    let answered = tokio::time::timeout(WAIT, response(reader)).await.expect("answered or closed");
    answered.ok().flatten().map(|(status, _, _)| status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_keeps_the_host_healthy_and_hands_over_at_once() {
    // A drain delay long enough to see: a shutdown would keep accepting
    // and answer 503 for 5 s; a hand-over does neither.
    let mut old = kite(&["--urls", "http://127.0.0.1:0", "--health-path", "/healthz", "--drain-delay", "5"]);
    let old_pid = old.id().unwrap();
    let port = port_of(&mut old).await;
    let mut kept = BufReader::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    assert_eq!(probe_on(&mut kept).await, Some(200), "healthy before");
    let started = tokio::time::Instant::now();
    signal(old_pid, "USR2");
    // Whatever the old process still answers says the host is healthy,
    // until it closes the connection.
    let mut answers = Vec::new();
    while let Some(status) = probe_on(&mut kept).await {
        answers.push(status);
        assert_eq!(status, 200, "the old process's probe during the hand-over: {answers:?}");
        assert!(answers.len() < 100_000, "the old process never closed the kept-alive connection");
    }
    // It stopped accepting at once and exited, well inside the drain
    // delay a shutdown would have waited.
    let status = tokio::time::timeout(WAIT, old.wait()).await.expect("the old process exits").unwrap();
    assert!(status.success(), "{status}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "the hand-over took {took:?}, as long as a drain delay");
    // The new process serves, healthy.
    let tally = Tally::default();
    let reader = fresh(port, &tally).await;
    assert!(tally.failures.lock().unwrap().is_empty(), "{:?}", tally.failures.lock().unwrap());
    let new_pid = *tally.pids.lock().unwrap().iter().next().expect("answered") as u32;
    assert_ne!(new_pid, old_pid);
    drop(reader);
    assert_eq!(get_status(port, "/healthz").await, Some(200), "the new process is healthy");
    signal(new_pid, "TERM");
    wait_until("the new process to exit", || !alive(new_pid)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_of_the_workers_replaces_each_and_keeps_the_host_healthy() {
    let args = ["--urls", "http://127.0.0.1:0", "--workers", "2", "--health-path", "/healthz", "--drain-delay", "5"];
    let mut supervisor = kite(&args);
    let port = port_of(&mut supervisor).await;
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let load = tokio::spawn(load(port, 4, Arc::clone(&stop), Arc::clone(&tally)));
    wait_until("both workers to answer", || tally.pids.lock().unwrap().len() >= 2).await;
    let old: Vec<u64> = tally.pids.lock().unwrap().iter().copied().collect();
    let mut kept = BufReader::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    assert_eq!(probe_on(&mut kept).await, Some(200), "healthy before");
    let started = tokio::time::Instant::now();
    signal(supervisor.id().unwrap(), "USR2");
    // The worker that holds the kept-alive connection answers 200 until
    // it closes it: it hands over, it does not stop the host.
    let mut answers = Vec::new();
    while let Some(status) = probe_on(&mut kept).await {
        answers.push(status);
        assert_eq!(status, 200, "an old worker's probe during the upgrade: {answers:?}");
        assert!(answers.len() < 100_000, "the old worker never closed the kept-alive connection");
    }
    // Both old workers exit well inside the drain delay a stop would wait.
    for pid in &old {
        wait_until("the old workers to exit", || !alive(*pid as u32)).await;
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "the upgrade took {took:?}, as long as a drain delay");
    wait_until("two new workers to answer", || tally.pids.lock().unwrap().len() >= 4).await;
    assert!(alive(supervisor.id().unwrap()), "the supervisor lives on");
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_all_answered(&tally);
    assert_eq!(get_status(port, "/healthz").await, Some(200), "the new workers are healthy");
    signal(supervisor.id().unwrap(), "TERM");
    let status = tokio::time::timeout(WAIT, supervisor.wait()).await.expect("the supervisor exits").unwrap();
    assert!(status.success(), "{status}");
}
