//! Memory a thread hands out again instead of asking the allocator: the
//! connection buffers an active connection borrows and an idle one gives
//! back, and the blocks HTTP/1.1 request futures live in.

pub(crate) mod buffers;
pub(crate) mod reused;
