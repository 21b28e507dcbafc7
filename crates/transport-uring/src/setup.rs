//! Making a loop: its ring, with the kernel's refusal turned into an
//! error that says what to do; a check that the kernel has what the
//! transport uses; and the thread.

use std::fmt;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use io_uring::{cqueue, opcode, types, IoUring};

use crate::buffers::{BufferRing, GROUP};
use crate::driver::Driver;
use crate::handle::{LoopHandle, Shared};
use crate::UringOptions;

/// Why the io_uring transport cannot run on this machine. It reaches the
/// caller inside an [`io::Error`] of kind [`io::ErrorKind::Unsupported`];
/// take it out with `error.get_ref()` and `downcast_ref::<Unavailable>()`.
///
/// Kite never falls back to another transport on its own: the caller
/// chooses (the `kite` binary says `--transport sockets`).
#[derive(Debug)]
#[non_exhaustive]
pub enum Unavailable {
    /// The kernel refused to create a ring: io_uring is disabled
    /// (`sysctl kernel.io_uring_disabled`), blocked by a seccomp profile
    /// (Docker's default blocks it), or absent from this kernel.
    Refused(io::Error),
    /// The kernel has io_uring but not a feature this transport needs:
    /// multishot accept and receive into a provided-buffer ring (Linux 6.0
    /// or later).
    Missing {
        /// What is missing.
        feature: &'static str,
        /// What the kernel said, if it said anything.
        error: Option<io::Error>,
    },
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::Refused(e) => write!(
                f,
                "io_uring is not available: the kernel refused to create a ring ({e}); it may be disabled \
                 (sysctl kernel.io_uring_disabled), blocked by a seccomp profile such as Docker's default, \
                 or missing from this kernel"
            ),
            Unavailable::Missing { feature, error: Some(e) } => {
                write!(f, "io_uring here lacks {feature} ({e}); the io_uring transport needs Linux 6.0 or later")
            }
            Unavailable::Missing { feature, error: None } => {
                write!(f, "io_uring here lacks {feature}; the io_uring transport needs Linux 6.0 or later")
            }
        }
    }
}

impl std::error::Error for Unavailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Unavailable::Refused(e) => Some(e),
            Unavailable::Missing { error, .. } => error.as_ref().map(|e| e as _),
        }
    }
}

impl From<Unavailable> for io::Error {
    fn from(reason: Unavailable) -> Self {
        io::Error::new(io::ErrorKind::Unsupported, reason)
    }
}

/// A ring set up for one loop thread, and whether its completion work
/// waits for the loop to ask (`DEFER_TASKRUN`).
fn build_ring(options: &UringOptions) -> Result<(IoUring, bool), Unavailable> {
    let entries = options.ring_entries;
    let cq = entries.saturating_mul(8);
    let mut builder = IoUring::builder();
    builder.setup_cqsize(cq).setup_single_issuer();
    match options.sqpoll {
        Some(idle) => {
            builder.setup_sqpoll(idle.as_millis().min(u32::MAX as u128) as u32);
        }
        None => {
            builder.setup_defer_taskrun().setup_taskrun_flag();
        }
    }
    match builder.build(entries) {
        Ok(ring) => Ok((ring, options.sqpoll.is_none())),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // A kernel before 6.1 knows neither SINGLE_ISSUER nor
            // DEFER_TASKRUN: the plain ring works, a little slower.
            let mut builder = IoUring::builder();
            builder.setup_cqsize(cq);
            if let Some(idle) = options.sqpoll {
                builder.setup_sqpoll(idle.as_millis().min(u32::MAX as u128) as u32);
            }
            builder.build(entries).map(|ring| (ring, false)).map_err(refused)
        }
        Err(e) => Err(refused(e)),
    }
}

fn refused(e: io::Error) -> Unavailable {
    match e.raw_os_error() {
        Some(libc::EINVAL) => Unavailable::Missing { feature: "a ring with these parameters", error: Some(e) },
        _ => Unavailable::Refused(e),
    }
}

