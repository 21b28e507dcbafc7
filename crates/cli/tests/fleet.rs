//! A fleet behind a real load balancer: three `kite` hosts, each in a
//! network namespace of its own, behind HAProxy (HTTP/1.1 terminated at
//! HAProxy with keep-alive to the hosts; TLS passed through with PROXY v2
//! to the hosts' https endpoints, HTTP/2 end to end), active checks of
//! `/healthz` every 500 ms (fall 2, rise 2), a passive layer-4 check, no
//! retries. A client namespace counts every request while the hosts are
//! upgraded one by one and all at once, restarted one by one, and one is
//! lost. Needs root (namespaces) and HAProxy; the README's test command
//! installs HAProxy.

#[path = "../../../tests/common/tools.rs"]
mod tools;

#[path = "fleet/load.rs"]
mod load;
#[path = "fleet/net.rs"]
mod net;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use load::Tally;
use net::{address, alive, signal, Net};

const HOSTS: [&str; 3] = ["h1", "h2", "h3"];
const WAIT: Duration = Duration::from_secs(15);
/// The most requests the loss of one host may fail: one in flight per
/// client connection (16 HTTP/1.1 and 4 HTTP/2), before the passive check
/// takes the host out on its first error.
const LOST_HOST_BOUND: usize = 20;

fn haproxy_config() -> String {
    let mut config = String::from(
        "global\n  maxconn 4096\n\
         defaults\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n  retries 0\n\
         frontend http_in\n  mode http\n  bind 10.77.0.2:80\n  default_backend hosts_http\n\
         backend hosts_http\n  mode http\n  balance roundrobin\n  http-reuse safe\n\
         \x20 option httpchk\n  http-check send meth GET uri /healthz\n  http-check expect status 200\n\
         \x20 default-server check inter 500 fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down\n",
    );
    for host in HOSTS {
        config.push_str(&format!("  server {host} {}:8080\n", address(host)));
    }
    config.push_str(
        "frontend tls_in\n  mode tcp\n  bind 10.77.0.2:443\n  default_backend hosts_tls\n\
         backend hosts_tls\n  mode tcp\n  balance roundrobin\n\
         \x20 option httpchk\n  http-check send meth GET uri /healthz\n  http-check expect status 200\n\
         \x20 default-server check port 8080 inter 500 fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down\n",
    );
    for host in HOSTS {
        config.push_str(&format!("  server {host} {}:8443 send-proxy-v2\n", address(host)));
    }
    config
}

/// A host's configuration: plain HTTP for HAProxy's HTTP backend and its
/// checks, HTTPS behind PROXY v2 from HAProxy only.
fn host_config(host: &str, dir: &std::path::Path) -> String {
    serde_json::json!({
        "Kestrel": { "Endpoints": {
            "Http": { "Url": format!("http://{}:8080", address(host)) },
            "Https": {
                "Url": format!("https://{}:8443", address(host)),
                "Certificate": { "Path": dir.join("cert.pem"), "KeyPath": dir.join("key.pem") },
                "ProxyProtocol": { "Mode": "Required", "TrustedProxies": [format!("{}/32", address("lb"))] }
            }
        }}
    })
    .to_string()
}

/// Starts `kite` in `host`'s namespace and waits until it has bound its
/// endpoints (it prints them once bound). Its process id.
async fn start_host(net: &mut Net, host: &str) -> u32 {
    let log = format!("{host}.log");
    let before = std::fs::read_to_string(net.dir.join(&log)).unwrap_or_default().matches("Now listening").count();
    let config = net.dir.join(format!("{host}.json"));
    let args =
        ["--config", config.to_str().unwrap(), "--health-path", "/healthz", "--drain-delay", "2", "--log", "warn"]
            .map(String::from);
    let pid = net.spawn(host, env!("CARGO_BIN_EXE_kite"), &args, &log);
    wait_until(&format!("{host} to bind"), || {
        std::fs::read_to_string(net.dir.join(&log)).unwrap_or_default().matches("Now listening").count() >= before + 2
    })
    .await;
    pid
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The one process serving `host`.
fn only_pid(net: &Net, host: &str) -> u32 {
    let pids = net.pids(host);
    assert_eq!(pids.len(), 1, "one process serves {host}: {pids:?}");
    pids[0]
}

/// The load, running while a scenario plays.
struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    thread: std::thread::JoinHandle<()>,
}

impl Load {
    fn start(net: &Net, roots: &rustls::RootCertStore) -> Load {
        let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
        let lb = address("lb");
        let http: SocketAddr = format!("{lb}:80").parse().unwrap();
        let tls: SocketAddr = format!("{lb}:443").parse().unwrap();
        let thread = load::spawn(net.path("client"), http, tls, roots.clone(), Arc::clone(&stop), Arc::clone(&tally));
        Load { stop, tally, thread }
    }

    /// Waits until every host has answered on both paths.
    async fn wait_all_hosts(&self) {
        wait_until("every host to answer through HAProxy", || {
            HOSTS.iter().all(|h| !self.tally.pids_on(&address(h)).is_empty())
                && self.tally.h2_answered.load(Ordering::Relaxed) > 0
        })
        .await;
    }

    fn stop(self) -> Arc<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the load thread");
        self.tally
    }
}

/// HAProxy's lines saying a server went DOWN, after byte `from` of its log.
fn downs(net: &Net, from: usize) -> Vec<String> {
    let log = std::fs::read_to_string(net.dir.join("haproxy.log")).unwrap_or_default();
    log.get(from..).unwrap_or_default().lines().filter(|l| l.contains("is DOWN")).map(String::from).collect()
}

