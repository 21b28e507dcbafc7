//! `kite --workers N`: a supervisor runs N worker processes of this binary
//! on the same endpoints. Each worker has listening sockets of its own,
//! bound with `SO_REUSEPORT`, so the kernel spreads connections across
//! them. The supervisor binds them (port 0 resolved once for all) and keeps
//! a copy of each worker's, so a worker that dies leaves its accept queue
//! open: its replacement inherits the same sockets and accepts what waited
//! there, and no queued connection is reset. SIGTERM and SIGINT are
//! forwarded for a graceful stop of all.
//!
//! SIGUSR2 to the supervisor replaces the workers one at a time with new
//! ones of the binary on disk (an upgrade): each replacement starts on the
//! same sockets, and once it says it is ready the old worker gets SIGUSR2,
//! which hands the host over (it stops accepting at once and drains, its
//! readiness probe still 200), where SIGTERM would stop it (503 and the
//! drain delay).

use std::ffi::OsString;
use std::io::Write;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use kite_server::config::Config;
use kite_server::handover::{spawn_successor, HandedSocket, Successor};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};

use crate::Cli;

/// The variable that marks a worker, and holds its index.
pub const WORKER_VAR: &str = "KITE_WORKER";

/// The variable that gives a worker its runtime's thread count: the cores
/// shared out among the workers, so N workers do not run N times as many
/// threads as there are cores.
pub const THREADS_VAR: &str = "KITE_WORKER_THREADS";

/// A worker that dies sooner than this after its start is restarted after
/// a pause, so a worker that cannot start does not spin.
const QUICK_DEATH: Duration = Duration::from_secs(1);

/// Whether this process is a worker of a supervisor.
pub fn is_worker() -> bool {
    std::env::var_os(WORKER_VAR).is_some()
}

/// Tells the supervisor this worker serves, on the channel it was started
/// with. A supervisor that is not waiting (a first start, a restart after
/// a crash) has closed the channel; that is not an error.
pub fn notify_supervisor(mut ready: kite_server::handover::Inherited) {
    if let Err(e) = ready.notify_ready() {
        tracing::debug!(error = %e, "the supervisor was not waiting for this worker's ready");
    }
}

/// Whether the configuration names the endpoints (they replace the URLs).
pub fn configured(config: &Config) -> bool {
    config.root().get("Urls").exists() || !config.kestrel().get("Endpoints").entries().is_empty()
}

/// The command line for the workers: this one without `--workers` (a
/// worker binds the same endpoints, adopting the sockets it is given).
fn worker_args() -> Vec<OsString> {
    let mut args = Vec::new();
    let mut skip = false;
    for arg in std::env::args_os().skip(1) {
        if std::mem::take(&mut skip) {
            continue;
        }
        let text = arg.to_string_lossy();
        if text == "--workers" {
            skip = true;
        } else if !text.starts_with("--workers=") {
            args.push(arg);
        }
    }
    args
}

/// How long a replacement worker may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts worker `index` with its sockets.
fn start(index: usize, count: usize, args: &[OsString], sockets: &[HandedSocket]) -> std::io::Result<Child> {
    Ok(start_watched(index, count, args, sockets)?.child)
}

/// Starts worker `index` with its sockets, with the channel on which it
/// says it is ready.
fn start_watched(
    index: usize,
    count: usize,
    args: &[OsString],
    sockets: &[HandedSocket],
) -> std::io::Result<Successor> {
    let program = std::env::current_exe()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / count).max(1);
    let mut command = Command::new(program);
    // The supervisor prints the addresses; workers log to stderr.
    command.args(args).env(WORKER_VAR, index.to_string()).env(THREADS_VAR, threads.to_string()).stdout(Stdio::null());
    spawn_successor(&mut command, sockets)
}

/// Replaces worker `index` with a new one on the same sockets: starts it,
/// waits for it to say it is ready, then hands over from the old one
/// (SIGUSR2), which drains and exits. Returns the old worker, to be
/// reaped, or why the replacement failed (the old one then goes on).
async fn replace(
    index: usize,
    args: &[OsString],
    slots: &[Vec<HandedSocket>],
    worker: &mut (Child, Instant),
) -> Result<Child, String> {
    let successor = start_watched(index, slots.len(), args, &slots[index]).map_err(|e| e.to_string())?;
    let pid = successor.child.id();
    let waiting = tokio::task::spawn_blocking(move || {
        let mut successor = successor;
        let ready = successor.wait_ready();
        (successor, ready)
    });
    let successor = match tokio::time::timeout(READY_TIMEOUT, waiting).await {
        Ok(Ok((successor, Ok(true)))) => successor,
        Ok(Ok((mut successor, outcome))) => {
            let _ = successor.child.kill();
            let _ = successor.child.wait();
            return Err(format!("the new worker ended before it was ready ({outcome:?})"));
        }
        Ok(Err(e)) => return Err(format!("waiting for the new worker failed: {e}")),
        Err(_) => {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            return Err(format!("the new worker was not ready within {READY_TIMEOUT:?}"));
        }
    };
    let (old, _) = std::mem::replace(worker, (successor.child, Instant::now()));
    let _ = kill(Pid::from_raw(old.id() as i32), Signal::SIGUSR2);
    tracing::info!(worker = index, old = old.id(), new = pid, "worker replaced; the old one hands over and drains");
    Ok(old)
}

