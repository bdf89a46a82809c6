//! Player ids: a process-local counter for a single process, or blocks of ids from one
//! Redis counter (`INCRBY`) in a cluster, so ids are unique cluster-wide without a Redis
//! round trip per player. A spare block is always asked for before the current one runs
//! out; a gone process's unused ids are simply never handed out again.

use super::control::Command;
use crate::player::PlayerId;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Mutex, PoisonError};

/// Ids taken from Redis at a time.
pub(crate) const BLOCK: i64 = 1000;

/// Where new players get their ids.
pub(crate) enum PlayerIds {
    /// One process: 1, 2, 3, ...
    Local(AtomicI32),
    /// A cluster: blocks from Redis.
    Cluster(std::sync::Arc<IdBlocks>),
}

impl PlayerIds {
    /// Ids 1, 2, 3, ... of a single process.
    pub(crate) fn local() -> Self {
        Self::Local(AtomicI32::new(1))
    }

    /// The next id; `None` when a cluster process has used up its ids and Redis has not
    /// given it more (it is away): the player is turned away.
    pub(crate) fn next(&self) -> Option<PlayerId> {
        match self {
            Self::Local(next) => Some(next.fetch_add(1, Ordering::Relaxed)),
            Self::Cluster(blocks) => blocks.take(),
        }
    }
}

/// The current block, a spare one, and the way to ask for more.
pub(crate) struct IdBlocks {
    state: Mutex<State>,
    control: Sender<Command>,
}

#[derive(Debug, Default)]
struct State {
    /// Next id to hand out and the end of its block (exclusive).
    next: i64,
    end: i64,
    spare: Option<(i64, i64)>,
    /// A block was asked for and has not come yet.
    asked: bool,
    /// The highest id of any block given to this process (the floor it keeps in Redis).
    highest: i64,
}

impl IdBlocks {
    pub(crate) fn new(control: Sender<Command>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            control,
        }
    }

    fn take(&self) -> Option<PlayerId> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.next >= s.end {
            if let Some((next, end)) = s.spare.take() {
                (s.next, s.end) = (next, end);
            }
        }
        let id = (s.next < s.end).then(|| {
            s.next += 1;
            s.next - 1
        });
        if s.spare.is_none() && !s.asked {
            s.asked = true;
            let _ = self.control.send(Command::RefillIds);
        }
        id.and_then(|id| PlayerId::try_from(id).ok())
    }

    /// Redis gave the block `first..end` (called by the control thread).
    pub(crate) fn add(&self, first: i64, end: i64) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.asked = false;
        s.highest = s.highest.max(end - 1);
        if s.next >= s.end {
            (s.next, s.end) = (first, end);
        } else {
            s.spare = Some((first, end));
        }
    }

    /// Whether a spare block is wanted (none in hand and none asked for).
    pub(crate) fn wants_spare(&self) -> bool {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.spare.is_none()
    }

    /// A refill could not be made (Redis away): the next take asks again.
    pub(crate) fn refill_failed(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .asked = false;
    }

    /// The highest id this process was given.
    pub(crate) fn highest(&self) -> i64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .highest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn blocks_are_used_in_order_and_a_spare_is_asked_for_early() {
        let (tx, rx) = mpsc::channel();
        let blocks = IdBlocks::new(tx);
        assert_eq!(blocks.take(), None, "nothing yet");
        assert!(matches!(rx.try_recv(), Ok(Command::RefillIds)));
        blocks.add(1, 3);
        assert_eq!(blocks.take(), Some(1));
        assert!(matches!(rx.try_recv(), Ok(Command::RefillIds)), "a spare");
        blocks.add(101, 103);
        assert_eq!(blocks.take(), Some(2));
        assert!(rx.try_recv().is_err(), "the spare is there");
        assert_eq!(blocks.take(), Some(101));
        assert!(matches!(rx.try_recv(), Ok(Command::RefillIds)));
        assert_eq!(blocks.take(), Some(102));
        assert_eq!(blocks.take(), None, "used up, the refill has not come");
        assert_eq!(blocks.highest(), 102);
    }

    #[test]
    fn local_ids_count_from_one() {
        let ids = PlayerIds::local();
        assert_eq!((ids.next(), ids.next()), (Some(1), Some(2)));
    }
}
