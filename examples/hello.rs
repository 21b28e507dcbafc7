//! The smallest Kite server: `Hello, World!` on http://localhost:5000.
//!
//! ```text
//! cargo run --example hello
//! curl http://localhost:5000/
//! ```

use std::convert::Infallible;

use http::{Request, Response};
use kite::{service_fn, RequestBody, Server};

#[tokio::main]
async fn main() -> Result<(), kite::ServerError> {
    let server = Server::builder().urls(["http://localhost:5000"]).bind().await?;
    for address in server.addresses() {
        println!("Now listening on: {address}");
    }
    server
        .serve(service_fn(|_request: Request<RequestBody>| async {
            Ok::<_, Infallible>(Response::new(String::from("Hello, World!\n")))
        }))
        .await
}
