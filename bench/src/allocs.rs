//! Counts the heap allocations a server makes per request: Kite and hyper
//! (1.x with hyper-util, as in `hyper-peer`) in this process, under a
//! counting global allocator, each serving the same application to a
//! blocking client on a plain `std` socket that allocates nothing per
//! request.
//!
//! ```text
//! allocs [REQUESTS]          # 20,000 by default, after 2,000 to warm up
//! ```
//!
//! For each workload it prints the allocations and bytes per request over
//! the whole process for each server, the application's own allocations
//! (counted by running it outside any server), and what each server adds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, SERVER};
use http::{HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use kite::{service_fn, RequestBody, Server};

/// Allocations and bytes allocated so far (reallocations count as one).
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

struct Counting;

// SAFETY: every call is passed to the system allocator unchanged; the
// counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn snapshot() -> (u64, u64) {
    (ALLOCATIONS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed))
}

/// The application: the `kite` demo's `/plaintext` (a static body, two
/// headers) and `/echo` (the request body collected, then sent back), for
/// any request body.
async fn app<B: http_body::Body<Data = Bytes>>(request: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() == Method::POST {
        let body = request.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        return Ok(Response::new(Full::new(body)));
    }
    let mut response = Response::new(Full::new(Bytes::from_static(b"Hello, World!")));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response.headers_mut().insert(SERVER, HeaderValue::from_static("kite"));
    Ok(response)
}

/// hyper 1.x serving `app`, HTTP/1.1 and h2c as `hyper-peer` does.
async fn hyper_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let auto = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = auto.serve_connection(io, hyper::service::service_fn(app::<hyper::body::Incoming>)).await;
            });
        }
    });
    addr
}

/// Sends `request` `count` times on one keep-alive connection, reading
/// each response (whose length is known) whole.
fn drive(stream: &mut TcpStream, request: &[u8], response_len: usize, count: usize) {
    let mut buf = [0u8; 16 * 1024];
    for _ in 0..count {
        stream.write_all(request).expect("write");
        let mut got = 0;
        while got < response_len {
            let n = stream.read(&mut buf[got..]).expect("read");
            assert!(n > 0, "the server closed the connection");
            got += n;
        }
    }
}

/// The length of one response to `request`, read after the first one.
fn response_len(stream: &mut TcpStream, request: &[u8]) -> usize {
    stream.write_all(request).expect("write");
    let mut buf = vec![0u8; 16 * 1024];
    let mut got = 0;
    loop {
        let n = stream.read(&mut buf[got..]).expect("read");
        assert!(n > 0, "the server closed the connection before a whole response");
        got += n;
        let text = String::from_utf8_lossy(&buf[..got]);
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse().unwrap())
                })
                .expect("a content-length");
            if got >= end + 4 + length {
                return end + 4 + length;
            }
        }
    }
}

fn per_request(before: (u64, u64), after: (u64, u64), count: usize) -> (f64, f64) {
    ((after.0 - before.0) as f64 / count as f64, (after.1 - before.1) as f64 / count as f64)
}

fn main() {
    let count: usize = std::env::args().nth(1).map_or(20_000, |n| n.parse().expect("a request count"));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let kite: SocketAddr = runtime.block_on(async {
        let server = Server::builder().urls(["http://127.0.0.1:0"]).bind().await.expect("bind");
        let addr = match &server.local_endpoints()[0] {
            kite::transport::Endpoint::Tcp(addr) => *addr,
            other => panic!("a TCP endpoint, not {other}"),
        };
        tokio::spawn(server.serve(service_fn(app::<RequestBody>)));
        addr
    });
    let hyper = runtime.block_on(hyper_server());

    let body = vec![b'k'; 4096];
    let get = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec();
    let mut post =
        format!("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    post.extend_from_slice(&body);

    println!(
        "{:<26} {:>6} {:>11} {:>10} {:>10} {:>13}",
        "workload", "server", "allocs/req", "bytes/req", "app allocs", "server allocs"
    );
    for (name, request, method, path) in [
        ("GET /plaintext, HTTP/1.1", &get, Method::GET, "/plaintext"),
        ("POST /echo 4 KB, HTTP/1.1", &post, Method::POST, "/echo"),
    ] {
        // The application alone, on requests made beforehand, each with a
        // body already in hand (as a server hands it a body reader).
        let app_allocs = runtime.block_on(async {
            let payload = if method == Method::POST { Bytes::from(body.clone()) } else { Bytes::new() };
            let requests: Vec<_> = (0..1_000)
                .map(|_| {
                    let mut request = Request::new(RequestBody::from(payload.clone()));
                    *request.method_mut() = method.clone();
                    *request.uri_mut() = http::Uri::from_static(path);
                    request
                })
                .collect();
            let before = snapshot();
            for request in requests {
                let response = app(request).await.unwrap();
                drop(response.into_body().collect().await);
            }
            per_request(before, snapshot(), 1_000).0
        });
        for (server, addr) in [("kite", kite), ("hyper", hyper)] {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let len = response_len(&mut stream, request);
            drive(&mut stream, request, len, 2_000);
            let before = snapshot();
            drive(&mut stream, request, len, count);
            let (allocs, bytes) = per_request(before, snapshot(), count);
            println!(
                "{name:<26} {server:>6} {allocs:>11.2} {bytes:>10.0} {app_allocs:>10.2} {:>13.2}",
                allocs - app_allocs
            );
        }
    }
}
