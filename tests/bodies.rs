//! Request bodies on every protocol and transport: {HTTP/1.1, HTTP/1.1
//! over TLS, h2c, h2 over TLS} × {the handler reads nothing, reads part,
//! reads all then answers, streams the body back} × {empty, 1 byte, 20 KB,
//! 2 MB, no length}, with hyper's client, curl and nghttp (HTTP/2 only),
//! checking the status and every byte of each response.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kite::ServerOptions;
use rustls::pki_types::CertificateDer;

type RequestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Protocol {
    Http1,
    /// HTTP/1.1 over TLS 1.3.
    Http1Tls,
    H2c,
    H2Tls,
}

/// What the handler does with the request body.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Handler {
    ReadsNothing,
    ReadsPart,
    ReadsAll,
    StreamsBack,
}

const HANDLERS: [Handler; 4] = [Handler::ReadsNothing, Handler::ReadsPart, Handler::ReadsAll, Handler::StreamsBack];

impl Handler {
    fn path(self) -> &'static str {
        match self {
            Handler::ReadsNothing => "/ignore",
            Handler::ReadsPart => "/part",
            Handler::ReadsAll => "/digest",
            Handler::StreamsBack => "/echo",
        }
    }

    /// The response body the test application owes for `sent`.
    fn expected(self, sent: &[u8]) -> Bytes {
        match self {
            Handler::ReadsNothing => Bytes::from_static(b"ignored"),
            Handler::ReadsPart => Bytes::from_static(b"read-part"),
            Handler::ReadsAll => digest(sent).into(),
            Handler::StreamsBack => Bytes::copy_from_slice(sent),
        }
    }
}

/// A request body: its bytes, and whether it is sent without a length
/// (chunked on HTTP/1.1, DATA frames without content-length on HTTP/2).
#[derive(Clone, Debug)]
struct Sent {
    name: &'static str,
    bytes: Bytes,
    unknown_length: bool,
}

/// Pieces of a body sent without a length.
const PIECE: usize = 1000;

fn bodies() -> Vec<Sent> {
    let sized = |name, n| Sent { name, bytes: pattern(n), unknown_length: false };
    vec![
        sized("empty", 0),
        sized("1 byte", 1),
        sized("20 KB", 20_000),
        sized("2 MB", 2_000_000),
        Sent { name: "no length", bytes: pattern(64 * PIECE), unknown_length: true },
    ]
}

impl Sent {
    /// The body for hyper's client. One without a length arrives in
    /// pieces, each after a yield, so the server sees it stream.
    fn body(&self) -> RequestBody {
        if !self.unknown_length {
            return Full::new(self.bytes.clone()).map_err(|e| match e {}).boxed_unsync();
        }
        let pieces: Vec<Bytes> = self.bytes.chunks(PIECE).map(Bytes::copy_from_slice).collect();
        let stream = futures_util::stream::unfold(pieces.into_iter(), |mut pieces| async move {
            tokio::task::yield_now().await;
            pieces.next().map(|piece| (Ok::<_, BoxError>(Frame::data(piece)), pieces))
        });
        StreamBody::new(stream).boxed_unsync()
    }
}

/// A plaintext server (HTTP/1.1 and h2c) and an HTTPS one (h2 by ALPN).
struct Servers {
    plain: TestServer,
    tls: TestServer,
    certificate: CertificateDer<'static>,
}

impl Servers {
    async fn start(transport: &str) -> Self {
        let plain = start(transport, ServerOptions::default()).await;
        let (tls, certificate) = start_https(transport).await;
        Self { plain, tls, certificate }
    }

    async fn stop(self) {
        self.plain.stop().await;
        self.tls.stop().await;
    }
}

