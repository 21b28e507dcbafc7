//! The provided-buffer ring of one loop: receive buffers the kernel picks
//! from when data arrives, so an idle connection holds none.
//!
//! The ring (an array of `io_uring_buf` entries whose tail the loop
//! advances) and the buffers are two anonymous mappings of their own,
//! registered with the loop's ring as buffer group [`GROUP`]. A buffer
//! the kernel filled belongs to the connection it was received for until
//! that connection's reader copies it out; then it goes back on the ring.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// The buffer group id of every loop's ring (one group per ring).
pub(crate) const GROUP: u16 = 0;

/// An anonymous, private mapping, unmapped on drop.
struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Self> {
        // SAFETY: an anonymous private mapping of `len` bytes, no address
        // hint; the result is checked before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Self { base, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base` and `len` are exactly what mmap returned, and
        // nothing refers to the mapping any more (see `Buffers`' drop).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// The memory of a loop's receive buffers: readable from any thread, for
/// a reader that copies out a buffer the kernel handed over.
pub(crate) struct BufferMemory {
    memory: Mapping,
    size: usize,
    count: u16,
}

// SAFETY: the memory is plain bytes. A buffer is written by the kernel
// only while it is on the ring, and read by a reader only after a
// completion handed it over and before it goes back: never both at once.
unsafe impl Send for BufferMemory {}
// SAFETY: as above.
unsafe impl Sync for BufferMemory {}

impl BufferMemory {
    /// The bytes `range` of buffer `id`.
    ///
    /// # Safety
    ///
    /// Buffer `id` must be one a completion handed over and that has not
    /// gone back on the ring, and `range` within what the kernel wrote.
    pub(crate) unsafe fn slice(&self, id: u16, range: std::ops::Range<usize>) -> &[u8] {
        debug_assert!(id < self.count && range.end <= self.size);
        // SAFETY: the caller's contract; `id` and `range` are in bounds.
        unsafe {
            std::slice::from_raw_parts(
                self.memory.base.as_ptr().add(id as usize * self.size + range.start),
                range.len(),
            )
        }
    }
}

/// The ring free buffers go back on: the loop counts what the kernel
/// takes, readers on any thread give buffers back (under the loop's lock).
pub(crate) struct BufferRing {
    ring: Mapping,
    entries: u16,
    /// The tail the loop has written entries up to, published at
    /// [`publish`](Self::publish).
    tail: u16,
    /// How many buffers are on the ring, free for the kernel.
    free: usize,
    /// Receives ended for want of buffers and wait for some: whoever gives
    /// buffers back must wake the loop.
    pub(crate) starving: bool,
    memory: std::sync::Arc<BufferMemory>,
}

// SAFETY: the ring mapping is only written under the lock that holds this
// value, and read by the kernel; the memory is `BufferMemory`'s.
unsafe impl Send for BufferRing {}

impl BufferRing {
    /// Maps `count` buffers of `size` bytes and a ring for them, registers
    /// the ring with `ring` as group [`GROUP`], and puts every buffer on it.
    /// `count` is a power of two, at most 32768.
    pub(crate) fn register(ring: &IoUring, count: u16, size: usize) -> io::Result<Self> {
        debug_assert!(count.is_power_of_two() && count <= 32768);
        let ring_map = Mapping::new(count as usize * std::mem::size_of::<BufRingEntry>())?;
        let memory = Mapping::new(count as usize * size)?;
        // SAFETY: the ring mapping is page-aligned, `count` entries long,
        // and lives as long as this value, which unregisters it on drop
        // only after the ring's last use (the loop drops it after the ring
        // stopped; the ring's own drop unregisters all groups anyway).
        unsafe { ring.submitter().register_buf_ring_with_flags(ring_map.base.as_ptr() as u64, count, GROUP, 0)? };
        let memory = std::sync::Arc::new(BufferMemory { memory, size, count });
        let mut this = Self { ring: ring_map, entries: count, tail: 0, free: 0, starving: false, memory };
        for id in 0..count {
            this.give_back(id);
        }
        this.publish();
        Ok(this)
    }

    /// The buffers' memory, shared with readers.
    pub(crate) fn memory(&self) -> &std::sync::Arc<BufferMemory> {
        &self.memory
    }

    /// Puts buffer `id` back on the ring; the kernel sees it at the next
    /// [`publish`](Self::publish).
    pub(crate) fn give_back(&mut self, id: u16) {
        let mask = self.entries - 1;
        let base = self.ring.base.as_ptr().cast::<BufRingEntry>();
        // SAFETY: the slot index is masked into the ring's `entries`
        // entries; the kernel does not read slots past the published tail,
        // and the loop never has more buffers out than the ring holds.
        let entry = unsafe { &mut *base.add((self.tail & mask) as usize) };
        entry.set_addr(self.memory.memory.base.as_ptr() as u64 + id as u64 * self.memory.size as u64);
        entry.set_len(self.memory.size as u32);
        entry.set_bid(id);
        self.tail = self.tail.wrapping_add(1);
        self.free += 1;
    }

    /// Puts the buffers `ids` back on the ring and makes them visible to
    /// the kernel at once.
    pub(crate) fn give_back_all(&mut self, ids: &[u16]) {
        for &id in ids {
            self.give_back(id);
        }
        self.publish();
    }

    /// Makes the buffers given back so far visible to the kernel.
    pub(crate) fn publish(&mut self) {
        let base = self.ring.base.as_ptr().cast::<BufRingEntry>();
        // SAFETY: the tail field lies inside the first entry of the ring
        // mapping; the kernel reads it, so it is written atomically with
        // release ordering after the entries.
        let tail = unsafe { &*(BufRingEntry::tail(base) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }

    /// Counts a buffer the kernel took (a completion named it).
    pub(crate) fn taken(&mut self) {
        self.free = self.free.saturating_sub(1);
    }

    /// How many buffers are free for the kernel.
    pub(crate) fn free(&self) -> usize {
        self.free
    }
}