fn log_len(net: &Net) -> usize {
    std::fs::metadata(net.dir.join("haproxy.log")).map_or(0, |m| m.len() as usize)
}

/// Upgrades `hosts` (SIGUSR2 to each at once) and waits until each is
/// served by a new process alone, which has answered through HAProxy.
async fn upgrade(net: &Net, tally: &Tally, hosts: &[&str]) {
    let old: Vec<u32> = hosts.iter().map(|h| only_pid(net, h)).collect();
    for pid in &old {
        signal(*pid, libc::SIGUSR2);
    }
    for (host, old) in hosts.iter().zip(old) {
        wait_until(&format!("{host}'s old process to hand over and exit"), || {
            let pids = net.pids(host);
            pids.len() == 1 && pids[0] != old && !alive(old)
        })
        .await;
        let new = u64::from(only_pid(net, host));
        wait_until(&format!("{host}'s new process to answer"), || tally.pids_on(&address(host)).contains(&new)).await;
    }
}

struct Scenario {
    name: &'static str,
    tally: Arc<Tally>,
    downs: Vec<String>,
}

impl Scenario {
    fn failures(&self) -> usize {
        self.tally.failures.lock().unwrap().len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_behind_haproxy_upgrades_restarts_and_loses_a_host_without_losing_requests() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        tools::missing("the fleet test makes network namespaces, which needs root; run scripts/test.sh as root");
        return;
    }
    if !tools::require_tool("ip") {
        return;
    }
    let Some(haproxy) = ["/usr/sbin/haproxy", "haproxy"]
        .into_iter()
        .find(|b| std::process::Command::new(b).arg("-v").output().is_ok_and(|o| o.status.success()))
    else {
        tools::missing(&format!("haproxy is required by this test but is not installed; {}", tools::INSTALLS));
        return;
    };

    let mut net = Net::new(&["h1", "h2", "h3", "lb", "client"]);
    let certified = rcgen::generate_simple_self_signed(vec!["kite.test".to_string()]).unwrap();
    std::fs::write(net.dir.join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(net.dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    for host in HOSTS {
        std::fs::write(net.dir.join(format!("{host}.json")), host_config(host, &net.dir)).unwrap();
        start_host(&mut net, host).await;
    }
    std::fs::write(net.dir.join("haproxy.cfg"), haproxy_config()).unwrap();
    let config = net.dir.join("haproxy.cfg").display().to_string();
    net.spawn("lb", haproxy, &["-db".into(), "-f".into(), config], "haproxy.log");

    let mut scenarios = Vec::new();
    // Warm up: HAProxy listens and sees every host up.
    let load = Load::start(&net, &roots);
    load.wait_all_hosts().await;
    let warm = load.stop();

    // What the hosts saw on the TLS path: the client's address (PROXY v2)
    // and HTTP/2.
    let remotes = warm.tls_remotes.lock().unwrap().clone();
    assert_eq!(remotes.into_iter().collect::<Vec<_>>(), [address("client")], "the hosts see the client's address");

    let plays: [&'static str; 4] = ["rolling upgrade", "all-at-once upgrade", "rolling restart", "lost host"];
    for name in plays {
        let from = log_len(&net);
        let load = Load::start(&net, &roots);
        load.wait_all_hosts().await;
        match name {
            "rolling upgrade" => {
                for host in HOSTS {
                    upgrade(&net, &load.tally, &[host]).await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            "all-at-once upgrade" => {
                upgrade(&net, &load.tally, &HOSTS).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            "rolling restart" => {
                for host in HOSTS {
                    let old = only_pid(&net, host);
                    signal(old, libc::SIGTERM);
                    wait_until(&format!("{host} to stop"), || !alive(old)).await;
                    net.reap();
                    let new = u64::from(start_host(&mut net, host).await);
                    // HAProxy routes to it again once it saw two good checks.
                    wait_until(&format!("{host} to be back in rotation"), || {
                        load.tally.pids_on(&address(host)).contains(&new)
                    })
                    .await;
                }
            }
            _ => {
                signal(only_pid(&net, "h2"), libc::SIGKILL);
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        }
        let tally = load.stop();
        scenarios.push(Scenario { name, tally, downs: downs(&net, from) });
    }

    for scenario in &scenarios {
        println!(
            "{:<20} {}; HAProxy marked a server DOWN {} times",
            scenario.name,
            scenario.tally.summary(),
            scenario.downs.len()
        );
    }
    for scenario in &scenarios {
        let failures = scenario.tally.failures.lock().unwrap().clone();
        assert!(scenario.tally.answered.load(Ordering::Relaxed) > 500, "{}: the load ran", scenario.name);
        assert!(scenario.tally.h2_answered.load(Ordering::Relaxed) > 50, "{}: HTTP/2 ran", scenario.name);
        match scenario.name {
            "lost host" => assert!(
                scenario.failures() <= LOST_HOST_BOUND,
                "{}: {} failed, more than {LOST_HOST_BOUND}: {failures:?}",
                scenario.name,
                failures.len()
            ),
            _ => assert!(failures.is_empty(), "{}: {failures:?}", scenario.name),
        }
        if scenario.name.ends_with("upgrade") {
            assert!(scenario.downs.is_empty(), "{}: HAProxy took a host out: {:?}", scenario.name, scenario.downs);
        }
    }
}
