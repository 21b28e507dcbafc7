//! The operations a loop has in its ring, by user data.
//!
//! A completion's user data names a slot and the slot's generation, so a
//! cancel aimed at an op that already ended can never hit the op that
//! took its slot next. Each slot holds what the op needs kept alive (the
//! connection whose send buffer the kernel reads, the listener whose
//! socket it accepts on) until its last completion.

use std::sync::Arc;

use crate::accept::ListenerShared;
use crate::conn::Conn;

/// The user data of ops whose completion nobody waits for (cancels,
/// timer removals, closes).
pub(crate) const IGNORED: u64 = u64::MAX;

/// What an op in the ring is for.
pub(crate) enum Op {
    /// The read on the loop's eventfd.
    Wake,
    /// A listener's multishot accept.
    Accept(Arc<ListenerShared>),
    /// A connection's multishot receive.
    Recv(Arc<Conn>),
    /// A send of a connection's in-flight bytes.
    Send(Arc<Conn>),
    /// The timer that bounds a dropped stream's last send.
    Deadline(Arc<Conn>),
}

struct Slot {
    generation: u32,
    op: Option<Op>,
}

/// The slab of ops in flight.
#[derive(Default)]
pub(crate) struct Ops {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
}

impl Ops {
    /// Stores `op` and returns its user data.
    pub fn insert(&mut self, op: Op) -> u64 {
        self.live += 1;
        let index = match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.generation = slot.generation.wrapping_add(1);
                slot.op = Some(op);
                index
            }
            None => {
                self.slots.push(Slot { generation: 0, op: Some(op) });
                (self.slots.len() - 1) as u32
            }
        };
        user_data(index, self.slots[index as usize].generation)
    }

    /// The op with `user_data`, if it is still in flight.
    pub fn get(&self, user_data: u64) -> Option<&Op> {
        let (index, generation) = split(user_data);
        self.slots.get(index as usize).filter(|slot| slot.generation == generation).and_then(|slot| slot.op.as_ref())
    }

    /// Ends the op with `user_data` (its last completion came).
    pub fn remove(&mut self, user_data: u64) -> Option<Op> {
        let (index, generation) = split(user_data);
        let slot = self.slots.get_mut(index as usize).filter(|slot| slot.generation == generation)?;
        let op = slot.op.take()?;
        self.free.push(index);
        self.live -= 1;
        Some(op)
    }

    /// How many ops are in flight.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Every op in flight, for a loop that stops.
    pub fn drain(&mut self) -> impl Iterator<Item = Op> + '_ {
        self.live = 0;
        self.free.clear();
        self.slots.drain(..).filter_map(|slot| slot.op)
    }
}

fn user_data(index: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(index)
}

fn split(user_data: u64) -> (u32, u32) {
    (user_data as u32, (user_data >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_has_new_user_data() {
        let mut ops = Ops::default();
        let first = ops.insert(Op::Wake);
        assert!(ops.remove(first).is_some());
        let second = ops.insert(Op::Wake);
        assert_ne!(first, second);
        assert!(ops.get(first).is_none(), "the old user data no longer names the slot");
        assert!(ops.remove(first).is_none());
        assert!(ops.get(second).is_some());
        assert_eq!(ops.live(), 1);
        assert_ne!(second, IGNORED);
    }
}
