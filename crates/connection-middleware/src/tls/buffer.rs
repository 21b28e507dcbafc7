//! The TLS stream's record buffers, and the per-thread pool they come
//! from.
//!
//! A TLS connection needs room for whole records only while bytes are in
//! flight: a record arriving, or records on their way out. An idle
//! connection gives both buffers back to its thread's pool, so ten
//! thousand idle connections hold no record buffers at all; a busy one
//! takes them back without an allocator round trip.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;

/// How much a buffer holds when taken from the pool: the largest TLS
/// record on the wire (16 KiB of payload, 2 KiB of expansion that TLS 1.2
/// allows, the 5-byte header), so one read takes any single record.
pub(super) const RECORD: usize = 16 * 1024 + 2048 + 5;
/// The most buffers a thread keeps: a thread works on one connection at a
/// time, and a connection holds buffers only while bytes are in flight.
const POOL_LIMIT: usize = 8;
/// Buffers that grew beyond this (a long handshake flight, a large write)
/// are freed rather than pooled.
const POOL_MAX: usize = 64 * 1024;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Bytes held from `start` to `end` in a vector kept initialised to its
/// full length, so reads and encryption write into it directly. Empty, it
/// holds no memory once [`release`](Self::release)d.
#[derive(Default)]
pub(super) struct Buffer {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buffer {
    /// The bytes held.
    pub(super) fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// The bytes held, to decrypt in place.
    pub(super) fn filled_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start..self.end]
    }

    /// Whether the buffer has memory of its own (taken and not given back).
    #[cfg(test)]
    pub(super) fn holds_memory(&self) -> bool {
        !self.data.is_empty()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Drops `n` bytes from the front.
    pub(super) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room for at least `min` more bytes after the held ones, taking a
    /// buffer from the pool, moving the held bytes to the front, or
    /// growing, in that order of preference.
    pub(super) fn spare(&mut self, min: usize) -> &mut [u8] {
        if self.data.is_empty() {
            self.data = take();
        }
        if self.data.len() - self.end < min && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.data.len() - self.end < min {
            self.data.resize(self.end + min, 0);
        }
        &mut self.data[self.end..]
    }

    /// Counts `n` bytes written into [`spare`](Self::spare) as held.
    pub(super) fn fill(&mut self, n: usize) {
        self.end += n;
        debug_assert!(self.end <= self.data.len());
    }

    /// Writes everything held to `io`, then gives the memory back.
    pub(super) fn poll_write_to<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.is_empty() {
            let n = ready!(Pin::new(&mut *io).poll_write(cx, self.filled()))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.consume(n);
        }
        self.release();
        Poll::Ready(Ok(()))
    }

    /// Gives the memory back to the pool if nothing is held.
    pub(super) fn release(&mut self) {
        if self.is_empty() && !self.data.is_empty() {
            give(std::mem::take(&mut self.data));
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.start = 0;
        self.end = 0;
        self.release();
    }
}

fn take() -> Vec<u8> {
    POOL.with(|pool| pool.borrow_mut().pop()).unwrap_or_else(|| vec![0; RECORD])
}

fn give(data: Vec<u8>) {
    if data.len() >= RECORD && data.len() <= POOL_MAX {
        // `try_with`: a connection dropped while its thread exits finds the
        // pool gone, and frees the buffer instead.
        let _ = POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOL_LIMIT {
                pool.push(data);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_move_front_and_memory_goes_back_when_empty() {
        let mut buffer = Buffer::default();
        assert_eq!(buffer.spare(10).len(), RECORD, "a whole record's room");
        buffer.spare(10)[..5].copy_from_slice(b"hello");
        buffer.fill(5);
        buffer.consume(2);
        assert_eq!(buffer.filled(), b"llo");
        // Asking for the whole buffer moves the held bytes to the front.
        let room = RECORD - 3;
        assert_eq!(buffer.spare(room).len(), room);
        assert_eq!(buffer.filled(), b"llo");
        // And more than that grows it.
        assert_eq!(buffer.spare(RECORD).len(), RECORD);
        let pointer = {
            buffer.consume(3);
            assert!(buffer.is_empty());
            buffer.release();
            assert!(buffer.data.is_empty(), "an empty buffer holds no memory");
            let mut again = Buffer::default();
            let pointer = again.spare(1).as_ptr();
            again.release();
            pointer
        };
        let mut third = Buffer::default();
        assert_eq!(third.spare(1).as_ptr(), pointer, "the pooled buffer is handed out again");
    }

    #[test]
    fn a_buffer_holding_bytes_keeps_them() {
        let mut buffer = Buffer::default();
        buffer.spare(1)[0] = 7;
        buffer.fill(1);
        buffer.release();
        assert_eq!(buffer.filled(), [7]);
    }
}
