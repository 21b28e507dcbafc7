//! HTTP/3 where RFC 9114 and RFC 9204 are strict, from frames an outside
//! client (aioquic, `tests/clients/h3_frames.py`) writes by hand, each
//! case on fresh connections, repeated so that the answer is shown not to
//! depend on timing: malformed requests are a stream error, a client's
//! push stream and QPACK encoder instructions past the advertised table
//! close the connection with their codes, a client's GOAWAY gets one
//! back, and what is not an error goes on. None of it is logged as a
//! server error: each is a debug event under `kite::bad_requests` or
//! `kite::http3`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use kite::ServerOptions;
use serde_json::{json, Value};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Events at ERROR, and debug events under the HTTP/3 targets, in this
/// test binary (whose tests all expect no ERROR).
static ERRORS: AtomicUsize = AtomicUsize::new(0);
static HTTP3_EVENTS: AtomicUsize = AtomicUsize::new(0);

struct CountEvents;

impl<S: tracing::Subscriber> Layer<S> for CountEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() == tracing::Level::ERROR {
            eprintln!("ERROR event under {}: {event:?}", meta.target());
            ERRORS.fetch_add(1, Ordering::Relaxed);
        }
        if matches!(meta.target(), "kite::http3" | "kite::bad_requests") {
            HTTP3_EVENTS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Counts the server's events from here on.
fn count_events() {
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("kite", tracing::Level::DEBUG)
        .with_target("kite_http_core", tracing::Level::DEBUG)
        .with_default(tracing::Level::ERROR);
    let _ = tracing_subscriber::registry().with(CountEvents.with_filter(filter)).try_init();
}

/// No event at ERROR so far, and some under the HTTP/3 targets.
fn assert_logged_at_debug() {
    assert_eq!(ERRORS.load(Ordering::Relaxed), 0, "a client's mistake is not a server error");
    assert!(HTTP3_EVENTS.load(Ordering::Relaxed) > 0, "each refusal has an event under an HTTP/3 target");
}

/// HTTP/3 and QPACK error codes (RFC 9114 §8.1, RFC 9204 §6).
const H3_NO_ERROR: u64 = 0x100;
const H3_STREAM_CREATION_ERROR: u64 = 0x103;
const H3_MESSAGE_ERROR: u64 = 0x10e;
const QPACK_ENCODER_STREAM_ERROR: u64 = 0x201;

/// How many fresh connections each case runs on.
const REPEAT: &str = "repeat=5";

/// Runs `case` against `server` on fresh connections; one report each.
async fn runs(python: &str, server: &TestServer, case: &str) -> Vec<Value> {
    let port = server.addr.port().to_string();
    let reports = python_client(python, "h3_frames.py", &[case, &port, REPEAT]).await;
    reports.as_array().expect("a list of reports").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_a_stream_error_and_the_connection_goes_on() {
    let Some(python) = python_with("aioquic") else { return };
    count_events();
    let (server, _) = start_h3("sockets", ServerOptions::default()).await;
    // RFC 9114 §4.2: connection-specific fields, a te other than
    // "trailers"; §4.1.2: a content-length the DATA contradicts, whether
    // the application echoes the body or reads it whole first.
    for case in [
        "connection_header",
        "keep_alive_header",
        "transfer_encoding_header",
        "te_gzip",
        "content_length_short",
        "content_length_long",
        "content_length_short_digest",
    ] {
        for seen in runs(&python, &server, case).await {
            assert_eq!(seen["resets"], json!([H3_MESSAGE_ERROR]), "{case}: {seen}");
            assert_eq!(seen["ended"], false, "{case}: not a complete response: {seen}");
            assert_eq!(seen["closed"], Value::Null, "{case}: a stream error, not a connection error: {seen}");
            assert_eq!(seen["after"], "200", "{case}: the connection goes on: {seen}");
        }
    }
    // What the rules allow is served.
    for (case, body) in [("te_trailers", "Hello, World!"), ("content_length_exact", "xxxxx")] {
        for seen in runs(&python, &server, case).await {
            assert_eq!(seen["status"], "200", "{case}: {seen}");
            assert_eq!(seen["body"], body, "{case}: {seen}");
            assert_eq!(seen["resets"], json!([]), "{case}: {seen}");
        }
    }
    server.stop().await;
    assert_logged_at_debug();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_streams_and_qpack_instructions_close_the_connection_with_their_codes() {
    let Some(python) = python_with("aioquic") else { return };
    count_events();
    let (server, _) = start_h3("sockets", ServerOptions::default()).await;
    for (case, code) in [
        // RFC 9114 §6.2.2: only a server pushes.
        ("push_stream", H3_STREAM_CREATION_ERROR),
        // RFC 9204 §4.3.1: a capacity above the maximum advertised (0).
        ("encoder_capacity_over_max", QPACK_ENCODER_STREAM_ERROR),
        // RFC 9204 §3.2.2: an entry larger than the capacity (0).
        ("encoder_insert_at_zero", QPACK_ENCODER_STREAM_ERROR),
    ] {
        for seen in runs(&python, &server, case).await {
            assert_eq!(seen["closed"], code, "{case}: {seen}");
            assert_eq!(seen["after"], Value::Null, "{case}: {seen}");
        }
    }
    // A capacity of 0 and a stream of a reserved type are no error.
    for case in ["encoder_capacity_zero", "reserved_stream"] {
        for seen in runs(&python, &server, case).await {
            assert_eq!(seen["closed"], Value::Null, "{case}: {seen}");
            assert_eq!(seen["after"], "200", "{case}: {seen}");
        }
    }
    server.stop().await;
    assert_logged_at_debug();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_sending_says_h3_no_error_and_a_client_goaway_gets_one_back() {
    let Some(python) = python_with("aioquic") else { return };
    count_events();
    let (server, _) = start_h3("sockets", ServerOptions::default()).await;
    // A head past the field-section limit is answered 431 and the body
    // still to come is stopped with H3_NO_ERROR, not the transport's 0.
    for seen in runs(&python, &server, "big_head").await {
        assert_eq!(seen["status"], "431", "{seen}");
        assert_eq!(seen["stops"], json!([H3_NO_ERROR]), "{seen}");
        assert_eq!(seen["after"], "200", "{seen}");
    }
    // The client's GOAWAY: the server sends its own, then closes cleanly.
    for seen in runs(&python, &server, "client_goaway").await {
        assert_eq!(seen["status"], "200", "{seen}");
        assert_eq!(seen["goaway"], true, "{seen}");
        assert_eq!(seen["closed"], H3_NO_ERROR, "{seen}");
    }
    server.stop().await;
    assert_logged_at_debug();
}
