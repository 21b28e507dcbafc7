//! HTTP/2 request bodies frame by frame, from hand-made frames of Python's
//! h2 packages (`tests/clients/h2_frames.py`), each case's frames in one
//! write, over h2c and TLS: the DATA cases of an HTTP/2 conformance run are answered whether
//! the handler reads the body or not, and a client that breaks the stream
//! rules gets the error code RFC 9113 names.

mod common;

use common::*;
use kite::ServerOptions;
use serde_json::{json, Value};

/// RST_STREAM and GOAWAY codes (RFC 9113 §7).
const NO_ERROR: u64 = 0x0;
const PROTOCOL_ERROR: u64 = 0x1;
const FLOW_CONTROL_ERROR: u64 = 0x3;
const STREAM_CLOSED: u64 = 0x5;

/// A plaintext server (h2c) and an HTTPS one (h2 by ALPN) on `transport`.
async fn servers(transport: &str) -> [(TestServer, bool); 2] {
    let plain = start(transport, ServerOptions::default()).await;
    let (tls, _) = start_https(transport).await;
    [(plain, false), (tls, true)]
}

/// Runs `case` against `server`, over TLS if `tls`.
async fn frames(python: &str, case: &str, server: &TestServer, tls: bool, path: &str) -> Value {
    let port = server.addr.port().to_string();
    let mut args = vec![case, &port, path];
    if tls {
        args.push("tls");
    }
    python_client(python, "h2_frames.py", &args).await
}

#[tokio::test]
async fn the_data_cases_of_a_conformance_run_are_answered() {
    let Some(python) = python_with("h2") else { return };
    // The script reports bodies as latin-1 text.
    let sent_2_14: String = pattern(16384).iter().map(|&b| char::from(b)).collect();
    let cases = [
        ("data_frame", "test".to_string()),
        ("multiple_data_frames", "testtest".to_string()),
        ("padded_data_frame", "test".to_string()),
        ("post_request", "test".to_string()),
        ("post_with_trailers", "test".to_string()),
        ("max_frame_size_data", sent_2_14),
    ];
    for transport in transports() {
        for (server, tls) in servers(transport).await {
            for (case, echoed) in &cases {
                // `/ignore` answers without reading, as a conformance run's
                // target often does; `/echo` streams the body back.
                for (path, body) in [("/ignore", "ignored"), ("/echo", echoed.as_str())] {
                    let seen = frames(&python, case, &server, tls, path).await;
                    let cell = format!("{transport} tls={tls} {case} {path}");
                    assert_eq!(seen["status"], "200", "{cell}: {seen}");
                    assert_eq!(seen["ended"], true, "{cell}: {seen}");
                    assert!(seen["body"] == body, "{cell}: body of {} bytes", seen["body_len"]);
                    assert_eq!(seen["goaway"], Value::Null, "{cell}: {seen}");
                    // Only NO_ERROR may follow a complete response.
                    let resets = &seen["resets"];
                    assert!(*resets == json!([]) || *resets == json!([[1, NO_ERROR]]), "{cell}: {seen}");
                }
            }
            // The trailers come back with the echo.
            let seen = frames(&python, "post_with_trailers", &server, tls, "/echo").await;
            assert_eq!(seen["trailers"], json!({"x-sum": "4"}), "{transport} tls={tls}: {seen}");
            server.stop().await;
        }
    }
}

#[tokio::test]
async fn stream_rule_violations_get_the_rfc_error_codes() {
    let Some(python) = python_with("h2") else { return };
    let cases = [
        ("data_after_rst_stream", STREAM_CLOSED),
        ("second_headers_without_end_stream", PROTOCOL_ERROR),
        ("content_length_mismatch", PROTOCOL_ERROR),
        ("stream_window_overflow", FLOW_CONTROL_ERROR),
        // RFC 9113 §8.1: a pseudo-header in a trailer section is malformed.
        ("pseudo_header_in_trailers", PROTOCOL_ERROR),
    ];
    for transport in transports() {
        for (server, tls) in servers(transport).await {
            for (case, code) in cases {
                for path in ["/ignore", "/echo"] {
                    let seen = frames(&python, case, &server, tls, path).await;
                    let cell = format!("{transport} tls={tls} {case} {path}");
                    // A stream error: RST_STREAM with the code, the connection lives.
                    assert_eq!(seen["resets"], json!([[1, code]]), "{cell}: {seen}");
                    assert_eq!(seen["goaway"], Value::Null, "{cell}: {seen}");
                    assert_eq!(seen["closed"], false, "{cell}: {seen}");
                }
            }
            server.stop().await;
        }
    }
}

