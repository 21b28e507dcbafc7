//! systemd socket activation: the listening sockets systemd passes a
//! service (`sd_listen_fds`).

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const FIRST: RawFd = 3;

/// Whether this process has taken its descriptors already.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The listening sockets systemd passed to this process: descriptors 3 to
/// 3 + `LISTEN_FDS`, when `LISTEN_PID` is unset or names this process.
///
/// They are taken once per process: a second call returns none, so no
/// descriptor gets two owners. The environment is left as it is, since
/// changing it while other threads run is unsound; a process that starts
/// children should remove `LISTEN_FDS` and `LISTEN_PID` before its first
/// thread, as the `kite` binary does.
pub fn listen_fds() -> Vec<OwnedFd> {
    let Some(count) = std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse::<RawFd>().ok()) else {
        return Vec::new();
    };
    if let Some(pid) = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) {
        if pid != std::process::id() {
            return Vec::new();
        }
    }
    if TAKEN.swap(true, Ordering::AcqRel) {
        return Vec::new();
    }
    (FIRST..FIRST + count.clamp(0, 1024))
        // SAFETY: the socket activation protocol passes these descriptors
        // to this process for it to own, and TAKEN makes this the only
        // place that takes them.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect()
}
