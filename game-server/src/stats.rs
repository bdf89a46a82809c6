//! The numbers of a running server, read in one place: [`GameServer::stats`], the stats
//! line of the binary and `/metrics` all take them from [`StatsSource::snapshot`], so they
//! cannot disagree.
//!
//! [`GameServer::stats`]: crate::GameServer::stats

use crate::cluster::{ClusterCounters, ClusterStats};
use server_core::{Listener, LoopStatus, ServiceHandle, ServiceStats};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counters of a running server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GameStats {
    /// server-core's counters: sessions, disconnects, packets and bytes in and out, loops,
    /// JobQueue lag.
    pub service: ServiceStats,
    /// Rooms open now.
    pub rooms: usize,
    /// Players in a room now (connected players that have not left).
    pub players: usize,
    /// Open rooms by how many players they hold.
    pub room_sizes: RoomSizeCounts,
    /// The cluster's counters, with `--cluster` (docs/scaling.md).
    pub cluster: Option<ClusterStats>,
}

/// Upper bounds of the room-size buckets: rooms of at most 0, 1, 2, 5, ... players, and a
/// last bucket for anything larger. One 1-2-5 series covers a duel and a 10,000-player
/// single room alike.
pub const ROOM_SIZE_BOUNDS: [usize; 14] = [
    0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000,
];

/// Buckets of [`RoomSizeCounts`]: one per bound plus the one above them all.
const ROOM_SIZE_BUCKETS: usize = ROOM_SIZE_BOUNDS.len() + 1;

/// Open rooms by size, in the buckets of [`ROOM_SIZE_BOUNDS`] (from
/// [`GameStats::room_sizes`]): the shape of a Prometheus histogram, but of a level that goes
/// up and down rather than of observations.
///
/// # Examples
/// ```
/// let sizes = game_server::RoomSizeCounts::default();
/// assert_eq!(sizes.rooms(), 0);
/// assert_eq!(sizes.cumulative().last(), Some((None, 0)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomSizeCounts([u64; ROOM_SIZE_BUCKETS]);

impl RoomSizeCounts {
    /// `(upper bound, rooms with at most that many players)` for every bound of
    /// [`ROOM_SIZE_BOUNDS`] in increasing order, then `(None, all rooms)`.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<usize>, u64)> + '_ {
        let bounds = ROOM_SIZE_BOUNDS.iter().copied().map(Some).chain([None]);
        let mut running = 0;
        bounds.zip(self.0).map(move |(bound, n)| {
            running += n;
            (bound, running)
        })
    }

    /// Rooms open, over every bucket.
    #[must_use]
    pub fn rooms(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// Rooms by size, kept by whoever knows room sizes (the lobby) and read at scrape time:
/// one atomic per bucket, so neither side takes a lock.
///
/// The keeper makes exactly these calls, in the order the changes happen:
/// [`room_opened`](Self::room_opened) when a room starts (empty),
/// [`room_resized`](Self::room_resized) when its player count goes from `a` to `b`, and
/// [`room_closed`](Self::room_closed) with its last player count when it goes.
#[derive(Debug, Default)]
pub(crate) struct RoomSizes {
    /// Rooms per bucket (not cumulative).
    buckets: [AtomicUsize; ROOM_SIZE_BUCKETS],
}

impl RoomSizes {
    /// A room opened, with no player yet.
    pub(crate) fn room_opened(&self) {
        self.add(0);
    }

    /// A room's player count went from `from` to `to`.
    pub(crate) fn room_resized(&self, from: usize, to: usize) {
        let (old, new) = (bucket_of(from), bucket_of(to));
        if old != new {
            self.buckets[new].fetch_add(1, Ordering::Relaxed);
            self.buckets[old].fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A room holding `players` closed.
    pub(crate) fn room_closed(&self, players: usize) {
        self.buckets[bucket_of(players)].fetch_sub(1, Ordering::Relaxed);
    }

    fn add(&self, players: usize) {
        self.buckets[bucket_of(players)].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now. Each bucket is read on its own, so a scrape during a change may see
    /// a room in two buckets or none; a level shown as such heals at the next scrape.
    pub(crate) fn counts(&self) -> RoomSizeCounts {
        let mut counts = [0; ROOM_SIZE_BUCKETS];
        for (count, bucket) in counts.iter_mut().zip(&self.buckets) {
            // Never below zero when the keeper reports in order; a keeper that closes a
            // room it never opened must not show up as 2^64 rooms.
            let n = bucket.load(Ordering::Relaxed);
            *count = if n > usize::MAX / 2 { 0 } else { n as u64 };
        }
        RoomSizeCounts(counts)
    }
}

/// The bucket of a room with `players` players: the first bound at or above it.
fn bucket_of(players: usize) -> usize {
    ROOM_SIZE_BOUNDS
        .iter()
        .position(|&bound| players <= bound)
        .unwrap_or(ROOM_SIZE_BOUNDS.len())
}

/// Handles to every counter of a server, cheap to clone into the metrics endpoint.
#[derive(Clone)]
pub(crate) struct StatsSource {
    pub(crate) service: ServiceHandle,
    /// The game listener: open sessions, its limit, whether it still accepts.
    pub(crate) listener: Listener,
    /// Rooms by size, kept by the lobby.
    pub(crate) room_sizes: Arc<RoomSizes>,
    /// Players in rooms, kept by the rooms.
    pub(crate) players: Arc<AtomicUsize>,
    /// The cluster's counters, with `--cluster`.
    pub(crate) cluster: Option<Arc<ClusterCounters>>,
}

impl StatsSource {
    /// Every counter, now.
    pub(crate) fn snapshot(&self) -> GameStats {
        let room_sizes = self.room_sizes.counts();
        GameStats {
            service: self.service.stats(),
            rooms: usize::try_from(room_sizes.rooms()).unwrap_or(usize::MAX),
            players: self.players.load(Ordering::Relaxed),
            room_sizes,
            cluster: self.cluster.as_ref().map(|c| c.snapshot()),
        }
    }

    /// The state of every I/O thread, now.
    pub(crate) fn loops(&self) -> Vec<LoopStatus> {
        self.service.loop_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_move_between_size_buckets() {
        let sizes = RoomSizes::default();
        sizes.room_opened();
        sizes.room_opened();
        for n in 0..3 {
            sizes.room_resized(n, n + 1); // the first room fills to 3
        }
        sizes.room_resized(0, 1);
        let counts = sizes.counts();
        assert_eq!(counts.rooms(), 2);
        let cumulative: Vec<_> = counts.cumulative().take(4).collect();
        assert_eq!(
            cumulative,
            [(Some(0), 0), (Some(1), 1), (Some(2), 1), (Some(5), 2)]
        );
        sizes.room_resized(3, 20_000);
        assert_eq!(sizes.counts().cumulative().nth(13), Some((Some(10_000), 1)));
        assert_eq!(sizes.counts().cumulative().last(), Some((None, 2)));
        sizes.room_closed(20_000);
        sizes.room_closed(1);
        assert_eq!(sizes.counts(), RoomSizeCounts::default());
    }
}