/// Binds one worker's sockets: the endpoints the command line and the
/// configuration name, with `urls` (port 0 resolved) in place of the
/// command line's when given. Its addresses and its sockets.
async fn bind_slot(cli: &Cli, config: &Config, urls: Option<&str>) -> Result<(Vec<String>, Vec<HandedSocket>), String> {
    let mut cli = cli.clone();
    if let Some(urls) = urls {
        cli.urls = Some(urls.to_string());
    }
    let server = crate::prepare(&cli, config, Vec::new())?.bind().await.map_err(|e| e.to_string())?;
    let addresses = server.addresses();
    if let Some(unix) = addresses.iter().find(|a| a.contains("://unix:")) {
        return Err(format!("--workers needs TCP endpoints: {unix} cannot be shared; run one process for it"));
    }
    let sockets = server.handover().map_err(|e| e.to_string())?;
    // The server's own copies close here; the handed ones stay open.
    drop(server);
    Ok((addresses, sockets))
}

/// Runs `cli.workers` workers until SIGTERM or SIGINT, then stops them
/// gracefully (within the drain delay, the shutdown timeout and 5 s more,
/// then kills them).
pub async fn supervise(cli: &Cli, config: &Config) -> ExitCode {
    let count = cli.workers;
    // Port 0 is resolved by the first worker's sockets; the others bind the
    // same ports. Ports in a configuration file must be fixed.
    let mut slots = Vec::new();
    let mut resolved = None;
    for index in 0..count {
        let urls = resolved.as_deref().filter(|_| !configured(config));
        match bind_slot(cli, config, urls).await {
            Ok((addresses, sockets)) => {
                let joined = addresses.join(";");
                if resolved.as_ref().is_some_and(|first| *first != joined) {
                    eprintln!("kite: --workers needs fixed ports in the configuration file ({joined} differs)");
                    return ExitCode::from(2);
                }
                resolved.get_or_insert(joined);
                slots.push(sockets);
            }
            Err(message) => {
                eprintln!("kite: {message}");
                return ExitCode::from(if index == 0 { 2 } else { 1 });
            }
        }
    }
    let args = worker_args();
    {
        let mut stdout = std::io::stdout().lock();
        for address in resolved.iter().flat_map(|r| r.split(';')) {
            let _ = writeln!(stdout, "Now listening on: {address}");
        }
        let _ = writeln!(stdout, "Workers: {count} (supervisor pid {})", std::process::id());
        let _ = stdout.flush();
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    // A worker's stop takes the drain delay and the shutdown timeout at
    // most; past 5 s more it is killed.
    let grace = Duration::from_secs(cli.drain_delay + cli.shutdown_timeout + 5);
    run_workers(&args, &slots, grace).await
}

/// Runs a worker per slot, restarting any that exits, until a signal.
async fn run_workers(args: &[OsString], slots: &[Vec<HandedSocket>], grace: Duration) -> ExitCode {
    let mut workers: Vec<(Child, Instant)> = Vec::new();
    for (index, sockets) in slots.iter().enumerate() {
        match start(index, slots.len(), args, sockets) {
            Ok(child) => workers.push((child, Instant::now())),
            Err(e) => {
                eprintln!("kite: cannot start worker {index}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let (Ok(mut term), Ok(mut int), Ok(mut usr2)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::user_defined2()))
    else {
        eprintln!("kite: cannot handle signals");
        return ExitCode::FAILURE;
    };
    // Workers handed over from, draining until they exit.
    let mut draining: Vec<Child> = Vec::new();
    let mut every = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = usr2.recv() => {
                tracing::info!("upgrade: replacing the workers one at a time");
                for (index, worker) in workers.iter_mut().enumerate() {
                    match replace(index, args, slots, worker).await {
                        Ok(old) => draining.push(old),
                        Err(reason) => {
                            tracing::error!(worker = index, %reason, "upgrade stopped; the remaining workers go on");
                            break;
                        }
                    }
                }
            }
            _ = every.tick() => {}
        }
        draining.retain_mut(|old| !matches!(old.try_wait(), Ok(Some(_))));
        for (index, (child, started)) in workers.iter_mut().enumerate() {
            let Ok(Some(status)) = child.try_wait() else { continue };
            tracing::warn!(worker = index, %status, "a worker exited; starting another on its sockets");
            if started.elapsed() < QUICK_DEATH {
                tokio::time::sleep(QUICK_DEATH).await;
            }
            match start(index, slots.len(), args, &slots[index]) {
                Ok(replacement) => (*child, *started) = (replacement, Instant::now()),
                Err(e) => tracing::error!(worker = index, error = %e, "cannot restart the worker"),
            }
        }
    }
    tracing::info!("stopping the workers");
    let mut children: Vec<Child> = workers.into_iter().map(|(child, _)| child).chain(draining).collect();
    for child in &children {
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    for child in &mut children {
        while matches!(child.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.wait();
    }
    ExitCode::SUCCESS
}
