//! A room's view of the players other processes hold in it: who, where, and from which
//! process, kept up to date from the messages on the room's channel. Plain data: the room
//! feeds it messages and turns what it returns into packets for its own members.

use super::wire::{Effect, Header, Position};
use super::ProcessId;
use crate::player::PlayerId;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// The remote players of one room.
#[derive(Debug, Default)]
pub(crate) struct RemotePlayers {
    /// Ordered by id, like the room's own members, so `S_PlayerList` merges the two.
    players: BTreeMap<PlayerId, Remote>,
    /// What was last heard from each process with a stream in this room.
    origins: HashMap<ProcessId, Origin>,
}

#[derive(Debug, Clone, Copy)]
struct Remote {
    origin: ProcessId,
    pos: Position,
}

#[derive(Debug, Clone, Copy)]
struct Origin {
    /// Last sequence number received; the next message should start right after it.
    last_seq: u64,
    /// When a message last came, for telling a dead process from a quiet one.
    last_heard: Instant,
}

/// Whether a message followed the previous one of its origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Continuity {
    /// The next number, the first message of an origin, or a new stream (a room reopened
    /// there starts again at 1).
    InOrder,
    /// Messages in between were lost (Redis was away, or a queue was full): this view may
    /// be stale until the origin's next snapshot.
    Gap { expected: u64, got: u64 },
}

impl RemotePlayers {
    pub(crate) fn len(&self) -> usize {
        self.players.len()
    }

    /// Every remote player with its position, by id.
    pub(crate) fn positions(&self) -> impl Iterator<Item = (PlayerId, Position)> + '_ {
        self.players.iter().map(|(&id, r)| (id, r.pos))
    }

    /// Notes a message's sequence numbers; says whether any were skipped.
    pub(crate) fn note(&mut self, header: &Header, now: Instant) -> Continuity {
        let fresh = Origin {
            last_seq: header.last_seq,
            last_heard: now,
        };
        match self.origins.insert(header.origin, fresh) {
            Some(before) if header.first_seq != 1 && header.first_seq != before.last_seq + 1 => {
                Continuity::Gap {
                    expected: before.last_seq + 1,
                    got: header.first_seq,
                }
            }
            _ => Continuity::InOrder,
        }
    }

    /// Applies the frames of a batch from `origin`.
    pub(crate) fn apply_batch(&mut self, origin: ProcessId, effects: &[Effect]) {
        for effect in effects {
            match *effect {
                Effect::Entered(id, pos) | Effect::Moved(id, pos) => {
                    self.players.insert(id, Remote { origin, pos });
                }
                Effect::Left(id) => {
                    self.players.remove(&id);
                }
            }
        }
    }

    /// Replaces what `origin` holds in the room with its snapshot; returns the changes the
    /// room's own members have not seen (enters, moves, leaves), to be broadcast to them.
    pub(crate) fn apply_snapshot(
        &mut self,
        origin: ProcessId,
        players: &[(PlayerId, Position)],
    ) -> Vec<Effect> {
        let mut changes = Vec::new();
        let listed: HashMap<PlayerId, Position> = players.iter().copied().collect();
        self.players.retain(|&id, remote| {
            let keep = remote.origin != origin || listed.contains_key(&id);
            if !keep {
                changes.push(Effect::Left(id));
            }
            keep
        });
        for &(id, pos) in players {
            match self.players.insert(id, Remote { origin, pos }) {
                None => changes.push(Effect::Entered(id, pos)),
                Some(before) if !same_place(before.pos, pos) => {
                    changes.push(Effect::Moved(id, pos));
                }
                Some(_) => {}
            }
        }
        changes
    }

    /// Forgets the players of every process that is not `alive` and has been silent here
    /// for `silent_for`; returns their ids, to be announced as leaving.
    pub(crate) fn forget_gone(
        &mut self,
        alive: impl Fn(ProcessId) -> bool,
        silent_for: Duration,
        now: Instant,
    ) -> Vec<PlayerId> {
        let gone = |origin: &ProcessId, o: &Origin| {
            !alive(*origin) && now.saturating_duration_since(o.last_heard) >= silent_for
        };
        let dead: Vec<ProcessId> = self
            .origins
            .iter()
            .filter(|(origin, o)| gone(origin, o))
            .map(|(&origin, _)| origin)
            .collect();
        let mut left = Vec::new();
        for origin in &dead {
            self.origins.remove(origin);
        }
        if dead.is_empty() {
            return left;
        }
        self.players.retain(|&id, remote| {
            let keep = !dead.contains(&remote.origin);
            if !keep {
                left.push(id);
            }
            keep
        });
        left
    }
}

