//! HTTP/3 over QUIC end to end, with the h3 crate's client over quinn: the
//! same application as HTTP/1.1 and HTTP/2, bodies of every size both
//! ways, trailers, 100 concurrent streams, limits, graceful shutdown,
//! `Alt-Svc` on the TCP side, and the startup errors.

mod common;
#[path = "common/h3.rs"]
mod h3_client;

use bytes::{Buf, Bytes};
use common::{digest, pattern, start_h3, start_with, WAIT};
use h3_client::connect;
use http::{HeaderMap, Request, StatusCode};
use kite::{Protocols, ServerOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_over_http3_names_the_protocol_and_the_handshake() {
    let (server, certificate) = start_h3("sockets", ServerOptions::default()).await;
    let mut client = connect(server.addr, certificate).await;
    let answer = client.get("/plaintext").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, b"Hello, World!");
    assert_eq!(answer.headers.get("server").unwrap(), "kite");
    assert!(answer.headers.contains_key("date"));
    assert!(!answer.headers.contains_key("alt-svc"), "HTTP/3 responses do not advertise HTTP/3");
    let tls = client.get("/tls").await;
    let tls = String::from_utf8(tls.body).unwrap();
    assert!(tls.starts_with("TLSv1.3 "), "{tls}");
    assert!(tls.contains(" localhost h3 "), "SNI and ALPN reach the application: {tls}");
    let remote = String::from_utf8(client.get("/remote").await.body).unwrap();
    assert!(remote.starts_with("127.0.0.1:"), "{remote}");
    client.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_of_every_size_arrive_whole() {
    let (server, certificate) = start_h3("sockets", ServerOptions::default()).await;
    let mut client = connect(server.addr, certificate).await;
    for size in [0, 1, 20_000, 2_000_000] {
        let body = pattern(size);
        for length in [true, false] {
            // Read all, and echo back as it streams.
            let read = client.post("/digest", &body, length).await;
            assert_eq!(read.status, StatusCode::OK);
            assert_eq!(String::from_utf8(read.body).unwrap(), digest(&body), "{size} bytes, length {length}");
            let echoed = client.post("/echo", &body, length).await;
            assert_eq!(echoed.status, StatusCode::OK);
            assert!(echoed.body == body, "the echo of {size} bytes (length {length}) comes back whole");
        }
        // Reads nothing, and reads one frame: the answer still comes.
        assert_eq!(client.post("/ignore", &body, true).await.body, b"ignored");
        assert_eq!(client.post("/part", &body, true).await.body, b"read-part");
    }
    client.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_travel_both_ways() {
    let (server, certificate) = start_h3("sockets", ServerOptions::default()).await;
    let mut client = connect(server.addr, certificate).await;
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", "abc123".parse().unwrap());
    let request = Request::post("https://localhost/echo").body(()).unwrap();
    let answer = client.send(request, b"with trailers", Some(trailers)).await;
    assert_eq!(answer.body, b"with trailers");
    let trailers = answer.trailers.expect("the echo carries the request's trailers");
    assert_eq!(trailers.get("x-checksum").unwrap(), "abc123");
    client.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_streams_on_one_connection() {
    let (server, certificate) = start_h3("sockets", ServerOptions::default()).await;
    let client = connect(server.addr, certificate).await;
    let mut requests = Vec::new();
    for i in 0..100 {
        let mut send = client.send.clone();
        requests.push(tokio::spawn(async move {
            let body = format!("stream {i}");
            let request = Request::post("https://localhost/echo").body(()).unwrap();
            let mut stream = send.send_request(request).await.expect("request head");
            stream.send_data(Bytes::from(body.clone())).await.expect("body");
            stream.finish().await.expect("finish");
            let response = stream.recv_response().await.expect("response");
            assert_eq!(response.status(), StatusCode::OK);
            let mut received = Vec::new();
            while let Some(mut chunk) = stream.recv_data().await.expect("data") {
                received.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
            }
            assert_eq!(received, body.as_bytes());
        }));
    }
    for request in requests {
        tokio::time::timeout(WAIT, request).await.expect("every stream answers in time").unwrap();
    }
    client.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_gets_413_and_the_connection_goes_on() {
    let mut options = ServerOptions::default();
    options.http.limits.max_request_body_size = Some(1_000);
    let (server, certificate) = start_h3("sockets", options).await;
    let mut client = connect(server.addr, certificate).await;
    let declared = client.post("/count", &pattern(5_000), true).await;
    assert_eq!(declared.status, StatusCode::PAYLOAD_TOO_LARGE, "a declared length over the limit");
    let undeclared = client.post("/count", &pattern(5_000), false).await;
    assert_eq!(undeclared.status, StatusCode::PAYLOAD_TOO_LARGE, "a body that grows past the limit");
    let within = client.post("/count", &pattern(500), true).await;
    assert_eq!(within.body, b"500", "the connection serves the next request");
    client.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_the_request_in_flight_with_goaway() {
    let (server, certificate) = start_h3("sockets", ServerOptions::default()).await;
    let mut client = connect(server.addr, certificate).await;
    let mut send = client.send.clone();
    let slow = tokio::spawn(async move {
        let mut stream = send.send_request(Request::get("https://localhost/slow").body(()).unwrap()).await.unwrap();
        stream.finish().await.unwrap();
        let response = stream.recv_response().await.expect("the request in flight is answered");
        let mut body = Vec::new();
        while let Some(mut chunk) = stream.recv_data().await.unwrap() {
            body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
        }
        (response.status(), body)
    });
    tokio::time::timeout(WAIT, server.gate.entered.notified()).await.expect("the request reached the application");
    server.shutdown.shutdown();
    // The server said GOAWAY: the client's connection ends once the
    // request in flight is answered, and not before.
    server.gate.release.notify_one();
    let (status, body) = tokio::time::timeout(WAIT, slow).await.expect("answered in time").unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"finished");
    let closed = tokio::time::timeout(WAIT, &mut client.driver).await.expect("the connection closes").unwrap();
    assert!(closed.is_h3_no_error(), "a clean close: {closed:?}");
    tokio::time::timeout(WAIT, server.done).await.expect("the server stops").unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alt_svc_advertises_http3_on_http1_and_http2_only_where_it_is_served() {
    for transport in common::transports() {
        let (server, certificate) = start_h3(transport, ServerOptions::default()).await;
        let port = server.addr.port();
        let expected = format!("h3=\":{port}\"; ma=86400");
        for alpn in [&b"http/1.1"[..], b"h2"] {
            let tls = common::connect_tls(&server, certificate.clone(), alpn).await;
            let (mut sender, connection) = if alpn == b"h2" {
                let (sender, connection) = hyper::client::conn::http2::handshake(
                    hyper_util::rt::TokioExecutor::new(),
                    hyper_util::rt::TokioIo::new(tls),
                )
                .await
                .unwrap();
                let connection = tokio::spawn(async move {
                    let _ = connection.await;
                });
                (Sender::H2(sender), connection)
            } else {
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.unwrap();
                let connection = tokio::spawn(async move {
                    let _ = connection.await;
                });
                (Sender::H1(sender), connection)
            };
            let response = sender.get("/plaintext").await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                response.headers().get("alt-svc").map(|v| v.to_str().unwrap().to_string()),
                Some(expected.clone()),
                "{transport} {}",
                String::from_utf8_lossy(alpn)
            );
            connection.abort();
        }
        server.stop().await;
        // An endpoint without HTTP/3 does not advertise it.
        let plain = common::start(transport, ServerOptions::default()).await;
        let (response, _) =
            common::roundtrip(plain.addr, b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert_eq!(response.header("alt-svc"), None, "{transport}");
        plain.stop().await;
    }
}

/// A hyper client connection of either version.
enum Sender {
    H1(hyper::client::conn::http1::SendRequest<http_body_util::Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<http_body_util::Empty<Bytes>>),
}

impl Sender {
    async fn get(&mut self, path: &str) -> http::Response<hyper::body::Incoming> {
        let response = match self {
            Sender::H1(sender) => {
                let request = Request::get(path).header("host", "localhost").body(http_body_util::Empty::new());
                sender.send_request(request.unwrap()).await
            }
            Sender::H2(sender) => {
                let request = Request::get(format!("https://localhost{path}")).body(http_body_util::Empty::new());
                sender.send_request(request.unwrap()).await
            }
        };
        response.expect("response")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_or_the_endpoint_can_leave_alt_svc_out() {
    let (certificate, der) = common::self_signed();
    let server = start_with("sockets", ServerOptions::default(), move |builder| {
        builder.listen_with(([127, 0, 0, 1], 0), move |listen| {
            listen
                .protocols(Protocols::Http1AndHttp2AndHttp3)
                .disable_alt_svc_header(true)
                .use_https(kite::tls::TlsOptions::new().certificate(certificate))
        })
    })
    .await;
    let tls = common::connect_tls(&server, der.clone(), b"http/1.1").await;
    let (sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.unwrap();
    let connection = tokio::spawn(connection);
    let response = Sender::H1(sender).get("/plaintext").await;
    assert_eq!(response.headers().get("alt-svc"), None, "disable_alt_svc_header(true)");
    connection.abort();
    // HTTP/3 is still served.
    let mut client = connect(server.addr, der).await;
    assert_eq!(client.get("/plaintext").await.body, b"Hello, World!");
    client.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http3_alone_on_an_http_endpoint_fails_at_startup_naming_it() {
    let error = kite::Server::builder()
        .handle_signals(false)
        .listen_with(([127, 0, 0, 1], 0), |listen| listen.protocols(Protocols::Http3))
        .bind()
        .await
        .expect_err("HTTP/3 without TLS cannot start");
    let message = error.to_string();
    assert!(message.contains("http://127.0.0.1:0"), "names the endpoint: {message}");
    assert!(message.contains("HTTP/3") && message.contains("TLS"), "says why: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http3_only_binds_udp_alone_and_all_three_share_one_port() {
    let (certificate, der) = common::self_signed();
    let server = kite::Server::builder()
        .handle_signals(false)
        .listen_with(([127, 0, 0, 1], 0), move |listen| {
            listen.protocols(Protocols::Http3).use_https(kite::tls::TlsOptions::new().certificate(certificate))
        })
        .bind()
        .await
        .expect("an HTTP/3-only endpoint binds");
    let endpoints = server.endpoints();
    assert_eq!(endpoints.len(), 1, "no TCP listener: {endpoints:?}");
    assert_eq!(endpoints[0].protocols, Protocols::Http3);
    let addr = server.local_endpoints()[0].as_tcp().unwrap();
    assert_ne!(addr.port(), 0, "port 0 is resolved");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "nothing listens on TCP");
    let shutdown = server.shutdown_handle();
    let done = tokio::spawn(server.serve(kite::service_fn(|_req: Request<kite::RequestBody>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(String::from("h3 only")))
    })));
    let mut client = connect(addr, der).await;
    assert_eq!(client.get("/").await.body, b"h3 only");
    client.close().await;
    shutdown.shutdown();
    tokio::time::timeout(WAIT, done).await.expect("stops").unwrap().unwrap();

    // Port 0 on an endpoint with all three: TCP and UDP get the same port.
    let (server, _) = start_h3("sockets", ServerOptions::default()).await;
    let udp = std::net::UdpSocket::bind(server.addr);
    assert!(udp.is_err(), "the UDP port of {} is taken by the QUIC listener", server.addr);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_http3_client_aioquic_is_served() {
    let Some(python) = common::python_with("aioquic") else { return };
    let (server, _) = start_h3("sockets", ServerOptions::default()).await;
    let port = server.addr.port().to_string();
    let get = common::python_client(&python, "h3_client.py", &[&port, "/plaintext"]).await;
    assert_eq!(get["status"], 200, "{get}");
    assert_eq!(get["body"], "Hello, World!", "{get}");
    assert_eq!(get["headers"]["server"], "kite", "{get}");
    for size in ["0", "100000"] {
        let echo = common::python_client(&python, "h3_client.py", &[&port, "/echo", size]).await;
        assert_eq!(echo["status"], 200, "{echo}");
        assert_eq!(echo["body_length"].to_string(), size, "{echo}");
        assert_eq!(echo["body_matches"], true, "{echo}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_are_refused_and_the_connection_goes_on() {
    let (server, certificate) = start_h3("sockets", ServerOptions::default()).await;
    let mut client = connect(server.addr, certificate).await;
    // A field section past Http3Limits::max_request_header_field_size
    // (16,384): refused before the application sees it.
    let request = Request::get("https://localhost/plaintext").header("x-big", "a".repeat(20_000)).body(()).unwrap();
    let refused = match client.send.send_request(request).await {
        Err(e) => format!("{e:?}"),
        Ok(mut stream) => {
            let _ = stream.finish().await;
            match tokio::time::timeout(WAIT, stream.recv_response()).await.expect("an answer in time") {
                Ok(response) => response.status().to_string(),
                Err(e) => format!("{e:?}"),
            }
        }
    };
    assert!(!refused.starts_with("200"), "an oversized head is not served: {refused}");
    // More headers than MaxRequestHeaderCount (100): 431.
    let mut request = Request::get("https://localhost/plaintext");
    for i in 0..101 {
        request = request.header(format!("x-h{i}"), "v");
    }
    let answer = client.send(request.body(()).unwrap(), &[], None).await;
    assert_eq!(answer.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // A request line over MaxRequestLineSize (8 KiB): 414.
    let long = format!("https://localhost/{}", "p".repeat(9_000));
    let answer = client.send(Request::get(long).body(()).unwrap(), &[], None).await;
    assert_eq!(answer.status, StatusCode::URI_TOO_LONG);
    assert_eq!(client.get("/plaintext").await.body, b"Hello, World!", "the connection goes on");
    client.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_file_turns_http3_on_per_endpoint() {
    let dir = std::env::temp_dir().join(format!("kite-h3-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    let json = format!(
        r#"{{ "Kestrel": {{ "Endpoints": {{ "Quic": {{ "Url": "https://127.0.0.1:0", "Protocols": "Http1AndHttp2AndHttp3",
             "Certificate": {{ "Path": "{0}/cert.pem", "KeyPath": "{0}/key.pem" }} }} }} }} }}"#,
        dir.display()
    );
    let config = kite::config::Config::from_json_str(&json, Vec::<(String, String)>::new()).unwrap();
    let server = kite::Server::builder().handle_signals(false).configuration(&config).unwrap().bind().await.unwrap();
    let endpoints = server.endpoints();
    assert_eq!(endpoints.len(), 2, "TCP and QUIC: {endpoints:?}");
    assert_eq!(endpoints[0].protocols, Protocols::Http1AndHttp2AndHttp3);
    assert_eq!(endpoints[1].protocols, Protocols::Http3);
    assert_eq!(endpoints[0].url, endpoints[1].url, "one port for both");
    assert_eq!(server.addresses().len(), 1, "one address: {:?}", server.addresses());
    let addr = server.local_endpoints()[1].as_tcp().unwrap();
    let shutdown = server.shutdown_handle();
    let done = tokio::spawn(server.serve(kite::service_fn(|_req: Request<kite::RequestBody>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(String::from("configured")))
    })));
    let mut client = connect(addr, certified.cert.der().clone()).await;
    assert_eq!(client.get("/").await.body, b"configured");
    client.close().await;
    shutdown.shutdown();
    tokio::time::timeout(WAIT, done).await.expect("stops").unwrap().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}
