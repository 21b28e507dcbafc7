//! The Autobahn WebSocket conformance cases, run by `kosoku` (PyPI)
//! against the `kite` binary's `/ws` echo: all 517 (the 301 of RFC 6455
//! and the 216 of permessage-deflate, 12.* and 13.*) on the sockets
//! transport, and a sample of every group on the loop transports (mio,
//! io_uring), which share the WebSocket code above the stream: the whole
//! suite three times would take eight minutes of the suite's budget.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

#[path = "../../../tests/common/tools.rs"]
mod tools;

/// `kosoku`: beside the tests' Python (`tools::python`, where the README's
/// test command installs it), else on PATH. A missing one fails the test, as `tools::missing` says.
fn kosoku() -> Option<PathBuf> {
    let candidate = PathBuf::from(tools::python())
        .parent()
        .map(|bin| bin.join("kosoku"))
        .filter(|kosoku| kosoku.is_file())
        .unwrap_or_else(|| PathBuf::from("kosoku"));
    if std::process::Command::new(&candidate).arg("--help").output().is_ok_and(|o| o.status.success()) {
        return Some(candidate);
    }
    tools::missing(&format!("{} is not installed; {}", candidate.display(), tools::INSTALLS));
    None
}

/// How many cases the sample holds.
const SAMPLED: usize = 283;

#[tokio::test]
async fn autobahn_cases_pass_against_the_ws_echo() {
    let Some(kosoku) = kosoku() else { return };
    // The sample: every group but the performance-limit cases (9.*), and
    // the first of each permessage-deflate group's configurations.
    let sample: &[&str] = &["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*", "12.1.*", "13.1.*"];
    for (transport, include, expected) in
        [("sockets", &[][..], 517), ("mio", sample, SAMPLED), ("uring", sample, SAMPLED)]
    {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kite"))
            .args(["--urls", "http://127.0.0.1:0", "--log", "warn", "--transport", transport])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kite starts");
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), tokio::io::BufReader::new(stdout).read_line(&mut line))
            .await
            .expect("kite prints its address")
            .unwrap();
        let addr = line.trim().strip_prefix("Now listening on: http://").expect("the address line").to_string();

        let reports = std::env::temp_dir().join(format!("kite-autobahn-{transport}-{}", std::process::id()));
        let run = tokio::process::Command::new(&kosoku)
            .arg(format!("ws://{addr}/ws"))
            .args(include.iter().flat_map(|case| ["-i", case]))
            .args(["-p", "4", "-o"])
            .arg(&reports)
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(900), run).await.expect("the suite finishes").unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(reports.join("index.json")).expect("kosoku wrote index.json"))
                .unwrap();
        let cases = index.as_object().and_then(|agents| agents.values().next()).and_then(|c| c.as_object()).unwrap();
        assert_eq!(cases.len(), expected, "{transport}: the cases that ran");
        let deflate = cases.keys().filter(|case| case.starts_with("12.") || case.starts_with("13.")).count();
        // Autobahn's passing grades: OK, NON-STRICT and INFORMATIONAL.
        let passing = ["OK", "NON-STRICT", "INFORMATIONAL"];
        let failed: Vec<String> = cases
            .iter()
            .filter(|(_, result)| {
                !passing.contains(&result["behavior"].as_str().unwrap_or_default())
                    || !passing.contains(&result["behaviorClose"].as_str().unwrap_or_default())
            })
            .map(|(case, result)| format!("{case}: {result}"))
            .collect();
        assert!(failed.is_empty(), "{transport}: {} Autobahn cases failed:\n{}", failed.len(), failed.join("\n"));
        eprintln!("{transport}: {} Autobahn cases passed, {deflate} of them permessage-deflate", cases.len());
        let _ = std::fs::remove_dir_all(&reports);
        child.kill().await.unwrap();
    }
}
