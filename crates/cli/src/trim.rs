//! Gives memory back to the system once the server goes quiet.
//!
//! glibc's allocator keeps what a burst of connections freed in its
//! arenas: after 10,000 connections close, the process's RSS stays where
//! the burst left it, and the buffers idle connections released stay
//! counted against them. A thread looks once a second at the CPU time the
//! process used; after a busy spell, the first quiet second (under 10 ms
//! of CPU) calls `malloc_trim(0)`, which returns the free pages of every
//! arena. Under load it never runs; once per quiet spell it costs a few
//! milliseconds. Other allocators and platforms: nothing to do.

use std::time::Duration;

/// CPU time in a second under which the process counts as quiet.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const QUIET: Duration = Duration::from_millis(10);

/// Starts the trimming thread (glibc only).
pub fn spawn() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::thread::Builder::new().name("kite-trim".into()).spawn(|| {
            let mut last = cpu_time();
            let mut busy = false;
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let now = cpu_time();
                let used = now.saturating_sub(last);
                last = now;
                if used >= QUIET {
                    busy = true;
                } else if busy {
                    busy = false;
                    // SAFETY: malloc_trim only walks and trims the
                    // allocator's own arenas, under their locks.
                    let released = unsafe { libc::malloc_trim(0) };
                    tracing::debug!(released = released != 0, "quiet: returned free memory to the system");
                    last = cpu_time();
                }
            }
        });
        if let Err(error) = started {
            tracing::warn!(%error, "could not start the memory-trimming thread");
        }
    }
}

/// The process's user and system CPU time so far.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn cpu_time() -> Duration {
    // SAFETY: rusage is plain data, valid when zeroed; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage for RUSAGE_SELF.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}
