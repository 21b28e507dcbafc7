//! The HTTP core served over the mio transport, on the loops' own threads,
//! with pipelined, sized, chunked and large bodies from many connections
//! at once. CI also runs this under AddressSanitizer: it drives the mio
//! stream's read and write paths and the HTTP/1.1 buffers together.

#[path = "../../../tests/common/transport_echo.rs"]
mod transport_echo;

use kite_transport_mio::{MioOptions, MioTransport};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_and_large_bodies_echo_over_mio() {
    let transport = MioTransport::new(MioOptions::default().threads(2)).unwrap();
    transport_echo::pipelined_and_large_bodies_echo(&transport).await;
}