/// Checks, on a throwaway ring, that the kernel takes a provided-buffer
/// ring and delivers a multishot receive into it.
pub(crate) fn check_kernel() -> Result<(), Unavailable> {
    let mut ring = IoUring::new(8).map_err(refused)?;
    let buffers = BufferRing::register(&ring, 2, 64)
        .map_err(|e| Unavailable::Missing { feature: "provided-buffer rings", error: Some(e) })?;
    let (left, right) = std::os::unix::net::UnixStream::pair()
        .map_err(|e| Unavailable::Missing { feature: "a socket pair to test with", error: Some(e) })?;
    use std::io::Write;
    (&right).write_all(b"k").map_err(|e| Unavailable::Missing { feature: "a socket pair", error: Some(e) })?;
    let fd = types::Fd(std::os::fd::AsRawFd::as_raw_fd(&left));
    let recv = opcode::RecvMulti::new(fd, GROUP).build().user_data(1);
    // SAFETY: the multishot receive writes only into the registered
    // buffers, which outlive the ring (dropped below, after it).
    unsafe { ring.submission().push(&recv) }.map_err(|_| Unavailable::Missing { feature: "room", error: None })?;
    let missing = |e| Unavailable::Missing { feature: "multishot receive", error: e };
    let timeout = types::Timespec::from(Duration::from_secs(1));
    let args = types::SubmitArgs::new().timespec(&timeout);
    ring.submitter().submit_with_args(1, &args).map_err(|e| missing(Some(e)))?;
    let entry = ring.completion().next().ok_or_else(|| missing(None))?;
    let worked = entry.result() == 1 && cqueue::more(entry.flags()) && cqueue::buffer_select(entry.flags()).is_some();
    // End the receive before its buffers go: closing the socket pair ends
    // it with a zero-length completion.
    drop(left);
    drop(right);
    let cancel = opcode::AsyncCancel::new(1).build().user_data(2);
    // SAFETY: a cancel points at no memory.
    let _ = unsafe { ring.submission().push(&cancel) };
    let _ = ring.submitter().submit_with_args(2, &args);
    drop(ring);
    drop(buffers);
    if worked {
        Ok(())
    } else {
        Err(Unavailable::Missing {
            feature: "multishot receive",
            error: (entry.result() < 0).then(|| io::Error::from_raw_os_error(-entry.result())),
        })
    }
}

/// Starts loop number `index` of transport number `transport` on a thread
/// of its own, named `kite-uring-{transport}-{index}`. The ring is made on
/// that thread (a single-issuer ring belongs to the thread that made it);
/// this waits until it exists or failed. Its tasks run inside `runtime`'s
/// context, for timers and `tokio::spawn`.
pub(crate) fn spawn_loop(
    transport: usize,
    index: usize,
    options: &UringOptions,
    runtime: Option<tokio::runtime::Handle>,
) -> io::Result<LoopHandle> {
    let (sender, receiver) = std::sync::mpsc::sync_channel::<io::Result<Arc<Shared>>>(1);
    let options = options.clone();
    std::thread::Builder::new().name(format!("kite-uring-{transport}-{index}")).spawn(move || {
        let made = make_loop(index, &options, runtime);
        let (driver, shared) = match made {
            Ok(made) => made,
            Err(e) => {
                let _ = sender.send(Err(e));
                return;
            }
        };
        let _ = sender.send(Ok(Arc::clone(&shared)));
        shared.enter_thread();
        let _runtime = shared.runtime.as_ref().map(|runtime| runtime.enter());
        let mut driver = driver;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| driver.run()));
        if let Err(panic) = outcome {
            let message = kite_transport_core::loop_executor::panic_message(panic.as_ref());
            tracing::error!(event_loop = index, panic = %message, "an io_uring loop panicked; its connections fail");
        }
        // Dropping the driver ends its ops and marks the loop dead.
        drop(driver);
    })?;
    let shared = receiver.recv().map_err(|_| io::Error::other("the io_uring loop thread ended at start"))??;
    Ok(LoopHandle::new(shared))
}

fn make_loop(
    index: usize,
    options: &UringOptions,
    runtime: Option<tokio::runtime::Handle>,
) -> io::Result<(Driver, Arc<Shared>)> {
    // Blocking: io_uring completes a read on a non-blocking descriptor
    // at once with EAGAIN instead of waiting for it to be readable.
    // SAFETY: eventfd returns a new descriptor or -1, checked here.
    let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor nothing else owns.
    let wake_fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let (ring, defer_taskrun) = build_ring(options)?;
    let buffers = BufferRing::register(&ring, options.buffer_count, options.buffer_size)
        .map_err(|e| Unavailable::Missing { feature: "provided-buffer rings", error: Some(e) })?;
    let shared = Arc::new(Shared::new(index, buffers, wake_fd, runtime));
    Ok((Driver::new(ring, Arc::clone(&shared), defer_taskrun), shared))
}
