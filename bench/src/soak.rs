//! The soak: good clients and every kind of bad client against one `kite`
//! process for a bounded time. The good clients must see no error, and the
//! server's RSS must end within 10% of where it stood after a warm-up under
//! the same mix.
//!
//! ```text
//! soak KITE_BINARY [SECONDS]      # bench/soak.sh builds and runs it; 60 s by default
//! ```
//!
//! Bad clients: slowloris (a header byte a second), slow uploads (10
//! bytes/s), slow readers (a large response never read), 10,000 headers, a
//! 1 MB header line, odd Transfer-Encodings, garbage, and clients that
//! leave mid-request. Good clients: keep-alive GETs and POST echoes.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Seconds of the whole mix before the baseline is taken: longer than one
/// RequestHeadersTimeout (30 s), the longest-lived bad client, so that
/// every kind has come and gone once and the buffer pools have filled.
const WARM_UP: u64 = 40;

#[derive(Default)]
struct Tally {
    good: AtomicU64,
    good_errors: AtomicU64,
    bad: AtomicU64,
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Reads one response with a `content-length`; `None` on any deviation.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(u16, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status = head.get(9..12)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let mut chunk = [0u8; 8192];
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + length].to_vec();
            buf.drain(..end + 4 + length);
            return Some((status, body));
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Keep-alive GETs and POST echoes, checked byte for byte.
async fn good_client(addr: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = TcpStream::connect(&addr).await else {
            tally.good_errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let mut buf = Vec::new();
        for i in 0..200u32 {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let payload = format!("echo {i} {}", "x".repeat((i as usize * 37) % 2000));
            let request = if i % 2 == 0 {
                "GET /plaintext HTTP/1.1\r\nHost: soak\r\n\r\n".to_string()
            } else {
                format!("POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: {}\r\n\r\n{payload}", payload.len())
            };
            let expected = if i % 2 == 0 { b"Hello, World!".to_vec() } else { payload.into_bytes() };
            let ok = stream.write_all(request.as_bytes()).await.is_ok()
                && read_response(&mut stream, &mut buf).await.is_some_and(|(s, b)| s == 200 && b == expected);
            if !ok {
                tally.good_errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
            tally.good.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends `bytes` a slice at a time every `every`, until the server closes.
async fn trickle(addr: &str, head: &[u8], body: &[u8], chunk: usize, every: Duration, stop: &AtomicBool) {
    let Ok(mut stream) = TcpStream::connect(addr).await else { return };
    if stream.write_all(head).await.is_err() {
        return;
    }
    let mut tick = tokio::time::interval(every);
    for piece in body.chunks(chunk) {
        tick.tick().await;
        if stop.load(Ordering::Relaxed) || stream.write_all(piece).await.is_err() {
            return;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), stream.peek(&mut probe)).await {
            return;
        }
    }
}

async fn bad_clients(kind: usize, addr: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    while !stop.load(Ordering::Relaxed) {
        match kind {
            // Slowloris: a header byte a second.
            0 => {
                let head = b"GET /plaintext HTTP/1.1\r\nHost: soak\r\nX-Slow: ".to_vec();
                trickle(&addr, &head, &[b'a'; 120], 1, Duration::from_secs(1), &stop).await;
            }
            // A slow upload: 10 bytes a second.
            1 => {
                let head = b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\n".to_vec();
                trickle(&addr, &head, &[b'u'; 100_000], 10, Duration::from_secs(1), &stop).await;
            }
            // A slow reader: a large response, never read, dropped after 10 s.
            2 => {
                if let Ok(mut stream) = TcpStream::connect(&addr).await {
                    let _ = stream.write_all(b"GET /bytes/100000000 HTTP/1.1\r\nHost: soak\r\n\r\n").await;
                    let mut waited = 0;
                    while waited < 10 && !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        waited += 1;
                    }
                }
            }
            // Floods, odd framing, garbage, and leaving mid-request.
            _ => {
                let many: String = (0..10_000).map(|i| format!("X-{i}: v\r\n")).collect();
                let requests: [Vec<u8>; 6] = [
                    format!("GET / HTTP/1.1\r\nHost: soak\r\n{many}\r\n").into_bytes(),
                    format!("GET / HTTP/1.1\r\nHost: soak\r\nX-Long: {}\r\n\r\n", "v".repeat(1 << 20)).into_bytes(),
                    b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n".to_vec(),
                    b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc"
                        .to_vec(),
                    b"\x16\x03\x01\x02\x00garbage\r\n\r\n".to_vec(),
                    b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 1000\r\n\r\nhalf".to_vec(),
                ];
                for request in requests {
                    if let Ok(mut stream) = TcpStream::connect(&addr).await {
                        let _ = stream.write_all(&request).await;
                        let mut sink = [0u8; 4096];
                        let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut sink)).await;
                    }
                    tally.bad.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        tally.bad.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let kite = args.next().expect("usage: soak KITE_BINARY [SECONDS]");
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(60);

    let mut child = tokio::process::Command::new(&kite)
        .args(["--urls", "http://127.0.0.1:0", "--log", "error"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kite starts");
    let pid = child.id().expect("pid");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().expect("kite prints its address");
    let addr = line.trim().strip_prefix("Now listening on: http://").expect("an address line").to_string();

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        tasks.push(tokio::spawn(good_client(addr.clone(), Arc::clone(&stop), Arc::clone(&tally))));
    }
    let idle = rss_kib(pid);
    let counts = [20, 10, 5, 4];
    for (kind, count) in counts.iter().enumerate() {
        for _ in 0..*count {
            tasks.push(tokio::spawn(bad_clients(kind, addr.clone(), Arc::clone(&stop), Arc::clone(&tally))));
        }
    }
    // A warm-up under the whole mix fills the buffer pools and the
    // allocator's caches; the baseline is taken after it, so that what
    // is compared is growth under a steady load: a leak.
    tokio::time::sleep(Duration::from_secs(WARM_UP)).await;
    let rss_start = rss_kib(pid);
    let started = Instant::now();
    let mut peak = rss_start;
    let mut second = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = rss_kib(pid);
        peak = peak.max(rss);
        second += 1;
        if second % 10 == 0 {
            println!("  {second:>4} s: RSS {rss} KiB, {} good requests", tally.good.load(Ordering::Relaxed));
        }
    }
    let rss_end = rss_kib(pid);
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
    }
    // The good clients run alone again briefly, as at the baseline.
    let settle = Arc::new(AtomicBool::new(false));
    let after = tokio::spawn(good_client(addr.clone(), Arc::clone(&settle), Arc::clone(&tally)));
    tokio::time::sleep(Duration::from_secs(3)).await;
    settle.store(true, Ordering::Relaxed);
    let _ = after.await;
    let rss_after = rss_kib(pid);
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;

    let good = tally.good.load(Ordering::Relaxed);
    let errors = tally.good_errors.load(Ordering::Relaxed);
    let bad = tally.bad.load(Ordering::Relaxed);
    let change = (rss_end as f64 - rss_start as f64) / rss_start as f64 * 100.0;
    println!("soak: {WARM_UP} s warm-up, then {seconds} s; 8 good clients, 39 bad clients");
    println!("good requests: {good}, good-client errors: {errors}, bad-client attempts: {bad}");
    println!("server RSS: idle {idle} KiB; after warm-up {rss_start} KiB, peak {peak} KiB, end {rss_end} KiB ({change:+.1}%)");
    println!("server RSS once the bad clients left: {rss_after} KiB");
    let ok = errors == 0 && good > 0 && change.abs() <= 10.0;
    println!("soak: {}", if ok { "PASS" } else { "FAIL" });
    std::process::exit(if ok { 0 } else { 1 });
}