/// Sends `sent` to `handler` with hyper's client on a new connection;
/// the status and the whole response body.
async fn hyper_exchange(
    servers: &Servers,
    protocol: Protocol,
    handler: Handler,
    sent: &Sent,
) -> Result<(StatusCode, Bytes), String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    let response = match protocol {
        Protocol::Http1 => {
            let tcp = tokio::net::TcpStream::connect(servers.plain.addr).await.map_err(|e| fail("connect", &e))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.map_err(|e| fail("handshake", &e))?;
            tokio::spawn(connection);
            let request =
                Request::post(handler.path()).header("host", servers.plain.addr.to_string()).body(sent.body()).unwrap();
            sender.send_request(request).await
        }
        Protocol::Http1Tls => {
            let tls = connect_tls(&servers.tls, servers.certificate.clone(), b"http/1.1").await;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| fail("handshake", &e))?;
            tokio::spawn(connection);
            let host = format!("localhost:{}", servers.tls.addr.port());
            sender.send_request(Request::post(handler.path()).header("host", host).body(sent.body()).unwrap()).await
        }
        Protocol::H2c => {
            let tcp = tokio::net::TcpStream::connect(servers.plain.addr).await.map_err(|e| fail("connect", &e))?;
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                    .await
                    .map_err(|e| fail("handshake", &e))?;
            tokio::spawn(connection);
            sender.send_request(Request::post(servers.plain.url(handler.path())).body(sent.body()).unwrap()).await
        }
        Protocol::H2Tls => {
            let tls = connect_tls(&servers.tls, servers.certificate.clone(), b"h2").await;
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await
                    .map_err(|e| fail("handshake", &e))?;
            tokio::spawn(connection);
            let uri = format!("https://localhost:{}{}", servers.tls.addr.port(), handler.path());
            sender.send_request(Request::post(uri).body(sent.body()).unwrap()).await
        }
    };
    let response = response.map_err(|e| fail("response", &e))?;
    let status = response.status();
    let bytes = response.into_body().collect().await.map_err(|e| fail("response body", &e))?.to_bytes();
    Ok((status, bytes))
}

/// Runs every handler and body on `protocol` over every transport with
/// hyper's client.
async fn hyper_matrix(protocol: Protocol) {
    for transport in transports() {
        let servers = Servers::start(transport).await;
        for handler in HANDLERS {
            for sent in bodies() {
                let cell = format!("{transport} {protocol:?} {handler:?} {}", sent.name);
                let outcome = tokio::time::timeout(WAIT, hyper_exchange(&servers, protocol, handler, &sent))
                    .await
                    .unwrap_or_else(|_| panic!("{cell}: no answer in time"));
                let (status, body) = outcome.unwrap_or_else(|e| panic!("{cell}: {e}"));
                assert_eq!(status, StatusCode::OK, "{cell}");
                let expected = handler.expected(&sent.bytes);
                assert!(body == expected, "{cell}: {} bytes back, {} expected", body.len(), expected.len());
            }
        }
        servers.stop().await;
    }
}

#[tokio::test]
async fn http1_bodies_with_hyper() {
    hyper_matrix(Protocol::Http1).await;
}

#[tokio::test]
async fn http1_over_tls_bodies_with_hyper() {
    hyper_matrix(Protocol::Http1Tls).await;
}

#[tokio::test]
async fn h2c_bodies_with_hyper() {
    hyper_matrix(Protocol::H2c).await;
}

#[tokio::test]
async fn h2_over_tls_bodies_with_hyper() {
    hyper_matrix(Protocol::H2Tls).await;
}

/// Writes `sent` to a file of its own for an outside client.
fn body_file(dir: &std::path::Path, sent: &Sent) -> std::path::PathBuf {
    let path = dir.join(sent.name.replace(' ', "-"));
    std::fs::write(&path, &sent.bytes).unwrap();
    path
}

