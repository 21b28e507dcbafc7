//! The fleet's client: in the client namespace, 16 HTTP/1.1 tasks through
//! HAProxy's HTTP frontend (half keep-alive, half a new connection per
//! request) and 4 HTTP/2-over-TLS connections through its TCP frontend,
//! each counting every request.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the client saw, shared with the test while the load runs.
#[derive(Default)]
pub struct Tally {
    pub sent: AtomicU64,
    pub answered: AtomicU64,
    /// Requests sent again because a reused connection closed before any
    /// answer (what HTTP clients do for idempotent requests), or an
    /// HTTP/2 stream the server refused with GOAWAY.
    pub resent: AtomicU64,
    pub failures: Mutex<Vec<String>>,
    /// Each host (its address, from `/info`'s `local`) and the processes
    /// that answered on it.
    pub hosts: Mutex<BTreeMap<String, BTreeSet<u64>>>,
    /// The client addresses the hosts saw on the TLS path (PROXY v2).
    pub tls_remotes: Mutex<BTreeSet<String>>,
    pub h2_answered: AtomicU64,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }

    fn answered(&self, body: &[u8], tls: bool) -> bool {
        let Ok(info) = serde_json::from_slice::<serde_json::Value>(body) else {
            self.fail(format!("not /info's JSON: {}", String::from_utf8_lossy(body)));
            return false;
        };
        self.answered.fetch_add(1, Ordering::Relaxed);
        let host = info["local"].as_str().unwrap_or_default().rsplit_once(':').map(|(h, _)| h.to_string());
        if let (Some(host), Some(pid)) = (host, info["pid"].as_u64()) {
            self.hosts.lock().unwrap().entry(host).or_default().insert(pid);
        }
        if tls {
            self.h2_answered.fetch_add(1, Ordering::Relaxed);
            if let Some(remote) = info["remote"].as_str().and_then(|r| r.rsplit_once(':')) {
                self.tls_remotes.lock().unwrap().insert(remote.0.to_string());
            }
        }
        true
    }

    /// The processes that answered on `host` so far.
    pub fn pids_on(&self, host: &str) -> BTreeSet<u64> {
        self.hosts.lock().unwrap().get(host).cloned().unwrap_or_default()
    }

    /// A one-line summary.
    pub fn summary(&self) -> String {
        format!(
            "{} sent, {} answered ({} over HTTP/2), {} resent, {} failed",
            self.sent.load(Ordering::Relaxed),
            self.answered.load(Ordering::Relaxed),
            self.h2_answered.load(Ordering::Relaxed),
            self.resent.load(Ordering::Relaxed),
            self.failures.lock().unwrap().len()
        )
    }
}

/// Runs the load from a thread of its own in the namespace at `netns`
/// until `stop`.
pub fn spawn(
    netns: String,
    http: SocketAddr,
    tls: SocketAddr,
    roots: rustls::RootCertStore,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        super::net::enter(&netns);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let config =
                rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
            let mut config = config;
            config.alpn_protocols = vec![b"h2".to_vec()];
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let mut tasks = Vec::new();
            for i in 0..16 {
                let (stop, tally) = (Arc::clone(&stop), Arc::clone(&tally));
                tasks.push(tokio::spawn(http1(http, i % 2 == 0, stop, tally)));
            }
            for _ in 0..4 {
                let (stop, tally, connector) = (Arc::clone(&stop), Arc::clone(&tally), connector.clone());
                tasks.push(tokio::spawn(http2(tls, connector, stop, tally)));
            }
            for task in tasks {
                task.await.unwrap();
            }
        });
    })
}

const REQUEST: &[u8] = b"GET /info HTTP/1.1\r\nHost: kite.test\r\n\r\n";

