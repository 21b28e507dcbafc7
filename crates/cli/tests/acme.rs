//! `kite --acme`: the binary gets its certificate from pebble (Let's
//! Encrypt's test ACME server) and serves `https://kite.test:PORT/` with
//! it; curl verifies it against pebble's issuing root, and `/info` shows
//! the certificate's expiry.

#[path = "../../../tests/common/tools.rs"]
mod tools;

#[path = "../../../tests/common/pebble.rs"]
mod pebble;

use std::process::Stdio;
use std::time::Duration;

use pebble::{Pebble, DOMAIN};
use tokio::io::AsyncBufReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kite_acme_serves_a_certificate_from_pebble() {
    if !tools_present() {
        return;
    }
    let port = pebble::free_port();
    let pebble = Pebble::start(pebble::free_port(), port, Duration::from_secs(3600)).await;
    let cache = pebble.dir.join("kite-acme-cache");
    let (mut kite, first) = spawn_kite(|kite| {
        kite.kill_on_drop(true)
            .args(["--urls", &format!("https://127.0.0.1:{port}"), "--acme", DOMAIN])
            .args(["--acme-directory", &pebble.directory()])
            .arg("--acme-root")
            .arg(&pebble.api_root)
            .arg("--acme-cache")
            .arg(&cache);
    })
    .await;
    // It listens at once, before the certificate exists.
    assert_eq!(first, format!("Now listening on: https://127.0.0.1:{port}"));

    let root_pem = pebble.dir.join("issuing-root.pem");
    std::fs::write(&root_pem, pebble.issuing_root_pem().await).unwrap();
    let curl = |path: &str| curl(&root_pem, port, path);
    // The certificate is ordered in the background: poll until it serves.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let home = loop {
        let out = curl("/").output().await.unwrap();
        if out.status.success() {
            break out;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no certificate in time: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(String::from_utf8_lossy(&home.stdout).contains("Kite"), "the demo's home page");
    let info = curl("/info").output().await.unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("/info is JSON");
    assert_eq!(info["acme"]["domains"][0], DOMAIN);
    assert!(info["acme"]["not_after"].as_u64().is_some(), "{info}");
    assert_eq!(info["acme"]["issued"], 1);
    kite.kill().await.unwrap();
    let _ = kite.wait().await;

    // The configuration file's `Certificate: { Acme }`, on the same cache:
    // the cached certificate serves from the first request, with no order.
    let config = pebble.dir.join("kite.json");
    let acme = serde_json::json!({
        "Domains": [DOMAIN],
        "Directory": pebble.directory(),
        "Root": pebble.api_root,
        "CacheDir": cache,
    });
    let endpoints =
        serde_json::json!({ "Https": { "Url": format!("https://127.0.0.1:{port}"), "Certificate": { "Acme": acme } } });
    std::fs::write(&config, serde_json::json!({ "Kestrel": { "Endpoints": endpoints } }).to_string()).unwrap();
    let (mut again, first) = spawn_kite(|kite| {
        kite.kill_on_drop(true).arg("--config").arg(&config);
    })
    .await;
    assert!(first.starts_with("Now listening on: https://"), "{first}");
    let out = curl("/plaintext").output().await.unwrap();
    assert!(out.status.success(), "the cached certificate at once: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"Hello, World!");
    again.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_order_once_and_all_answer_the_challenge_and_serve_the_certificate() {
    if !tools_present() {
        return;
    }
    let port = pebble::free_port();
    let pebble = Pebble::start(pebble::free_port(), port, Duration::from_secs(3600)).await;
    let cache = pebble.dir.join("kite-acme-cache");
    let (mut kite, first) = spawn_kite(|kite| {
        kite.args(["--workers", "3", "--shutdown-timeout", "2"])
            .args(["--urls", &format!("https://127.0.0.1:{port}"), "--acme", DOMAIN])
            .args(["--acme-directory", &pebble.directory(), "--acme-challenge", "tls-alpn-01"])
            .arg("--acme-root")
            .arg(&pebble.api_root)
            .arg("--acme-cache")
            .arg(&cache);
    })
    .await;
    // SIGTERM to the supervisor, even if the test fails: it stops its
    // workers (SIGKILL would leave them holding this test's pipes).
    let _stop = Terminate(kite.id().unwrap());
    assert!(first.starts_with("Now listening on: https://"), "{first}");
    let root_pem = pebble.dir.join("issuing-root.pem");
    std::fs::write(&root_pem, pebble.issuing_root_pem().await).unwrap();
    let get = || curl(&root_pem, port, "/info");
    // pebble's one validation reaches whichever worker the kernel picks:
    // each answers the challenge from the shared cache.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !get().output().await.unwrap().status.success() {
        assert!(tokio::time::Instant::now() < deadline, "no certificate in time:\n{}", pebble.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every worker serves it, and pebble issued one certificate.
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let out = get().output().await.unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        pids.insert(info["pid"].as_u64().unwrap());
    }
    assert!(pids.len() >= 2, "several workers answered: {pids:?}");
    let issued = pebble.log().matches("Issued certificate serial").count();
    assert_eq!(issued, 1, "one order for the host's workers:\n{}", pebble.log());
    drop(_stop);
    let status = tokio::time::timeout(Duration::from_secs(10), kite.wait()).await.expect("the supervisor stops");
    assert!(status.unwrap().success());
}

/// An https endpoint with an ACME certificate, added to the configuration
/// file of a running `kite`, gets its certificate by HTTP-01 on the plain
/// endpoint that was there before: the reloaded endpoint's challenges are
/// answered as a startup endpoint's are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acme_endpoint_added_by_a_reload_is_answered_over_http_01() {
    if !tools_present() {
        return;
    }
    let (http, https) = (pebble::free_port(), pebble::free_port());
    let pebble = Pebble::start(http, https, Duration::from_secs(3600)).await;
    let config = pebble.dir.join("reloaded.json");
    let write = |endpoints: serde_json::Value| {
        std::fs::write(&config, serde_json::json!({ "Kestrel": { "Endpoints": endpoints } }).to_string()).unwrap()
    };
    let plain = serde_json::json!({ "Url": format!("http://127.0.0.1:{http}") });
    write(serde_json::json!({ "Http": plain }));
    let (mut kite, first) = spawn_kite(|kite| {
        kite.kill_on_drop(true).arg("--config").arg(&config);
    })
    .await;
    assert_eq!(first, format!("Now listening on: http://127.0.0.1:{http}"));

    let acme = serde_json::json!({
        "Domains": [DOMAIN],
        "Directory": pebble.directory(),
        "Root": pebble.api_root,
        "CacheDir": pebble.dir.join("kite-acme-cache"),
        "Challenge": "Http01",
    });
    let secure = serde_json::json!({ "Url": format!("https://127.0.0.1:{https}"), "Certificate": { "Acme": acme } });
    write(serde_json::json!({ "Http": plain, "Https": secure }));

    let root_pem = pebble.dir.join("issuing-root.pem");
    std::fs::write(&root_pem, pebble.issuing_root_pem().await).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = curl(&root_pem, https, "/plaintext").output().await.unwrap();
        if out.status.success() {
            break out;
        }
        assert!(tokio::time::Instant::now() < deadline, "no certificate in time:\n{}", pebble.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(out.stdout, b"Hello, World!");
    assert!(pebble.log().contains("Attempting to validate w/ HTTP"), "validated over HTTP-01:\n{}", pebble.log());
    kite.kill().await.unwrap();
}

/// Whether pebble and curl are here; if not, says so (failing unless
/// missing tools may be skipped).
fn tools_present() -> bool {
    if let Err(message) = pebble::binaries() {
        tools::missing(&message);
        return false;
    }
    tools::require_tool("curl")
}

/// Starts `kite` with `args` (logging warnings, in production) and its
/// stdout piped; returns it and the first line it printed (its first
/// address), and drains the rest. `args` sets `kill_on_drop` where a
/// SIGKILL stops it all (not for a supervisor, whose workers would stay).
async fn spawn_kite(args: impl FnOnce(&mut tokio::process::Command)) -> (tokio::process::Child, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kite"));
    args(&mut command);
    let mut kite = command
        .args(["--log", "warn"])
        .env("KITE_ENVIRONMENT", "Production")
        .stdout(Stdio::piped())
        .spawn()
        .expect("kite starts");
    // Stopped, workers and all, if it never prints its address.
    let stop = Terminate(kite.id().expect("a running child"));
    let mut lines = tokio::io::BufReader::new(kite.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.expect("an address in time");
    let first = first.unwrap().expect("kite printed its address");
    std::mem::forget(stop);
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (kite, first)
}

/// A curl command for `https://kite.test:PORT{path}`, resolved to loopback
/// and verified against `root_pem`.
fn curl(root_pem: &std::path::Path, port: u16, path: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("curl");
    command
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(root_pem)
        .args(["--resolve", &format!("{DOMAIN}:{port}:127.0.0.1")])
        .arg(format!("https://{DOMAIN}:{port}{path}"));
    command
}

/// Sends SIGTERM to a process when dropped.
struct Terminate(u32);

impl Drop for Terminate {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.0.to_string()]).status();
    }
}
