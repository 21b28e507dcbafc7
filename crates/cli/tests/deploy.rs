//! The files in `deploy/` hold what they promise: the systemd units pass
//! `systemd-analyze verify` (where it exists) and their command line runs;
//! the Kubernetes Deployment's numbers agree with each other and its
//! arguments run; the container's final stage holds the binary and the CA
//! roots only.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const WAIT: Duration = Duration::from_secs(10);

fn deploy(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value after `key` on the first line (trimmed) that starts with it.
fn value_of<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no line starting with {key:?}"))
}

/// The `--flag=value` arguments of the Deployment's container.
fn deployment_args(yaml: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut inside = false;
    for line in yaml.lines() {
        let trimmed = line.trim();
        if trimmed == "args:" {
            inside = true;
            continue;
        }
        if inside {
            if trimmed.starts_with('#') {
                continue;
            }
            match trimmed.strip_prefix("- ") {
                Some(arg) => args.push(arg.to_string()),
                None => break,
            }
        }
    }
    args
}

fn flag(args: &[String], name: &str) -> String {
    args.iter()
        .find_map(|a| a.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {args:?}"))
        .to_string()
}

/// Starts the binary with `args` (addresses already made local) and
/// returns it with the address it prints first.
async fn start(args: &[String]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kite"))
        .args(args)
        .args(["--log", "warn"])
        .env("KITE_ENVIRONMENT", "Production")
        .kill_on_drop(true)
        .stdout(Stdio::piped())
        .spawn()
        .expect("kite starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line()).await.expect("an address in time").unwrap().unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let address = line.strip_prefix("Now listening on: http://").unwrap_or_else(|| panic!("{line}")).to_string();
    (child, address)
}

async fn status_of(address: &str, path: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw)).await.expect("answered").unwrap();
    String::from_utf8_lossy(&raw).split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[test]
fn the_systemd_units_verify() {
    let Some(analyze) =
        ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].into_iter().find(|p| Path::new(p).exists())
    else {
        eprintln!("systemd-analyze is not on this machine: the units are checked where it is");
        return;
    };
    let dir = std::env::temp_dir().join(format!("kite-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The unit names the installed binary; verify checks it exists.
    let service = deploy("kite.service").replace("/usr/local/bin/kite", env!("CARGO_BIN_EXE_kite"));
    std::fs::write(dir.join("kite.service"), &service).unwrap();
    std::fs::write(dir.join("kite.socket"), deploy("kite.socket")).unwrap();
    let out = std::process::Command::new(analyze)
        .current_dir(&dir)
        .args(["verify", "kite.socket", "kite.service"])
        .output()
        .expect("systemd-analyze runs");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
    // What the unit relies on.
    assert_eq!(value_of(&service, "Type="), "notify");
    assert_eq!(value_of(&service, "NotifyAccess="), "all", "the successor's READY comes from another pid");
    assert_eq!(value_of(&service, "ExecReload="), "/bin/kill -USR2 $MAINPID");
}

#[tokio::test]
async fn the_systemd_command_line_runs() {
    // ExecStart's flags, with a local address and certificate of the test's.
    let service = deploy("kite.service");
    let exec =
        service.split("ExecStart=").nth(1).expect("ExecStart").split("\n# ").next().unwrap().replace("\\\n", " ");
    let mut args: Vec<String> = exec.split_whitespace().skip(1).map(String::from).collect();
    let dir = std::env::temp_dir().join(format!("kite-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    for arg in &mut args {
        *arg = arg
            .replace("/etc/kite/fullchain.pem", &dir.join("cert.pem").display().to_string())
            .replace("/etc/kite/privkey.pem", &dir.join("key.pem").display().to_string())
            .replace("http://127.0.0.1:9090", "http://127.0.0.1:0");
    }
    // Without socket activation it takes its endpoints from --urls.
    args.extend(["--urls".into(), "http://127.0.0.1:0".into()]);
    let (mut child, address) = start(&args).await;
    assert_eq!(status_of(&address, "/healthz").await, 200);
    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_kubernetes_numbers_agree_and_its_arguments_run() {
    let yaml = deploy("kubernetes.yaml");
    let args = deployment_args(&yaml);
    let drain: u64 = flag(&args, "--drain-delay").parse().unwrap();
    let shutdown: u64 = flag(&args, "--shutdown-timeout").parse().unwrap();
    let pre_stop: u64 = value_of(&yaml, "seconds:").parse().unwrap();
    let grace: u64 = value_of(&yaml, "terminationGracePeriodSeconds:").parse().unwrap();
    assert_eq!(pre_stop, drain, "the preStop sleep matches --drain-delay");
    assert!(grace > pre_stop + drain + shutdown, "the grace period ({grace} s) fits preStop, drain and shutdown");
    let health = flag(&args, "--health-path");
    assert!(yaml.contains(&format!("path: {health}")), "the readiness probe asks {health}");
    assert_eq!(value_of(&yaml, "maxUnavailable:"), "0");

    // The same arguments run, on local addresses.
    let local: Vec<String> =
        args.iter().map(|a| a.replace("0.0.0.0:8080", "127.0.0.1:0").replace("0.0.0.0:9090", "127.0.0.1:0")).collect();
    let (mut child, address) = start(&local).await;
    assert_eq!(status_of(&address, &health).await, 200, "ready");
    // SIGTERM: the probe turns 503 while kite still accepts (the drain delay).
    let pid = child.id().unwrap();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let deadline = tokio::time::Instant::now() + WAIT;
    while status_of(&address, &health).await != 503 {
        assert!(tokio::time::Instant::now() < deadline, "the probe never turned 503");
    }
    child.kill().await.unwrap();
}

#[test]
fn the_container_image_holds_the_binary_and_the_ca_roots_only() {
    let file = deploy("Containerfile");
    let stages: Vec<&str> = file.split("\nFROM ").skip(1).collect();
    assert_eq!(stages.len(), 2, "a build stage and a final one");
    let last = stages[1];
    assert!(last.starts_with("scratch"), "the final image starts empty");
    let copies: Vec<&str> = last.lines().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(
        copies,
        [
            "COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt",
            "COPY --from=build /out/kite /kite",
        ]
    );
    assert!(!last.lines().any(|l| l.starts_with("RUN") || l.starts_with("ADD")), "nothing else goes in");
    assert!(stages[0].contains("--target x86_64-unknown-linux-musl"), "a static binary, for an image without libc");
}