/// Positions compared bit for bit (a NaN a client sent stays the same NaN).
fn same_place(a: Position, b: Position) -> bool {
    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lobby::RoomId;

    const A: ProcessId = ProcessId(0xA);
    const B: ProcessId = ProcessId(0xB);

    fn header(origin: ProcessId, first_seq: u64, last_seq: u64) -> Header {
        Header {
            origin,
            room: RoomId(1),
            first_seq,
            last_seq,
        }
    }

    #[test]
    fn batches_follow_enters_moves_and_leaves() {
        let mut view = RemotePlayers::default();
        view.apply_batch(
            A,
            &[
                Effect::Entered(1, [0.0; 3]),
                Effect::Entered(2, [0.0; 3]),
                Effect::Moved(1, [5.0, 0.0, 1.0]),
                Effect::Left(2),
            ],
        );
        assert_eq!(view.positions().collect::<Vec<_>>(), [(1, [5.0, 0.0, 1.0])]);
    }

    #[test]
    fn gaps_are_noticed_and_a_new_stream_is_not_one() {
        let mut view = RemotePlayers::default();
        let now = Instant::now();
        assert_eq!(view.note(&header(A, 1, 3), now), Continuity::InOrder);
        assert_eq!(view.note(&header(A, 4, 4), now), Continuity::InOrder);
        assert_eq!(
            view.note(&header(A, 7, 9), now),
            Continuity::Gap {
                expected: 5,
                got: 7
            }
        );
        assert_eq!(view.note(&header(A, 1, 1), now), Continuity::InOrder);
        assert_eq!(
            view.note(&header(B, 40, 40), now),
            Continuity::InOrder,
            "the first message of an origin"
        );
    }

    #[test]
    fn a_snapshot_replaces_its_origins_players_and_says_what_changed() {
        let mut view = RemotePlayers::default();
        view.apply_batch(
            A,
            &[Effect::Entered(1, [0.0; 3]), Effect::Entered(2, [0.0; 3])],
        );
        view.apply_batch(B, &[Effect::Entered(3, [0.0; 3])]);
        let changes = view.apply_snapshot(A, &[(2, [1.0, 0.0, 0.0]), (4, [2.0, 0.0, 0.0])]);
        assert_eq!(
            changes,
            [
                Effect::Left(1),
                Effect::Moved(2, [1.0, 0.0, 0.0]),
                Effect::Entered(4, [2.0, 0.0, 0.0]),
            ]
        );
        let ids: Vec<_> = view.positions().map(|(id, _)| id).collect();
        assert_eq!(ids, [2, 3, 4], "B's player is untouched");
        assert!(view
            .apply_snapshot(A, &[(2, [1.0, 0.0, 0.0]), (4, [2.0, 0.0, 0.0])])
            .is_empty());
    }

    #[test]
    fn gone_processes_lose_their_players_once_silent_long_enough() {
        let mut view = RemotePlayers::default();
        let t0 = Instant::now();
        view.note(&header(A, 1, 1), t0);
        view.note(&header(B, 1, 1), t0);
        view.apply_batch(A, &[Effect::Entered(1, [0.0; 3])]);
        view.apply_batch(B, &[Effect::Entered(2, [0.0; 3])]);
        let silence = Duration::from_secs(5);
        let only_b = |p: ProcessId| p == B;
        assert!(
            view.forget_gone(only_b, silence, t0).is_empty(),
            "A spoke just now"
        );
        let later = t0 + silence;
        assert_eq!(view.forget_gone(only_b, silence, later), [1]);
        assert_eq!(view.len(), 1);
        assert!(view.forget_gone(only_b, silence, later).is_empty());
    }
}
