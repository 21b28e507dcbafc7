//! An HTTP/3 client on the h3 crate over quinn, for the tests: connects
//! trusting one certificate, sends requests with bodies and trailers, and
//! reads whole answers. Shared by the facade's tests and the binary's.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{HeaderMap, Request, StatusCode};

/// An upper bound on any one wait.
const WAIT: Duration = Duration::from_secs(10);

/// An HTTP/3 client connection: its request sender and the task that
/// drives it.
pub struct H3Client {
    pub send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    pub driver: tokio::task::JoinHandle<h3::error::ConnectionError>,
    pub endpoint: quinn::Endpoint,
}

pub async fn connect(addr: SocketAddr, certificate: rustls::pki_types::CertificateDer<'static>) -> H3Client {
    connect_named(addr, certificate, "localhost").await
}

/// [`connect`] asking for `name` (SNI) and verifying the certificate for it.
pub async fn connect_named(
    addr: SocketAddr,
    certificate: rustls::pki_types::CertificateDer<'static>,
    name: &str,
) -> H3Client {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate).unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let connection = tokio::time::timeout(WAIT, endpoint.connect(addr, name).unwrap())
        .await
        .expect("QUIC handshake in time")
        .expect("QUIC handshake");
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(connection)).await.expect("h3 client");
    let driver = tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
    H3Client { send, driver, endpoint }
}

/// What came back for one request.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<HeaderMap>,
}

impl H3Client {
    /// Sends `request` with `body` (in 64 KB DATA frames) and `trailers`,
    /// and reads the whole answer.
    pub async fn send(&mut self, request: Request<()>, body: &[u8], trailers: Option<HeaderMap>) -> Answer {
        let mut stream = self.send.send_request(request).await.expect("request head sent");
        // A server that answers without the rest of the body may ask the
        // client to stop sending with H3_NO_ERROR (RFC 9114 §4.1.2); the
        // response still comes.
        let sent = async {
            for chunk in body.chunks(64 * 1024) {
                stream.send_data(Bytes::copy_from_slice(chunk)).await?;
            }
            if let Some(trailers) = trailers {
                stream.send_trailers(trailers).await?;
            }
            stream.finish().await
        };
        if let Err(e) = sent.await {
            let stopped = matches!(&e, h3::error::StreamError::RemoteTerminate { code, .. } if *code == h3::error::Code::H3_NO_ERROR);
            assert!(stopped || e.is_h3_no_error(), "sending the request failed: {e:?}");
        }
        let response = tokio::time::timeout(WAIT, stream.recv_response()).await.expect("response in time");
        let response = response.expect("response head");
        let mut received = Vec::new();
        while let Some(mut chunk) = stream.recv_data().await.expect("response body") {
            while chunk.has_remaining() {
                let piece = chunk.chunk();
                received.extend_from_slice(piece);
                let n = piece.len();
                chunk.advance(n);
            }
        }
        let trailers = stream.recv_trailers().await.expect("response trailers");
        Answer { status: response.status(), headers: response.headers().clone(), body: received, trailers }
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        self.send(Request::get(format!("https://localhost{path}")).body(()).unwrap(), &[], None).await
    }

    pub async fn post(&mut self, path: &str, body: &[u8], length: bool) -> Answer {
        let mut request = Request::post(format!("https://localhost{path}"));
        if length {
            request = request.header("content-length", body.len());
        }
        self.send(request.body(()).unwrap(), body, None).await
    }

    pub async fn close(self) {
        drop(self.send);
        self.endpoint.close(0u32.into(), b"done");
        self.driver.abort();
    }
}
