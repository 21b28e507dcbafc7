//! HTTP/2 clients that break the rules, from Python's `h2` package and
//! hand-made frames (`tests/clients/h2_misbehaving.py`): the server must
//! refuse, reset or close, and never hang.

mod common;

use std::time::Duration;

use common::*;
use kite::ServerOptions;
use serde_json::Value;

/// ENHANCE_YOUR_CALM, the code of a GOAWAY for abuse.
const ENHANCE_YOUR_CALM: u64 = 0xb;

/// Runs one case of the misbehaving client against `port`.
async fn misbehave(python: &str, case: &str, port: u16) -> Value {
    python_client(python, "h2_misbehaving.py", &[case, &port.to_string()]).await
}

#[tokio::test]
async fn the_101st_concurrent_stream_is_refused_and_the_others_go_on() {
    let Some(python) = python_with("h2") else { return };
    for transport in transports() {
        let server = start(transport, ServerOptions::default()).await;
        let seen = misbehave(&python, "streams_over_the_limit", server.addr.port()).await;
        // Stream 201 is the 101st; REFUSED_STREAM is 0x7.
        assert_eq!(seen["refused"], serde_json::json!({"201": 7}), "{transport}: {seen}");
        assert_eq!(seen["first_status"], "200", "{transport}: {seen}");
        assert_eq!(seen["first_body"], "4", "{transport}: {seen}");
        server.stop().await;
    }
}

#[tokio::test]
async fn rapid_reset_is_cut_off_with_goaway() {
    let Some(python) = python_with("h2") else { return };
    let server = start("sockets", ServerOptions::default()).await;
    let seen = misbehave(&python, "rapid_reset", server.addr.port()).await;
    assert_eq!(seen["goaway"], ENHANCE_YOUR_CALM, "{seen}");
    assert!(seen["answered"].as_u64().unwrap() < 100, "at most a few streams were served: {seen}");
    server.stop().await;
}

#[tokio::test]
async fn a_continuation_flood_is_cut_off() {
    let Some(python) = python_with("h2") else { return };
    let server = start("sockets", ServerOptions::default()).await;
    let seen = misbehave(&python, "continuation_flood", server.addr.port()).await;
    assert_eq!(seen["goaway"], ENHANCE_YOUR_CALM, "{seen}");
    assert!(seen["closed_after"].is_number(), "the server closed the connection: {seen}");
    assert!(seen["sent_frames"].as_u64().unwrap() < 2000, "the flood was stopped before its end: {seen}");
    server.stop().await;
}

#[tokio::test]
async fn an_hpack_bomb_is_stopped_by_the_header_limits() {
    let Some(python) = python_with("h2") else { return };
    let server = start("sockets", ServerOptions::default()).await;
    let seen = misbehave(&python, "hpack_bomb", server.addr.port()).await;
    assert!(seen["wire_bytes"].as_u64().unwrap() < 8_000, "a small request on the wire: {seen}");
    assert_ne!(seen["status"], "200", "{seen}");
    let refused = seen["status"] == "431" || seen["goaway"] == ENHANCE_YOUR_CALM;
    assert!(refused, "refused with 431 or GOAWAY(ENHANCE_YOUR_CALM): {seen}");
    server.stop().await;
}

#[tokio::test]
async fn a_peer_that_never_answers_ping_is_closed() {
    let Some(python) = python_with("h2") else { return };
    for transport in transports() {
        let mut options = ServerOptions::default();
        options.http.http2.keep_alive_ping_delay = Some(Duration::from_millis(200));
        options.http.http2.keep_alive_ping_timeout = Duration::from_millis(300);
        let server = start(transport, options).await;
        let seen = misbehave(&python, "silent_peer", server.addr.port()).await;
        let pinged = seen["first_ping_after"].as_f64().expect("the server sent a PING");
        let closed = seen["closed_after"].as_f64().expect("the server closed the connection");
        assert!(closed > pinged, "{transport}: closed after the PING went unanswered: {seen}");
        server.stop().await;
    }
}
