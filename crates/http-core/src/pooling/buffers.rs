//! Per-thread pools of connection buffers.
//!
//! An idle connection holds no buffers: it gives them back here when a read
//! finds nothing, and takes them again when data arrives. The pools make
//! that hand-off cheap (no allocator round trip per request) and are
//! bounded, so memory comes back once connections close.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use kite_transport_core::ConnectionIo;
use tokio::io::ReadBuf;

/// How much a read buffer holds when it is taken.
pub(crate) const READ_BUFFER: usize = 8 * 1024;
/// How much a write buffer holds when it is taken.
pub(crate) const WRITE_BUFFER: usize = 4 * 1024;
/// The most buffers of each kind a thread keeps.
const POOL_LIMIT: usize = 64;
/// Buffers that grew beyond this are freed rather than pooled.
const POOL_MAX_CAPACITY: usize = 64 * 1024;

thread_local! {
    static READ: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static WRITE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A read buffer with room for at least [`READ_BUFFER`] bytes.
pub(crate) fn take_read() -> BytesMut {
    let mut buf = READ.with(|pool| pool.borrow_mut().pop()).unwrap_or_default();
    buf.reserve(READ_BUFFER);
    buf
}

/// Gives an empty read buffer back.
pub(crate) fn give_read(buf: BytesMut) {
    if buf.is_empty() && buf.capacity() > 0 && buf.capacity() <= POOL_MAX_CAPACITY {
        READ.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOL_LIMIT {
                pool.push(buf);
            }
        });
    }
}

/// An empty write buffer with room for at least [`WRITE_BUFFER`] bytes.
pub(crate) fn take_write() -> Vec<u8> {
    WRITE.with(|pool| pool.borrow_mut().pop()).unwrap_or_else(|| Vec::with_capacity(WRITE_BUFFER))
}

/// Gives a write buffer back.
pub(crate) fn give_write(mut buf: Vec<u8>) {
    if buf.capacity() >= WRITE_BUFFER && buf.capacity() <= POOL_MAX_CAPACITY {
        buf.clear();
        WRITE.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOL_LIMIT {
                pool.push(buf);
            }
        });
    }
}

/// Reads from `io` into `buf`'s spare capacity, without zeroing it first;
/// returns how many bytes arrived (0 at end of stream).
pub(crate) fn poll_read_into(
    io: &mut Box<dyn ConnectionIo>,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let filled = {
        let spare = buf.spare_capacity_mut();
        let (start, room) = (spare.as_ptr().cast::<u8>(), spare.len());
        let mut dst = ReadBuf::uninit(spare);
        match Pin::new(&mut **io).poll_read(cx, &mut dst) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        // `ConnectionIo` is implemented in safe code by users, and safe
        // code may replace the `ReadBuf` with one of its own: what it says
        // it filled then lies elsewhere, so it is refused, as tokio-util's
        // `poll_read_buf` refuses it.
        let filled = dst.filled();
        if filled.as_ptr() != start || filled.len() > room {
            return Poll::Ready(Err(io::Error::other(
                "the connection's stream replaced the buffer it was given to read into",
            )));
        }
        filled.len()
    };
    // SAFETY: the `ReadBuf` still points at the spare capacity (checked
    // above), and `poll_read` initialised its first `filled` bytes, which
    // directly follow the buffer's length and lie within its capacity.
    unsafe { buf.set_len(buf.len() + filled) };
    Poll::Ready(Ok(filled))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream in safe code that swaps the `ReadBuf` it is handed for one
    /// over its own memory and fills that: a read through it must fail,
    /// never expose the buffer's uninitialised bytes.
    struct Swapping;

    static LENT: std::sync::atomic::AtomicPtr<u8> = std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

    impl tokio::io::AsyncRead for Swapping {
        fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            let own: &'static mut [u8] = Box::leak(vec![7u8; 64 * 1024].into_boxed_slice());
            // Kept reachable, so LeakSanitizer does not count it.
            LENT.store(own.as_mut_ptr(), std::sync::atomic::Ordering::Relaxed);
            let mut theirs = ReadBuf::new(own);
            theirs.advance(64 * 1024);
            // Safe code can do this: the caller's view now lies.
            *buf = theirs;
            Poll::Ready(Ok(()))
        }
    }

    impl ConnectionIo for Swapping {}

    impl tokio::io::AsyncWrite for Swapping {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_stream_that_swaps_the_read_buffer_is_refused() {
        let mut io: Box<dyn ConnectionIo> = Box::new(Swapping);
        let mut buf = BytesMut::with_capacity(READ_BUFFER);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match poll_read_into(&mut io, &mut buf, &mut cx) {
            Poll::Ready(Err(e)) => assert!(e.to_string().contains("replaced the buffer"), "{e}"),
            other => panic!("a swapped buffer was accepted: {other:?}"),
        }
        assert!(buf.is_empty(), "no length was set from the lie");
    }

    #[test]
    fn buffers_are_reused_and_bounded() {
        let read = take_read();
        assert!(read.capacity() >= READ_BUFFER);
        let ptr = read.as_ptr();
        give_read(read);
        assert_eq!(take_read().as_ptr(), ptr, "the pooled buffer is handed out again");

        let mut write = take_write();
        write.extend_from_slice(b"data");
        let ptr = write.as_ptr();
        give_write(write);
        let again = take_write();
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.is_empty());

        // Oversized buffers are not kept.
        give_write(Vec::with_capacity(POOL_MAX_CAPACITY * 2));
        assert!(take_write().capacity() <= POOL_MAX_CAPACITY);
    }
}
