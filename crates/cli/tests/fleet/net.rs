//! The fleet's network: network namespaces joined by veth pairs to a
//! bridge that lives in a namespace of its own, so nothing touches the
//! machine's own network. Removed when dropped, even after a failure.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The subnet every namespace shares; namespaces isolate it from the
/// machine's own networks.
pub const SUBNET: &str = "10.77.0";

/// The address of namespace `name` on the bridge.
pub fn address(name: &str) -> String {
    let last = match name {
        "lb" => 2,
        "client" => 100,
        host => 10 + host.trim_start_matches('h').parse::<u8>().expect("h1, h2, h3"),
    };
    format!("{SUBNET}.{last}")
}

/// Runs `ip` with `args`; panics with its stderr when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip (iproute2) runs");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// The namespaces of one fleet, named with a prefix of this process's, and
/// every process started in them.
pub struct Net {
    prefix: String,
    names: Vec<&'static str>,
    children: Vec<Child>,
    pub dir: PathBuf,
}

impl Net {
    /// Makes the bridge and one namespace per name, each with `eth0` on
    /// the bridge at [`address`] and `lo` up.
    pub fn new(names: &[&'static str]) -> Net {
        let prefix = format!("kf{}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("kite-fleet-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let net = Net { prefix, names: names.to_vec(), children: Vec::new(), dir };
        net.remove_namespaces();
        let bridge = net.ns("net");
        ip(&["netns", "add", &bridge]);
        ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &bridge, "link", "set", "br0", "up"]);
        for name in names {
            let ns = net.ns(name);
            ip(&["netns", "add", &ns]);
            ip(&["-n", &bridge, "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
            ip(&["-n", &bridge, "link", "set", name, "master", "br0", "up"]);
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", address(name)), "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    /// The full name of namespace `name`.
    pub fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Where namespace `name` is mounted, for `setns`.
    pub fn path(&self, name: &str) -> String {
        format!("/var/run/netns/{}", self.ns(name))
    }

    /// Starts `program` with `args` in namespace `name`, its output to
    /// `log` in the fleet's directory. Its process id (`ip netns exec`
    /// execs the program).
    pub fn spawn(&mut self, name: &str, program: &str, args: &[String], log: &str) -> u32 {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(log)).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(name), program])
            .args(args)
            .env("KITE_ENVIRONMENT", "Production")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("ip netns exec runs");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// The processes living in namespace `name`.
    pub fn pids(&self, name: &str) -> Vec<u32> {
        let out = Command::new("ip").args(["netns", "pids", &self.ns(name)]).output().expect("ip netns pids");
        let mut pids: Vec<u32> =
            String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect();
        pids.retain(|pid| alive(*pid));
        pids
    }

    /// Reaps processes this fleet started that have exited.
    pub fn reap(&mut self) {
        self.children.retain_mut(|child| !matches!(child.try_wait(), Ok(Some(_))));
    }

    fn remove_namespaces(&self) {
        for name in self.names.iter().copied().chain(["net"]) {
            let ns = self.ns(name);
            if std::path::Path::new(&format!("/var/run/netns/{ns}")).exists() {
                for pid in self.pids(name) {
                    signal(pid, libc::SIGKILL);
                }
                let _ = Command::new("ip").args(["netns", "del", &ns]).status();
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove_namespaces();
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) with a pid and a signal number has no memory effects.
    unsafe { libc::kill(pid as i32, signal) };
}

/// Whether `pid` runs (a zombie does not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Moves the calling thread into the network namespace at `path`: the
/// sockets it makes from then on live there.
pub fn enter(path: &str) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // SAFETY: setns(2) on a namespace file this thread holds open.
    let done = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
    assert_eq!(done, 0, "setns {path}: {}", std::io::Error::last_os_error());
}
