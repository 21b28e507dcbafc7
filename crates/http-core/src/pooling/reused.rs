//! A heap-allocated future whose memory its thread hands out again.
//!
//! An HTTP/1.1 request runs as a boxed future (the application's future,
//! the body feeder, the response) that exists only while the request does,
//! so an idle connection stays small. That box is about 1.8 KB: past
//! glibc's per-thread cache (1,032 bytes), so each request's allocation
//! went through the allocator's bins, and first consolidated its fast bins,
//! a few hundred instructions a request. Each thread now keeps the last
//! few such blocks, by layout, and the next request of the same kind takes
//! one back: a `Vec` push and pop.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

/// The most blocks a thread keeps: a thread runs one task at a time, and
/// requests waiting on their application hold theirs.
const LIMIT: usize = 8;

/// A thread's spare blocks, freed when the thread ends.
struct Blocks(Vec<(Layout, NonNull<u8>)>);

impl Drop for Blocks {
    fn drop(&mut self) {
        for (layout, block) in self.0.drain(..) {
            // SAFETY: each block came from `alloc` with this layout and is
            // owned by the list alone.
            unsafe { dealloc(block.as_ptr(), layout) };
        }
    }
}

thread_local! {
    static BLOCKS: RefCell<Blocks> = const { RefCell::new(Blocks(Vec::new())) };
}

/// A block for `layout` (non-zero size): a spare one, or a new one.
fn take(layout: Layout) -> NonNull<u8> {
    let spare = BLOCKS
        .try_with(|blocks| {
            let mut blocks = blocks.borrow_mut();
            let at = blocks.0.iter().rposition(|(l, _)| *l == layout)?;
            Some(blocks.0.swap_remove(at).1)
        })
        .ok()
        .flatten();
    spare.unwrap_or_else(|| {
        // SAFETY: `layout` has a non-zero size (checked by the caller).
        NonNull::new(unsafe { alloc(layout) }).unwrap_or_else(|| handle_alloc_error(layout))
    })
}

/// Keeps `block` for the next `take`, or frees it.
///
/// # Safety
///
/// `block` came from [`take`] with `layout`, holds no live value, and is not
/// used again by the caller.
unsafe fn give(layout: Layout, block: NonNull<u8>) {
    let kept = BLOCKS
        .try_with(|blocks| {
            let mut blocks = blocks.borrow_mut();
            if blocks.0.len() < LIMIT {
                blocks.0.push((layout, block));
                true
            } else {
                false
            }
        })
        .unwrap_or(false);
    if !kept {
        // SAFETY: the block came from `alloc` with `layout` (the caller's
        // promise) and nothing else owns it.
        unsafe { dealloc(block.as_ptr(), layout) };
    }
}

/// A future on the heap, pinned there for its whole life, like
/// `Pin<Box<F>>`; its memory goes back to the dropping thread's spare
/// blocks instead of to the allocator.
pub(crate) struct Reused<F> {
    value: NonNull<F>,
}

// SAFETY: `Reused` owns its `F` exactly as a `Box<F>` does.
unsafe impl<F: Send> Send for Reused<F> {}
// SAFETY: as above; a shared `Reused` gives no access to its `F` at all.
unsafe impl<F: Sync> Sync for Reused<F> {}

/// Moving a `Reused` moves the pointer, never the future.
impl<F> Unpin for Reused<F> {}

impl<F> Reused<F> {
    /// Makes the value with `make` straight into a block of its own: with
    /// `make` inlined, a large future is built where it will live instead
    /// of on the stack and then copied (1.8 KB for an HTTP/1.1 request).
    #[inline(always)]
    pub(crate) fn with(make: impl FnOnce() -> F) -> Self {
        let layout = Layout::new::<F>();
        let value_at = if layout.size() == 0 { NonNull::dangling() } else { take(layout).cast::<F>() };
        // SAFETY: as in `new`. Should `make` panic, the block is leaked,
        // never read.
        unsafe { value_at.as_ptr().write(make()) };
        Self { value: value_at }
    }

    /// Moves `value` into a block of its own.
    #[cfg(test)]
    pub(crate) fn new(value: F) -> Self {
        Self::with(|| value)
    }
}

impl<F> Drop for Reused<F> {
    fn drop(&mut self) {
        let layout = Layout::new::<F>();
        // SAFETY: `value` holds a live `F` that nothing else owns; it is
        // dropped where it is, as pinning requires.
        unsafe { std::ptr::drop_in_place(self.value.as_ptr()) };
        if layout.size() != 0 {
            // SAFETY: the block came from `take` with this layout and its
            // value was just dropped.
            unsafe { give(layout, self.value.cast()) };
        }
    }
}

impl<F: Future> Future for Reused<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: the future never moves out of its block before it is
        // dropped in place, so pinning it is sound.
        unsafe { Pin::new_unchecked(&mut *self.value.as_ptr()) }.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::task::Waker;

    use super::*;

    fn address<F>(reused: &Reused<F>) -> usize {
        reused.value.as_ptr() as usize
    }

    #[test]
    fn a_dropped_block_serves_the_next_future_of_its_layout() {
        let first = Reused::new([1u64; 200]);
        let at = address(&first);
        drop(first);
        let second = Reused::new([2u64; 200]);
        assert_eq!(address(&second), at, "the same block, handed out again");
        assert_eq!(unsafe { *second.value.as_ptr() }, [2u64; 200]);
        let other = Reused::new([3u8; 16]);
        assert_ne!(address(&other), at, "another layout takes another block");
    }

    #[test]
    fn the_value_is_dropped_and_a_thread_keeps_a_bounded_number() {
        let witness = Rc::new(());
        let held: Vec<_> = (0..LIMIT + 4).map(|_| Reused::new((Rc::clone(&witness), [0u8; 300]))).collect();
        assert_eq!(Rc::strong_count(&witness), LIMIT + 5);
        drop(held);
        assert_eq!(Rc::strong_count(&witness), 1, "every value was dropped");
        assert!(BLOCKS.with(|blocks| blocks.borrow().0.len()) <= LIMIT);
    }

    #[test]
    fn a_future_runs_to_its_end_pinned_in_its_block() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut polls = 0;
        let mut future = Reused::new(std::future::poll_fn(move |cx| {
            polls += 1;
            if polls < 3 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(polls)
            }
        }));
        assert!(Pin::new(&mut future).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut future).poll(&mut cx).is_pending());
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Ready(3));
        let unit = Reused::new(std::future::ready(()));
        drop(unit);
    }
}
