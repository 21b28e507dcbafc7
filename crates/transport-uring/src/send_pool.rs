//! Send queues kept by each thread for its next connections, so a
//! connection that has sent everything holds no send memory while it
//! waits, and a busy one does not allocate per response.

use std::cell::RefCell;

/// The most queues a thread keeps.
const KEPT: usize = 64;
/// A queue larger than this goes back to the allocator instead.
const MAX_KEPT_CAPACITY: usize = 64 * 1024;
/// The capacity of a new queue.
const NEW_CAPACITY: usize = 4096;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty queue: a kept one, or a new one.
pub(crate) fn take() -> Vec<u8> {
    POOL.with(|pool| pool.borrow_mut().pop()).unwrap_or_else(|| Vec::with_capacity(NEW_CAPACITY))
}

/// Gives `queue` back for reuse (or to the allocator).
pub(crate) fn give(mut queue: Vec<u8>) {
    if queue.capacity() == 0 || queue.capacity() > MAX_KEPT_CAPACITY {
        return;
    }
    queue.clear();
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < KEPT {
            pool.push(queue);
        }
    });
}
