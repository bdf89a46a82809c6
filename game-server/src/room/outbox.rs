//! What a room has broadcast and not yet sent. With a tick (`--tick-ms N > 0`) broadcasts
//! are gathered here and joined into one [`Bytes`] that every member receives as a single
//! send. When the flush runs is the server's [`FlushBudget`]'s call: at the end of the
//! current loop iteration while flushing is cheap enough, later (at most one tick after
//! the first frame) when the rooms' flushes would take more than their share of the CPU.
//! A room in a cluster waits the whole tick: each of its flushes is also a Redis message.
//! Without a tick nothing waits here.
//!
//! ```text
//!   broadcast ──► pending: [frame][frame][frame]...   (+ the senders' InFlight guards)
//!                                  │ flush (when the budget says, at most one tick after
//!                                  │        the first frame)
//!                                  ▼
//!                 one Bytes ──► member 1, member 2, ... (a zero-copy slice for those who
//!                                                        joined mid-tick)
//! ```
//!
//! The [`InFlight`] guards of the players whose packets caused the pending frames are held
//! until the flush: a player whose output has not left yet is not read further than its
//! listener's in-flight limit, so a flood is slowed by TCP instead of piling up here.

use crate::flush_policy::FlushBudget;
use bytes::{Bytes, BytesMut};
use server_core::InFlight;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// When flushes run, shared by every room of the server; `None`: broadcasts are sent
    /// at once and nothing waits here.
    budget: Option<Arc<FlushBudget>>,
    /// A flush is scheduled. The timer is armed by the first broadcast after a flush, so an
    /// idle room sets no timers at all.
    armed: bool,
    /// Frames broadcast since the last flush.
    pending: Vec<Bytes>,
    /// Total bytes in `pending`: a newcomer's offset into the next flush.
    pending_len: usize,
    /// Guards of the work behind `pending`, released by the flush.
    held: Vec<InFlight>,
    /// In a cluster: the frames of this process's own players, kept apart from those of
    /// other processes (which are in `pending` too) because only they are published.
    own: Option<Vec<Bytes>>,
}

impl Outbox {
    pub(crate) fn new(budget: Option<Arc<FlushBudget>>) -> Self {
        Self {
            budget,
            ..Self::default()
        }
    }

    /// Keeps this process's own frames apart from now on (the room joined a cluster).
    pub(crate) fn keep_own(&mut self) {
        self.own.get_or_insert_with(Vec::new);
    }

    /// The own frames since the last call (empty when not in a cluster).
    pub(crate) fn take_own(&mut self) -> Vec<Bytes> {
        self.own.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Whether broadcasts wait here for a flush (a tick is set).
    pub(crate) fn gathers(&self) -> bool {
        self.budget.is_some()
    }

    /// Bytes waiting: where a member who joins now starts reading the next flush.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending_len
    }

    /// Queues a frame for a room of `members`; if no flush is scheduled yet, books one on
    /// the budget and returns how long it may wait (zero: at the end of this loop
    /// iteration). The caller arms the timer and reports back with [`armed`](Self::armed).
    pub(crate) fn push(&mut self, frame: Bytes, members: usize) -> Option<Duration> {
        if let Some(own) = &mut self.own {
            own.push(frame.clone());
        }
        self.push_from_elsewhere(frame, members)
    }

    /// Queues frames from another process (delivered, not published); returns as
    /// [`push`](Self::push) does.
    pub(crate) fn push_from_elsewhere(&mut self, frame: Bytes, members: usize) -> Option<Duration> {
        self.pending_len += frame.len();
        self.pending.push(frame);
        if self.armed {
            return None;
        }
        let budget = self.budget.as_ref()?;
        if self.own.is_some() {
            // In a cluster every flush is also a Redis message: flushing at once would
            // be a message per packet, so a clustered room waits the whole tick.
            return Some(budget.tick());
        }
        let now = Instant::now();
        Some(budget.reserve(now, members).saturating_duration_since(now))
    }

    pub(crate) fn armed(&mut self) {
        self.armed = true;
    }

    /// Keeps `guard` until the next flush if something is waiting; otherwise releases it.
    pub(crate) fn hold(&mut self, guard: InFlight) {
        if !self.pending.is_empty() {
            self.held.push(guard);
        }
    }

    /// Everything pending as one `Bytes` (`None` if nothing), releasing the held guards.
    pub(crate) fn take(&mut self) -> Option<Bytes> {
        self.armed = false;
        self.held.clear();
        let all = match self.pending.len() {
            0 => return None,
            1 => self.pending.pop()?,
            _ => {
                let mut joined = BytesMut::with_capacity(self.pending_len);
                for frame in self.pending.drain(..) {
                    joined.extend_from_slice(&frame);
                }
                joined.freeze()
            }
        };
        self.pending_len = 0;
        Some(all)
    }
}
