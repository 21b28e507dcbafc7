//! The HTTP core served over a loop transport (mio, io_uring), on the
//! loops' own threads (the `ConnectionExecutor` feature), with pipelined,
//! sized, chunked and large bodies from many connections at once: one
//! exercise, included by each transport's `http_over_*` test.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use kite_http_core::{serve_connection, HttpOptions, RequestBody};
use kite_transport_core::{ConnectionExecutor, Endpoint, Transport};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const CONNECTIONS: usize = 16;
const LARGE: usize = 300_000;

/// Answers every request with its own body.
#[derive(Clone)]
struct Echo;

impl tower_service::Service<http::Request<RequestBody>> for Echo {
    type Response = http::Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        Box::pin(async move {
            let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            Ok(http::Response::new(Full::new(body)))
        })
    }
}

/// Reads one response with a `content-length` and returns its body.
async fn read_response(reader: &mut (impl AsyncBufRead + Unpin)) -> Vec<u8> {
    let mut length = None;
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).await.unwrap() > 0, "the connection closed inside a head");
        if line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = Some(value.trim().parse::<usize>().unwrap());
        }
    }
    let mut body = vec![0; length.expect("every echo has a content-length")];
    reader.read_exact(&mut body).await.unwrap();
    body
}

/// Serves `CONNECTIONS` clients over `transport`, each sending four
/// pipelined requests in one write, and checks every echoed byte.
pub async fn pipelined_and_large_bodies_echo(transport: &dyn Transport) {
    let mut listener = transport.bind(&Endpoint::Tcp("127.0.0.1:0".parse().unwrap())).await.unwrap();
    let addr = listener.local_endpoint().as_tcp().unwrap();
    let options = HttpOptions::default();
    let server = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..CONNECTIONS {
            let connection = listener.accept().await.unwrap();
            let executor = connection.context().features().get::<ConnectionExecutor>().cloned();
            let executor = executor.expect("a loop transport names the loop of each connection");
            let options = options.clone();
            tasks.push(executor.spawn(Box::pin(async move {
                let _ = serve_connection(connection, Echo, &options).await;
            })));
        }
        tasks
    });

    let mut clients = Vec::new();
    for i in 0..CONNECTIONS {
        clients.push(tokio::spawn(async move {
            let large: Vec<u8> = (0..LARGE).map(|n| (n * 7 + i) as u8).collect();
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            // Four requests in one write: no body, one byte, a large sized
            // body, and a chunked body in two chunks.
            let mut requests = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
            requests.extend_from_slice(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz");
            requests
                .extend_from_slice(format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {LARGE}\r\n\r\n").as_bytes());
            requests.extend_from_slice(&large);
            requests.extend_from_slice(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n");
            requests.extend_from_slice(b"Connection: close\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
            let (read, mut write) = stream.split();
            let writing = async { write.write_all(&requests).await.unwrap() };
            let mut reader = BufReader::new(read);
            let reading = async {
                let mut bodies = Vec::new();
                for _ in 0..4 {
                    bodies.push(read_response(&mut reader).await);
                }
                let mut rest = Vec::new();
                reader.read_to_end(&mut rest).await.unwrap();
                assert!(rest.is_empty(), "nothing follows the last response");
                bodies
            };
            let ((), bodies) = tokio::join!(writing, reading);
            assert_eq!(bodies[0], b"");
            assert_eq!(bodies[1], b"z");
            assert!(bodies[2] == large, "the large body comes back byte for byte");
            assert_eq!(bodies[3], b"abcdefg");
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    drop(server.await.unwrap());
}
