//! Binding: Unix sockets, localhost on both loopbacks, taken ports.

mod common;

use std::convert::Infallible;
use std::io::ErrorKind;

use common::{builder_on, transports, WAIT};
use http::{Request, Response};
use kite::{service_fn, RequestBody, Server, ServerError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn hello() -> impl tower_service::Service<
    Request<RequestBody>,
    Response = Response<String>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response<String>, Infallible>> + Send,
> + Clone
       + Send
       + Sync
       + 'static {
    service_fn(|req: Request<RequestBody>| async move {
        let info = req.extensions().get::<kite::ConnectionInfo>().unwrap();
        Ok(Response::new(format!("{} via {}", info.local(), info.transport())))
    })
}

#[tokio::test]
async fn unix_socket_serves_and_is_removed_at_shutdown() {
    for transport in transports() {
        unix_socket_on(transport).await;
    }
}

async fn unix_socket_on(transport: &str) {
    let dir = std::env::temp_dir().join(format!("kite-e2e-{}-{transport}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kite.sock");
    let url = format!("http://unix:{}", path.display());
    let server = builder_on(transport).urls([url.as_str()]).handle_signals(false).bind().await.unwrap();
    assert_eq!(server.addresses(), vec![url.clone()]);
    let shutdown = server.shutdown_handle();
    let done = tokio::spawn(server.serve(hello()));

    let mut stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response)).await.unwrap().unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with(&format!("unix:{} via {transport}", path.display())), "{response}");

    shutdown.shutdown();
    tokio::time::timeout(WAIT, done).await.unwrap().unwrap().unwrap();
    assert!(!path.exists(), "socket file removed at shutdown");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn localhost_binds_both_loopbacks_on_one_port() {
    for transport in transports() {
        localhost_on(transport).await;
    }
}

async fn localhost_on(transport: &str) {
    let server = builder_on(transport).urls(["http://localhost:0"]).handle_signals(false).bind().await.unwrap();
    let addresses = server.addresses();
    let ipv6 = addresses.len() == 2;
    if !ipv6 {
        eprintln!("note: IPv6 loopback absent; localhost bound 127.0.0.1 only");
    }
    let port = server.local_endpoints()[0].as_tcp().unwrap().port();
    assert_eq!(addresses[0], format!("http://127.0.0.1:{port}"));
    if ipv6 {
        assert_eq!(addresses[1], format!("http://[::1]:{port}"));
    }

    // Either port taken fails the whole bind, naming the address.
    let err = builder_on(transport).urls([format!("http://localhost:{port}")]).bind().await.unwrap_err();
    match &err {
        ServerError::Bind { address, source } => {
            assert_eq!(source.kind(), ErrorKind::AddrInUse);
            assert_eq!(address, &format!("http://127.0.0.1:{port}"));
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().starts_with("Failed to bind to address http://127.0.0.1:"), "{err}");

    let shutdown = server.shutdown_handle();
    let done = tokio::spawn(server.serve(hello()));
    for addr in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")].iter().take(if ipv6 { 2 } else { 1 }) {
        let mut stream = tokio::net::TcpStream::connect(addr.as_str()).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.contains(&format!("{addr} via {transport}")), "{response}");
    }
    shutdown.shutdown();
    tokio::time::timeout(WAIT, done).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn a_failed_bind_leaves_nothing_bound() {
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = blocker.local_addr().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let result = Server::builder().listen(free).listen(taken).bind().await;
    assert!(matches!(result, Err(ServerError::Bind { .. })));
    // The first endpoint was released with the failure.
    std::net::TcpListener::bind(free).expect("first endpoint was not left bound");
}

#[tokio::test]
async fn code_endpoints_override_urls() {
    let server = Server::builder()
        .urls(["http://127.0.0.1:1"])
        .listen(([127, 0, 0, 1], 0))
        .handle_signals(false)
        .bind()
        .await
        .unwrap();
    let addresses = server.addresses();
    assert_eq!(addresses.len(), 1);
    assert!(!addresses[0].ends_with(":1"), "{addresses:?}");
}

/// A service that is `Send` but not `Sync` (it holds a `Cell`), like
/// tower's `BoxCloneService`: each connection gets its own clone.
#[derive(Clone)]
struct CountingService(std::cell::Cell<u32>);

impl tower_service::Service<Request<RequestBody>> for CountingService {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<RequestBody>) -> Self::Future {
        self.0.set(self.0.get() + 1);
        std::future::ready(Ok(Response::new(format!("request {} on this connection", self.0.get()))))
    }
}

#[tokio::test]
async fn a_service_that_is_not_sync_is_served() {
    let server = Server::builder().listen(([127, 0, 0, 1], 0)).handle_signals(false).bind().await.unwrap();
    let addr = server.local_endpoints()[0].as_tcp().unwrap();
    let shutdown = server.shutdown_handle();
    let done = tokio::spawn(server.serve(CountingService(std::cell::Cell::new(0))));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response)).await.unwrap().unwrap();
    assert!(response.contains("request 1 on this connection"), "{response}");
    assert!(response.ends_with("request 2 on this connection"), "{response}");
    shutdown.shutdown();
    tokio::time::timeout(WAIT, done).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn an_inherited_socket_is_served_tcp_or_unix() {
    use std::os::fd::OwnedFd;
    for transport in transports() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        let dir = std::env::temp_dir().join(format!("kite-fd-{transport}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("inherited.sock");
        let unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = builder_on(transport)
            .listen_fd(OwnedFd::from(tcp))
            .listen_fd(OwnedFd::from(unix))
            .handle_signals(false)
            .bind()
            .await
            .expect("the inherited sockets are adopted");
        assert_eq!(server.addresses(), [format!("http://{addr}"), format!("http://unix:{}", path.display())]);
        let shutdown = server.shutdown_handle();
        let done = tokio::spawn(server.serve(service_fn(|_req: Request<RequestBody>| async {
            Ok::<_, Infallible>(Response::new(String::from("inherited")))
        })));
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(WAIT, stream.read_to_string(&mut answer)).await.unwrap().unwrap();
        assert!(answer.ends_with("inherited"), "{transport}: {answer}");
        let mut stream = tokio::net::UnixStream::connect(&path).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(WAIT, stream.read_to_string(&mut answer)).await.unwrap().unwrap();
        assert!(answer.ends_with("inherited"), "{transport}: {answer}");
        shutdown.shutdown();
        tokio::time::timeout(WAIT, done).await.unwrap().unwrap().unwrap();
        assert!(path.exists(), "{transport}: an inherited socket's file belongs to its creator");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
