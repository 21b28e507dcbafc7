//! Gives memory back to the system once the server goes quiet.
//!
//! An allocator keeps what a burst of connections freed: after 10,000
//! connections close, the process's RSS would stay where the burst left
//! it, and the buffers idle connections released would stay counted
//! against them. A thread looks once a second at the CPU time the process
//! used; after a busy spell, the first quiet second (under 10 ms of CPU)
//! returns the free pages of every arena to the system: jemalloc's
//! `arena.<all>.purge` with the `jemalloc` feature (the default), glibc's
//! `malloc_trim(0)` without it. Under load it never runs; once per quiet
//! spell it costs a few milliseconds. Other allocators and platforms:
//! nothing to do.

#[cfg(feature = "jemalloc")]
use std::ptr;
use std::time::Duration;

/// CPU time in a second under which the process counts as quiet.
const QUIET: Duration = Duration::from_millis(10);

/// jemalloc's options, read at its first allocation: pages it purges are
/// given back at once (`MADV_DONTNEED`), not only marked free for the
/// kernel to take under pressure, so RSS shows what was returned.
#[cfg(feature = "jemalloc")]
#[cfg_attr(all(target_os = "linux", not(target_env = "musl")), export_name = "malloc_conf")]
#[cfg_attr(not(all(target_os = "linux", not(target_env = "musl"))), export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &u8 = &b"muzzy_decay_ms:0\0"[0];

/// Whether this build has an allocator to ask for its free pages back.
const CAN_RELEASE: bool = cfg!(any(feature = "jemalloc", all(target_os = "linux", target_env = "gnu")));

/// Starts the thread that returns free memory once the process is quiet
/// (none where there is nothing to ask).
pub fn spawn() {
    if !CAN_RELEASE {
        return;
    }
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
                let released = release();
                tracing::debug!(released, "quiet: returned free memory to the system");
                last = cpu_time();
            }
        }
    });
    if let Err(error) = started {
        tracing::warn!(%error, "could not start the memory-trimming thread");
    }
}

/// Returns the allocator's free pages to the system; whether it could.
fn release() -> bool {
    #[cfg(feature = "jemalloc")]
    {
        // SAFETY: a NUL-terminated name, and no old or new value, as this
        // control requires (4096 is MALLCTL_ARENAS_ALL).
        unsafe {
            tikv_jemalloc_sys::mallctl(
                c"arena.4096.purge".as_ptr(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                0,
            ) == 0
        }
    }
    #[cfg(all(not(feature = "jemalloc"), target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks and trims the allocator's own
        // arenas, under their locks.
        unsafe { libc::malloc_trim(0) != 0 }
    }
    #[cfg(all(not(feature = "jemalloc"), not(all(target_os = "linux", target_env = "gnu"))))]
    {
        false
    }
}

/// The process's user and system CPU time so far.
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
