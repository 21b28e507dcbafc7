//! The peer Kite's benchmark compares against: hyper 1.x with hyper-util on
//! tokio, serving the same `/plaintext`, `/json` and `POST /echo` (the
//! request body streamed back) routes as the `kite` demo, with the same
//! headers.
//!
//! ```text
//! hyper-peer 127.0.0.1:8080                       # HTTP
//! hyper-peer 127.0.0.1:8443 cert.pem key.pem      # HTTPS on tokio-rustls (aws-lc-rs, its default), h2 by ALPN
//! ```
//!
//! Prints `Now listening on: http://ADDR` once bound, like `kite`.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, SERVER};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A canned body, or the request's body streamed back.
type PeerBody = Either<Full<Bytes>, Incoming>;

async fn handle(request: Request<Incoming>) -> Result<Response<PeerBody>, Infallible> {
    if request.uri().path() == "/echo" && request.method() == Method::POST {
        let content_type = request.headers().get(CONTENT_TYPE).cloned();
        let mut response = Response::new(Either::Right(request.into_body()));
        if let Some(content_type) = content_type {
            response.headers_mut().insert(CONTENT_TYPE, content_type);
        }
        response.headers_mut().insert(SERVER, HeaderValue::from_static("hyper"));
        return Ok(response);
    }
    let (content_type, body): (&'static str, &'static [u8]) = match request.uri().path() {
        "/plaintext" => ("text/plain", b"Hello, World!"),
        "/json" => ("application/json", br#"{"message":"Hello, World!"}"#),
        _ => {
            let mut response = Response::new(Either::Left(Full::new(Bytes::from_static(b"Not Found\n"))));
            *response.status_mut() = StatusCode::NOT_FOUND;
            return Ok(response);
        }
    };
    let mut response = Response::new(Either::Left(Full::new(Bytes::from_static(body))));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(SERVER, HeaderValue::from_static("hyper"));
    Ok(response)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = args.get(1).map_or("127.0.0.1:8080", String::as_str).parse().expect("address");
    let tls = match (args.get(2), args.get(3)) {
        (Some(cert), Some(key)) => {
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(kite_bench::server_config(cert, key))))
        }
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("Now listening on: {scheme}://{}", listener.local_addr().expect("local address"));
        let _ = std::io::stdout().flush();
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(_) => continue,
            };
            let _ = stream.set_nodelay(true);
            let tls = tls.clone();
            tokio::spawn(async move {
                // HTTP/1.1 and HTTP/2, like Kite's default endpoint: by
                // prior knowledge in cleartext, by ALPN over TLS.
                let mut auto = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                auto.http2().timer(hyper_util::rt::TokioTimer::new());
                // Pipelined responses leave in one write, as Kite's do
                // (hyper's TechEmpower entry sets it too).
                auto.http1().pipeline_flush(true);
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                                auto = auto.http2_only();
                            } else {
                                auto = auto.http1_only();
                            }
                            let _ = auto.serve_connection(TokioIo::new(stream), service_fn(handle)).await;
                        }
                    }
                    None => {
                        let _ = auto.serve_connection(TokioIo::new(stream), service_fn(handle)).await;
                    }
                }
            });
        }
    });
}
