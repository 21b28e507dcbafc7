//! Zero-downtime upgrade of the `kite` binary: on SIGUSR2 the running
//! process starts the binary again (the new one, if it was replaced on
//! disk) with its listening sockets inherited; once the new process says it
//! serves, this one stops accepting at once and drains gracefully, its
//! readiness probe still answering 200 (the host is healthy; the drain
//! delay is for a host that stops). Under systemd
//! (`NOTIFY_SOCKET`), it reports RELOADING, then the new process READY with
//! its MAINPID, and STOPPING.

use std::time::Duration;

use kite_server::handover::{spawn_successor, HandedSocket};
use kite_server::ShutdownHandle;
use sd_notify::NotifyState;
use tokio::signal::unix::{signal, SignalKind};

/// How long a new process may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits for SIGUSR2 and hands `sockets` to a new process; on success
/// starts this server's graceful shutdown. A failed start leaves this
/// process serving, and another SIGUSR2 tries again.
pub async fn on_sigusr2(sockets: Vec<HandedSocket>, shutdown: ShutdownHandle) {
    let Ok(mut usr2) = signal(SignalKind::user_defined2()) else {
        return tracing::warn!("SIGUSR2 cannot be handled: upgrades are off");
    };
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            received = usr2.recv() => if received.is_none() { return },
        }
        let _ = sd_notify::notify(&[NotifyState::Reloading]);
        match upgrade(&sockets).await {
            Ok(pid) => {
                tracing::info!(pid, "the new process serves; this one stops accepting and drains");
                let _ = sd_notify::notify(&[NotifyState::MainPid(pid), NotifyState::Stopping]);
                // The host stays healthy: no drain delay, no 503.
                shutdown.hand_over();
                return;
            }
            Err(reason) => {
                tracing::error!(%reason, "upgrade failed; this process goes on serving");
                let _ = sd_notify::notify(&[NotifyState::Ready]);
            }
        }
    }
}

/// A worker's SIGUSR2: its supervisor started its replacement, which
/// serves; this worker hands the host over (stops accepting at once, drains
/// with its probe at 200).
pub async fn on_sigusr2_hand_over(shutdown: ShutdownHandle) {
    let Ok(mut usr2) = signal(SignalKind::user_defined2()) else {
        return tracing::warn!("SIGUSR2 cannot be handled: this worker cannot be handed over from");
    };
    tokio::select! {
        _ = shutdown.wait() => {}
        received = usr2.recv() => if received.is_some() {
            tracing::info!("the supervisor replaced this worker; it stops accepting and drains");
            shutdown.hand_over();
        },
    }
}

/// Starts the successor and waits for its "ready"; its process id.
async fn upgrade(sockets: &[HandedSocket]) -> Result<u32, String> {
    let program = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut command = std::process::Command::new(&program);
    command.args(std::env::args_os().skip(1));
    let mut successor = spawn_successor(&mut command, sockets).map_err(|e| format!("cannot start {program:?}: {e}"))?;
    let pid = successor.child.id();
    tracing::info!(pid, sockets = sockets.len(), "upgrade: started the new process with the listening sockets");
    let waiting = tokio::task::spawn_blocking(move || {
        let ready = successor.wait_ready();
        (successor, ready)
    });
    match tokio::time::timeout(READY_TIMEOUT, waiting).await {
        Ok(Ok((_, Ok(true)))) => Ok(pid),
        Ok(Ok((mut successor, outcome))) => {
            let _ = successor.child.kill();
            let _ = successor.child.wait();
            Err(format!("the new process ended before it was ready ({outcome:?})"))
        }
        Ok(Err(e)) => Err(format!("waiting for the new process failed: {e}")),
        Err(_) => {
            // The blocked read ends when the process is killed.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            Err(format!("the new process was not ready within {READY_TIMEOUT:?}"))
        }
    }
}
