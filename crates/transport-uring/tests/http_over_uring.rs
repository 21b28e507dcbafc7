//! The HTTP core served over the io_uring transport, on the loops' own
//! threads, with pipelined, sized, chunked and large bodies from many
//! connections at once, and a small buffer ring (64 buffers) so receives
//! run out of buffers and resume. CI also runs this under
//! AddressSanitizer: it drives the io_uring stream's received buffers and
//! send queues and the HTTP/1.1 buffers together.

#[path = "../../../tests/common/transport_echo.rs"]
mod transport_echo;

use kite_transport_uring::{UringOptions, UringTransport};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_and_large_bodies_echo_over_io_uring() {
    let transport = UringTransport::new(UringOptions::default().threads(2).buffers(64, 4096)).unwrap();
    transport_echo::pipelined_and_large_bodies_echo(&transport).await;
}