/// How many times each answer-first case runs, each on a fresh connection:
/// the answer must not depend on how the frames are timed.
const REPEAT: usize = 20;

/// Runs `case` `times` times against `server` in one client process.
async fn repeated(python: &str, case: &str, server: &TestServer, tls: bool, path: &str, times: usize) -> Vec<Value> {
    let port = server.addr.port().to_string();
    let repeat = format!("repeat={times}");
    let mut args = vec![case, &port, path, &repeat];
    if tls {
        args.push("tls");
    }
    let seen = python_client(python, "h2_frames.py", &args).await;
    let runs = seen.as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), times, "{case}: {seen}");
    runs
}

/// An application that answers before the body has come (`/ignore`), or
/// while it echoes it (`/echo`), leaves the stream open: the client's
/// protocol errors that follow the answer get the RFC 9113 code every
/// time, not only when they happen to arrive before a reset.
#[tokio::test]
async fn rule_violations_after_the_answer_get_the_rfc_codes_every_time() {
    let Some(python) = python_with("h2") else { return };
    let cases = [
        ("early_data_after_rst_stream", STREAM_CLOSED),
        ("early_second_headers_without_end_stream", PROTOCOL_ERROR),
        ("early_pseudo_header_in_trailers", PROTOCOL_ERROR),
        ("early_content_length_mismatch", PROTOCOL_ERROR),
        ("early_stream_window_overflow", FLOW_CONTROL_ERROR),
    ];
    for transport in transports() {
        for (server, tls) in servers(transport).await {
            for (case, code) in cases {
                for path in ["/ignore", "/echo"] {
                    for (run, seen) in repeated(&python, case, &server, tls, path, REPEAT).await.iter().enumerate() {
                        let cell = format!("{transport} tls={tls} {case} {path} run {run}");
                        assert_eq!(seen["status"], "200", "{cell}: {seen}");
                        assert_eq!(seen["resets"], json!([[1, code]]), "{cell}: {seen}");
                        assert_eq!(seen["goaway"], Value::Null, "{cell}: {seen}");
                        assert_eq!(seen["closed"], false, "{cell}: {seen}");
                    }
                }
            }
            server.stop().await;
        }
    }
}

/// The rest of a body that comes after the answer is drained: no reset
/// follows the response, so the client sees its upload complete.
#[tokio::test]
async fn a_body_that_follows_the_answer_is_drained_without_a_reset() {
    let Some(python) = python_with("h2") else { return };
    for transport in transports() {
        for (server, tls) in servers(transport).await {
            for seen in repeated(&python, "early_body_after_the_answer", &server, tls, "/ignore", 5).await {
                let cell = format!("{transport} tls={tls}");
                assert_eq!(seen["status"], "200", "{cell}: {seen}");
                assert_eq!(seen["body"], "ignored", "{cell}: {seen}");
                assert_eq!(seen["resets"], json!([]), "{cell}: {seen}");
                assert_eq!(seen["goaway"], Value::Null, "{cell}: {seen}");
            }
            server.stop().await;
        }
    }
}

/// The preface's first line with a wrong end, on a cleartext port that
/// takes h2c and on an h2 TLS port: GOAWAY(PROTOCOL_ERROR), then close
/// (RFC 9113 §3.4), never an HTTP/1.1 answer.
#[tokio::test]
async fn a_broken_preface_gets_goaway_protocol_error() {
    let Some(python) = python_with("h2") else { return };
    for transport in transports() {
        for (server, tls) in servers(transport).await {
            for seen in repeated(&python, "broken_preface", &server, tls, "/", REPEAT).await {
                let cell = format!("{transport} tls={tls}");
                assert_eq!(seen["goaway"], PROTOCOL_ERROR, "{cell}: {seen}");
                assert_eq!(seen["status"], Value::Null, "{cell}: {seen}");
            }
            server.stop().await;
        }
    }
}