/// A scratch directory for one test's files.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kite-bodies-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs curl with `args`, feeding `stdin`; its stdout (`-w` output last)
/// and whether it succeeded.
async fn run_curl(args: &[String], stdin: Option<&Bytes>) -> (bool, Vec<u8>, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("curl runs");
    let mut input = child.stdin.take().unwrap();
    let feed = stdin.cloned();
    let writer = tokio::spawn(async move {
        if let Some(bytes) = feed {
            // Pieces, so curl cannot know the length in advance.
            for piece in bytes.chunks(PIECE) {
                if input.write_all(piece).await.is_err() {
                    return;
                }
            }
        }
    });
    let out =
        tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await.expect("curl finishes").unwrap();
    let _ = writer.await;
    (out.status.success(), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The matrix with curl, every cell: on HTTP/2 a body the handler leaves
/// unread is drained after the answer instead of reset, so curl 7.88
/// (Debian 12), which reports a reset that comes while it still uploads as
/// a failed transfer (exit 92), completes the upload and exits 0.
#[tokio::test]
async fn every_body_with_curl() {
    if !require_tool("curl") {
        return;
    }
    let dir = scratch("curl");
    for transport in transports() {
        let servers = Servers::start(transport).await;
        for protocol in [Protocol::Http1, Protocol::Http1Tls, Protocol::H2c, Protocol::H2Tls] {
            for handler in HANDLERS {
                for sent in bodies() {
                    let http1 = matches!(protocol, Protocol::Http1 | Protocol::Http1Tls);
                    let cell = format!("curl {transport} {protocol:?} {handler:?} {}", sent.name);
                    let mut args: Vec<String> = match protocol {
                        Protocol::Http1 => vec!["--http1.1".into(), servers.plain.url(handler.path())],
                        Protocol::H2c => vec!["--http2-prior-knowledge".into(), servers.plain.url(handler.path())],
                        Protocol::Http1Tls | Protocol::H2Tls => {
                            let port = servers.tls.addr.port();
                            let version = if http1 { "--http1.1" } else { "--http2" };
                            vec![
                                "-k".into(),
                                version.into(),
                                "--resolve".into(),
                                format!("localhost:{port}:127.0.0.1"),
                                format!("https://localhost:{port}{}", handler.path()),
                            ]
                        }
                    };
                    args.extend(["-o".into(), "-".into(), "-w".into(), "\n%{http_code} %{http_version}".into()]);
                    args.extend(["-H".into(), "content-type: application/octet-stream".into()]);
                    let stdin = if sent.unknown_length {
                        // An upload from a pipe: chunked on HTTP/1.1, no
                        // content-length on HTTP/2.
                        args.extend(["-X".into(), "POST".into(), "-T".into(), "-".into()]);
                        Some(&sent.bytes)
                    } else {
                        args.push("--data-binary".into());
                        args.push(format!("@{}", body_file(&dir, &sent).display()));
                        None
                    };
                    let (ok, out, stderr) = run_curl(&args, stdin).await;
                    assert!(ok, "{cell}: {stderr}");
                    let split = out.iter().rposition(|&b| b == b'\n').expect("curl's -w line");
                    let (body, trailer) = (&out[..split], String::from_utf8_lossy(&out[split + 1..]));
                    let version = if http1 { "1.1" } else { "2" };
                    assert_eq!(trailer, format!("200 {version}"), "{cell}");
                    let expected = handler.expected(&sent.bytes);
                    assert!(body == expected, "{cell}: {} bytes back, {} expected", body.len(), expected.len());
                }
            }
        }
        servers.stop().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// nghttp (nghttp2's client) uploads each sized body to each handler
/// over h2c and TLS, the unread 2 MB included.
#[tokio::test]
async fn every_sized_body_with_nghttp() {
    if !require_tool("nghttp") {
        return;
    }
    let dir = scratch("nghttp");
    for transport in transports() {
        let servers = Servers::start(transport).await;
        for tls in [false, true] {
            for handler in HANDLERS {
                // nghttp sends no body for an empty file: that cell is hyper's and curl's.
                for sent in bodies().into_iter().filter(|s| !s.unknown_length && !s.bytes.is_empty()) {
                    let cell = format!("nghttp {transport} tls={tls} {handler:?} {}", sent.name);
                    let url = if tls {
                        format!("https://127.0.0.1:{}{}", servers.tls.addr.port(), handler.path())
                    } else {
                        servers.plain.url(handler.path())
                    };
                    let run = tokio::process::Command::new("nghttp")
                        .args(["-t", "10", "-d"])
                        .arg(body_file(&dir, &sent))
                        .arg(url)
                        .kill_on_drop(true)
                        .output();
                    let out =
                        tokio::time::timeout(Duration::from_secs(20), run).await.expect("nghttp finishes").unwrap();
                    assert!(out.status.success(), "{cell}: {}", String::from_utf8_lossy(&out.stderr));
                    let expected = handler.expected(&sent.bytes);
                    assert!(
                        out.stdout == expected,
                        "{cell}: {} bytes back, {} expected",
                        out.stdout.len(),
                        expected.len()
                    );
                }
            }
        }
        servers.stop().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}
