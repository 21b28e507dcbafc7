//! actix-web 4, the third peer: the same `/plaintext`, `/json` and
//! `POST /echo` (the request body sent back) routes as the `kite` demo
//! and the hyper peer, with the same headers; HTTPS on rustls 0.23 with
//! aws-lc-rs, as the others.
//!
//! ```text
//! actix-peer 127.0.0.1:8080                       # HTTP
//! actix-peer 127.0.0.1:8443 cert.pem key.pem      # HTTPS, h2 by ALPN
//! ```
//!
//! Prints `Now listening on: http://ADDR` once bound, like `kite`. actix
//! starts one worker per CPU it may run on (one, when pinned).

use std::io::Write;
use std::net::SocketAddr;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

async fn plaintext() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").insert_header(("server", "actix")).body("Hello, World!")
}

async fn json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("server", "actix"))
        .body(r#"{"message":"Hello, World!"}"#)
}

/// The body comes back whole once read: answering with the request's
/// payload as a stream makes actix close the connection after each echo
/// (it decides keep-alive before the payload is consumed), which would
/// measure connection setup instead of the echo.
async fn echo(request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if let Some(content_type) = request.headers().get("content-type") {
        response.insert_header(("content-type", content_type.clone()));
    }
    response.insert_header(("server", "actix")).body(body)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = args.get(1).map_or("127.0.0.1:8080", String::as_str).parse().expect("address");
    let tls = match (args.get(2), args.get(3)) {
        (Some(cert), Some(key)) => Some(kite_bench::server_config(cert, key)),
        _ => None,
    };
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(|| {
            App::new()
                .route("/plaintext", web::get().to(plaintext))
                .route("/json", web::get().to(json))
                .route("/echo", web::post().to(echo))
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = match tls {
            Some(config) => server.bind_rustls_0_23(addr, config)?,
            None => server.bind(addr)?,
        };
        println!("Now listening on: {scheme}://{}", server.addrs()[0]);
        let _ = std::io::stdout().flush();
        server.run().await
    })
}
