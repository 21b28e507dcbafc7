//! HAProxy in front of a server under test, in TCP mode, sending the
//! PROXY protocol header; and a client address other than the proxy's.
//! Shared by the facade's tests and the binary's.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

/// HAProxy in TCP mode from 127.0.0.1:`front` to 127.0.0.1:`back`,
/// sending the PROXY header `version` (`send-proxy` or `send-proxy-v2`).
pub struct Haproxy {
    child: tokio::process::Child,
    dir: std::path::PathBuf,
}

impl Haproxy {
    /// Starts HAProxy; `Err` with the message for a missing tool when it
    /// is not installed.
    pub async fn start(front: u16, back: u16, send: &str) -> Result<Self, String> {
        let binary = ["haproxy", "/usr/sbin/haproxy"]
            .into_iter()
            .find(|b| std::process::Command::new(b).arg("-v").output().is_ok_and(|o| o.status.success()));
        let Some(binary) = binary else {
            return Err("haproxy is required by this test but is not installed; run scripts/test.sh (the README's test command), which installs it".into());
        };
        let dir = std::env::temp_dir().join(format!("kite-haproxy-{}-{front}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "global\n  maxconn 256\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 10s\n  timeout server 10s\n\
             frontend front\n  bind 127.0.0.1:{front}\n  default_backend kite\n\
             backend kite\n  server kite 127.0.0.1:{back} {send}\n"
        );
        std::fs::write(dir.join("haproxy.cfg"), config).unwrap();
        let child = tokio::process::Command::new(binary)
            .args(["-db", "-f"])
            .arg(dir.join("haproxy.cfg"))
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait on its bound address.
        let deadline = tokio::time::Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", front)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "haproxy listens in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self { child, dir })
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A connection to `port` from 127.0.0.2, so the client's address differs
/// from the proxy's.
pub async fn from_127_0_0_2(port: u16) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap()
}
