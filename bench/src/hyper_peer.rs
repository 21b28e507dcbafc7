//! The peer Kite's benchmark compares against: hyper 1.x with hyper-util on
//! tokio, serving the same `/plaintext` and `/json` routes as the `kite`
//! demo, with the same headers.
//!
//! ```text
//! hyper-peer 127.0.0.1:8080
//! ```
//!
//! Prints `Now listening on: http://ADDR` once bound, like `kite`.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, SERVER};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (content_type, body): (&'static str, &'static [u8]) = match request.uri().path() {
        "/plaintext" => ("text/plain", b"Hello, World!"),
        "/json" => ("application/json", br#"{"message":"Hello, World!"}"#),
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"Not Found\n")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            return Ok(response);
        }
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(SERVER, HeaderValue::from_static("hyper"));
    Ok(response)
}

fn main() {
    let addr: SocketAddr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".into()).parse().expect("address");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        println!("Now listening on: http://{}", listener.local_addr().expect("local address"));
        let _ = std::io::stdout().flush();
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(_) => continue,
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(handle)).await;
            });
        }
    });
}
