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
        let mut dst = ReadBuf::uninit(buf.spare_capacity_mut());
        match Pin::new(&mut **io).poll_read(cx, &mut dst) {
            Poll::Ready(Ok(())) => dst.filled().len(),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    };
    // SAFETY: `poll_read` initialised the first `filled` bytes of the spare
    // capacity, which directly follow the buffer's length.
    unsafe { buf.set_len(buf.len() + filled) };
    Poll::Ready(Ok(filled))
}

#[cfg(test)]
mod tests {
    use super::*;

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
