//! What a room has broadcast and not yet sent. With a tick (`--tick-ms N > 0`, the course's
//! `Flush` every 250 ms) broadcasts are gathered here and, once per tick, joined into one
//! [`Bytes`] that every member receives as a single send; without a tick nothing waits here.
//!
//! ```text
//!   broadcast ──► pending: [frame][frame][frame]...   (+ the senders' InFlight guards)
//!                                  │ flush (at most one tick after the first frame)
//!                                  ▼
//!                 one Bytes ──► member 1, member 2, ... (a zero-copy slice for those who
//!                                                        joined mid-tick)
//! ```
//!
//! The [`InFlight`] guards of the players whose packets caused the pending frames are held
//! until the flush: a player whose output has not left yet is not read further than its
//! listener's in-flight limit, so a flood is slowed by TCP instead of piling up here.

use bytes::{Bytes, BytesMut};
use server_core::InFlight;
use std::time::Duration;

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Flush interval; `None`: broadcasts are sent at once and nothing waits here.
    tick: Option<Duration>,
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
    pub(crate) fn new(tick: Option<Duration>) -> Self {
        Self {
            tick,
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

    pub(crate) fn tick(&self) -> Option<Duration> {
        self.tick
    }

    /// Bytes waiting: where a member who joins now starts reading the next flush.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending_len
    }

    /// Queues a frame; returns the delay after which a flush must run if none is scheduled
    /// yet (the caller arms the timer and reports back with [`armed`](Self::armed)).
    pub(crate) fn push(&mut self, frame: Bytes) -> Option<Duration> {
        if let Some(own) = &mut self.own {
            own.push(frame.clone());
        }
        self.push_from_elsewhere(frame)
    }

    /// Queues frames from another process (delivered, not published); returns as
    /// [`push`](Self::push) does.
    pub(crate) fn push_from_elsewhere(&mut self, frame: Bytes) -> Option<Duration> {
        self.pending_len += frame.len();
        self.pending.push(frame);
        if self.armed {
            None
        } else {
            self.tick
        }
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
        self.pending.clear();
        self.pending_len = 0;
        Some(all)
    }
}