/// HTTP/1.1 through HAProxy: on one kept-alive connection, or a new
/// connection per request.
async fn http1(addr: SocketAddr, keep_alive: bool, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut kept: Option<BufReader<TcpStream>> = None;
    while !stop.load(Ordering::Relaxed) {
        tally.sent.fetch_add(1, Ordering::Relaxed);
        let reused = kept.is_some();
        let mut connection = match kept.take() {
            Some(connection) => connection,
            None => match TcpStream::connect(addr).await {
                Ok(stream) => BufReader::new(stream),
                Err(e) => {
                    tally.fail(format!("HTTP/1.1 connect: {e}"));
                    continue;
                }
            },
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange(&mut connection)).await {
            Ok(Ok(Some((200, close, body)))) => {
                if tally.answered(&body, false) && keep_alive && !close {
                    kept = Some(connection);
                }
            }
            Ok(Ok(Some((status, _, body)))) => {
                tally.fail(format!("HTTP/1.1 status {status}: {}", String::from_utf8_lossy(&body)));
            }
            Ok(Ok(None)) if reused => {
                // Closed while idle: the request is sent again, once.
                tally.resent.fetch_add(1, Ordering::Relaxed);
                tally.sent.fetch_sub(1, Ordering::Relaxed);
            }
            Ok(Ok(None)) => tally.fail("HTTP/1.1: closed without an answer".into()),
            Ok(Err(e)) => tally.fail(format!("HTTP/1.1: {e}")),
            Err(_) => tally.fail(format!("HTTP/1.1: no answer within {REQUEST_TIMEOUT:?}")),
        }
    }
}

/// Sends one request and reads its response: status, `Connection: close`
/// and body; `None` when the connection closed before the first byte.
async fn exchange(connection: &mut BufReader<TcpStream>) -> std::io::Result<Option<(u16, bool, Vec<u8>)>> {
    connection.get_mut().write_all(REQUEST).await?;
    let mut line = String::new();
    if connection.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (mut length, mut close) = (0usize, false);
    loop {
        line.clear();
        connection.read_line(&mut line).await?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((header, ""));
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().unwrap_or(0);
        }
        if name.eq_ignore_ascii_case("connection") && value.trim().eq_ignore_ascii_case("close") {
            close = true;
        }
    }
    let mut body = vec![0; length];
    connection.read_exact(&mut body).await?;
    Ok(Some((status, close, body)))
}

/// HTTP/2 over TLS, end to end through HAProxy's TCP frontend: one
/// connection, requests one after another; a new connection when the
/// server ends it (GOAWAY).
async fn http2(addr: SocketAddr, connector: tokio_rustls::TlsConnector, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut sender: Option<h2::client::SendRequest<Bytes>> = None;
    while !stop.load(Ordering::Relaxed) {
        let send = match sender.take() {
            Some(send) => send,
            None => match connect_h2(addr, &connector).await {
                Ok(send) => send,
                Err(e) => {
                    tally.sent.fetch_add(1, Ordering::Relaxed);
                    tally.fail(format!("HTTP/2 connect: {e}"));
                    continue;
                }
            },
        };
        // A connection the server is closing refuses new streams at once:
        // that is not a request lost, only a new connection to make.
        let Ok(ready) = tokio::time::timeout(REQUEST_TIMEOUT, send.ready()).await else {
            tally.sent.fetch_add(1, Ordering::Relaxed);
            tally.fail("HTTP/2: the connection never became ready".into());
            continue;
        };
        let Ok(mut send) = ready else { continue };
        tally.sent.fetch_add(1, Ordering::Relaxed);
        let request = http::Request::get("https://kite.test/info").body(()).unwrap();
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let (response, _) = send.send_request(request, true)?;
            let response = response.await?;
            let status = response.status().as_u16();
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk?;
                let _ = body.flow_control().release_capacity(chunk.len());
                bytes.extend_from_slice(&chunk);
            }
            Ok::<_, h2::Error>((status, bytes))
        })
        .await;
        match outcome {
            Ok(Ok((200, body))) => {
                if tally.answered(&body, true) {
                    sender = Some(send);
                }
            }
            Ok(Ok((status, _))) => tally.fail(format!("HTTP/2 status {status}")),
            Ok(Err(e)) if e.is_go_away() || e.reason() == Some(h2::Reason::REFUSED_STREAM) => {
                // Refused unprocessed (RFC 9113 §8.7): safe to send again.
                tally.resent.fetch_add(1, Ordering::Relaxed);
                tally.sent.fetch_sub(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => tally.fail(format!("HTTP/2: {e}")),
            Err(_) => tally.fail(format!("HTTP/2: no answer within {REQUEST_TIMEOUT:?}")),
        }
    }
}

async fn connect_h2(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
) -> Result<h2::client::SendRequest<Bytes>, Box<dyn std::error::Error + Send + Sync>> {
    let tcp = TcpStream::connect(addr).await?;
    let tls = connector.connect("kite.test".try_into()?, tcp).await?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("the server did not choose h2".into());
    }
    let (send, connection) = h2::client::handshake(tls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(send)
}
