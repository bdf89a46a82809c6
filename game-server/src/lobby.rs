//! The room directory: which rooms exist, how full they are, and who sits where.
//!
//! The lobby is itself a [`JobQueue<Lobby>`](server_core::JobQueue), so it needs no lock
//! either. A newcomer's handler pushes a job that calls `Lobby::seat`: the lobby picks the
//! first room with space (opening one when all are full, or always the one room when the
//! capacity is 0) and hands back the room's queue. When someone leaves, the room pushes
//! [`Lobby::left`]; a room other than the first that becomes empty is closed: the lobby
//! drops its handle and the room's state is freed once the last player handle is gone.
//!
//! Which room has space is decided by `Seating`, plain data with no queues, so it is
//! unit-tested on its own; it also keeps the rooms-by-size counts of the stats, since
//! every head count changes there.

use crate::cluster::{ClusterSeats, LobbyLink, ProcessId, SeatAnswer};
use crate::flush_policy::{FlushBudget, WRITE_COST};
use crate::player::PlayerId;
use crate::room::{GameRoom, RoomJob};
use crate::stats::RoomSizes;
use log::{debug, warn};
use server_core::{JobQueue, ServiceHandle, WeakJobQueue};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

/// A room's number: 1 for the first room, then 2, 3, ... (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoomId(pub u32);

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The head counts of the open rooms and the rule for placing a newcomer.
#[derive(Debug)]
pub(crate) struct Seating {
    /// Players per room; 0 = one room without limit.
    capacity: usize,
    /// Players seated in each open room, by id, so the oldest room with space comes first.
    rooms: BTreeMap<RoomId, usize>,
    next_room: u32,
    /// Every head count change, mirrored for the stats (read without a job).
    sizes: Arc<RoomSizes>,
}

/// Where a newcomer goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    /// An open room with space.
    Existing(RoomId),
    /// Every room is full: this new one (already counted as open).
    Opened(RoomId),
}

impl Seating {
    /// No room yet; every change of a head count is reported to `sizes`.
    pub(crate) fn new(capacity: usize, sizes: Arc<RoomSizes>) -> Self {
        Self {
            capacity,
            rooms: BTreeMap::new(),
            next_room: 1,
            sizes,
        }
    }

    /// Opens a room (the first one is opened at start and never closed).
    pub(crate) fn open(&mut self) -> RoomId {
        let id = RoomId(self.next_room);
        self.next_room += 1;
        self.rooms.insert(id, 0);
        self.sizes.room_opened();
        id
    }

    /// Places a newcomer and counts it in its room.
    pub(crate) fn seat(&mut self) -> Placement {
        let capacity = self.capacity;
        let with_space = self
            .rooms
            .iter_mut()
            .find(|(_, players)| capacity == 0 || **players < capacity);
        match with_space {
            Some((&id, players)) => {
                *players += 1;
                self.sizes.room_resized(*players - 1, *players);
                Placement::Existing(id)
            }
            None => {
                let id = self.open();
                self.rooms.insert(id, 1);
                self.sizes.room_resized(0, 1);
                Placement::Opened(id)
            }
        }
    }

    /// Counts a newcomer in `room`, chosen elsewhere (by the cluster); returns whether the
    /// room had to be opened here.
    pub(crate) fn seat_in(&mut self, room: RoomId) -> bool {
        self.next_room = self.next_room.max(room.0 + 1);
        let opened = !self.rooms.contains_key(&room);
        if opened {
            self.sizes.room_opened();
        }
        let players = self.rooms.entry(room).or_insert(0);
        *players += 1;
        self.sizes.room_resized(*players - 1, *players);
        opened
    }

    /// The first open room with space for one more, if any (without seating anyone).
    pub(crate) fn with_space(&self) -> Option<RoomId> {
        let capacity = self.capacity;
        self.rooms
            .iter()
            .find(|(_, players)| capacity == 0 || **players < capacity)
            .map(|(&id, _)| id)
    }

    /// Someone left `room`; returns true if the room is now empty and closed (never the
    /// first room).
    pub(crate) fn left(&mut self, room: RoomId) -> bool {
        let first = self.rooms.keys().next().copied();
        let Some(players) = self.rooms.get_mut(&room) else {
            return false;
        };
        let was = *players;
        *players = was.saturating_sub(1);
        self.sizes.room_resized(was, *players);
        if *players == 0 && first != Some(room) {
            self.rooms.remove(&room);
            self.sizes.room_closed(0);
            return true;
        }
        false
    }

    /// Closes every room (at shutdown).
    pub(crate) fn close_all(&mut self) {
        for players in std::mem::take(&mut self.rooms).into_values() {
            self.sizes.room_closed(players);
        }
    }

    pub(crate) fn open_rooms(&self) -> usize {
        self.rooms.len()
    }
}

/// What to do once a player is seated: it gets its room's queue, or `None` when it cannot
/// be seated (shutting down, or no room has space while Redis is away).
pub(crate) type Seated = Box<dyn FnOnce(Option<JobQueue<GameRoom>>) + Send>;

/// The room directory, owned by a [`JobQueue<Lobby>`](server_core::JobQueue).
pub struct Lobby {
    service: ServiceHandle,
    /// The lobby's own queue, which rooms report leaves to.
    me: Option<WeakJobQueue<Lobby>>,
    seating: Seating,
    /// The flush budget every room shares (its tick bounds the wait); `None` = rooms send
    /// at once.
    flush: Option<Arc<FlushBudget>>,
    rooms: HashMap<RoomId, JobQueue<GameRoom>>,
    /// The room of every player seated and not yet reported gone.
    seats: HashMap<PlayerId, RoomId>,
    /// Players in rooms, updated by the rooms.
    players: Arc<AtomicUsize>,
    /// Set by [`close`](Self::close): nobody is seated any more.
    closed: bool,
    /// In a cluster: seats are decided with the other processes (`None`: one process).
    cluster: Option<ClusterSeats>,
}

impl Lobby {
    /// Starts the lobby's queue with its first room. `capacity` 0 means one room without
    /// limit; `tick` is the longest a room's broadcast waits for its flush (`None`: send
    /// at once); `cluster` shares the rooms with other processes.
    pub(crate) fn start(
        service: &ServiceHandle,
        capacity: usize,
        tick: Option<Duration>,
        room_sizes: Arc<RoomSizes>,
        players: Arc<AtomicUsize>,
        cluster: Option<LobbyLink>,
    ) -> JobQueue<Lobby> {
        let first_peers = cluster
            .as_ref()
            .map(|c| c.room_one_peers.clone())
            .unwrap_or_default();
        let lobby = JobQueue::new(
            service,
            Lobby {
                service: service.clone(),
                me: None,
                seating: Seating::new(capacity, room_sizes),
                flush: tick.map(|tick| {
                    let service = service.clone();
                    Arc::new(FlushBudget::with_write_cost(tick, move || {
                        service.write_cost().unwrap_or(WRITE_COST)
                    }))
                }),
                rooms: HashMap::new(),
                seats: HashMap::new(),
                players,
                closed: false,
                cluster: cluster.map(ClusterSeats::new),
            },
        );
        let me = lobby.downgrade();
        lobby.push(move |lobby| {
            lobby.me = Some(me);
            let first = lobby.seating.open();
            lobby.open_room(first, &first_peers);
        });
        lobby
    }

    /// Rooms open now.
    #[must_use]
    pub fn rooms(&self) -> usize {
        self.rooms.len()
    }

    /// Seats player `player_id`: picks its room (opening one if every room is full) and
    /// gives `then` the room's queue, or `None` once the lobby is closed (shutting down).
    /// In a cluster the room is picked with the other processes and `then` runs when the
    /// answer comes and the room is ready for newcomers.
    pub(crate) fn seat(&mut self, player_id: PlayerId, then: Seated) {
        if self.closed {
            return then(None);
        }
        if let Some(cluster) = &mut self.cluster {
            return cluster.ask(player_id, then);
        }
        let room = match self.seating.seat() {
            Placement::Existing(room) => room,
            Placement::Opened(room) => {
                self.open_room(room, &[]);
                room
            }
        };
        self.seats.insert(player_id, room);
        then(self.rooms.get(&room).cloned());
    }

    /// The cluster's answer to the seat request of `player_id`.
    pub(crate) fn cluster_seated(&mut self, player_id: PlayerId, answer: SeatAnswer) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let Some(then) = cluster.answered(player_id) else {
            // It left meanwhile: give the seat back.
            if let SeatAnswer::Room { room, .. } = answer {
                cluster.link.left(room);
            }
            return;
        };
        if self.closed {
            return then(None);
        }
        let (room, peers) = match answer {
            SeatAnswer::Room { room, peers } => (room, peers),
            SeatAnswer::Unreachable => match self.seating.with_space() {
                Some(room) => {
                    cluster.link.seated_here(room);
                    (room, Vec::new())
                }
                None => {
                    if let Some(left_out) = cluster.log_refusal() {
                        warn!(
                            "lobby: Redis is away and every room open here is full;                              player {player_id} turned away ({left_out} more since the last report)"
                        );
                    }
                    return then(None);
                }
            },
        };
        if self.seating.seat_in(room) {
            self.open_room(room, &peers);
        }
        self.seats.insert(player_id, room);
        match &mut self.cluster {
            Some(cluster) if !cluster.is_ready(room) => cluster.wait(room, player_id, then),
            _ => then(self.rooms.get(&room).cloned()),
        }
    }

    /// A room opened in a cluster has heard from the processes already in it: the players
    /// waiting for it enter.
    pub(crate) fn room_ready(&mut self, room: RoomId) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let waiting = cluster.ready(room);
        let queue = self.rooms.get(&room);
        for (_, then) in waiting {
            then(queue.cloned());
        }
    }

    /// The processes alive at the cluster's last heartbeat, for every room (see
    /// [`GameRoom::cluster_peers`]).
    pub(crate) fn cluster_peers(&mut self, live: &Arc<HashSet<ProcessId>>, grace: bool) {
        for room in self.rooms.values() {
            let live = Arc::clone(live);
            room.push(move |room| room.cluster_peers(&live, grace));
        }
    }

    /// A player who leaves before its handler learnt its room: the jobs it made meanwhile
    /// and then its leave go to the room it was seated in, in that order.
    pub(crate) fn release(&mut self, player_id: PlayerId, early: Vec<RoomJob>) {
        if let Some(cluster) = &mut self.cluster {
            if cluster.forget_asking(player_id) {
                return;
            }
            if let Some(room) = cluster.forget_waiting(player_id) {
                // Seated but never entered: only the head count changes.
                return self.left(room, player_id);
            }
        }
        let room = self.seats.get(&player_id).and_then(|id| self.rooms.get(id));
        match room {
            Some(room) => {
                for job in early {
                    room.push(job);
                }
                room.push(move |room| room.leave(player_id));
            }
            None => debug!("lobby: player {player_id} left before it was seated"),
        }
    }

    /// A room reports that `player_id` left it. A room other than the first that is now
    /// empty is closed.
    pub fn left(&mut self, room: RoomId, player_id: PlayerId) {
        self.seats.remove(&player_id);
        if let Some(cluster) = &self.cluster {
            cluster.link.left(room);
        }
        if self.seating.left(room) {
            self.rooms.remove(&room);
            if let Some(cluster) = &mut self.cluster {
                cluster.closed(room);
            }
            debug!(
                "lobby: room {room} is empty and closed ({} open)",
                self.rooms.len()
            );
        }
    }

    /// Drops every room handle (rooms hold a lobby handle to report leaves, so this breaks
    /// the cycle at shutdown); nobody is seated afterwards.
    pub(crate) fn close(&mut self) {
        self.closed = true;
        if let Some(cluster) = &mut self.cluster {
            for then in cluster.drain() {
                then(None);
            }
            // The other processes see this one's players leave now, not a TTL later.
            for room in self.rooms.values() {
                room.push(GameRoom::cluster_goodbye);
            }
        }
        self.rooms.clear();
        self.seating.close_all();
        self.seats.clear();
    }

    /// Opens room `id` here; in a cluster it subscribes to the room's channel and is ready
    /// once `peers` (the processes with players in it) sent their snapshots.
    fn open_room(&mut self, id: RoomId, peers: &[ProcessId]) {
        let mut room = GameRoom::new(id, self.flush.clone(), Arc::clone(&self.players));
        if let Some(cluster) = &self.cluster {
            room.join_cluster(Arc::clone(&cluster.link.bus));
        }
        let queue = JobQueue::new(&self.service, room);
        let me = queue.downgrade();
        if let Some(lobby) = self.me.as_ref().and_then(WeakJobQueue::upgrade) {
            queue.push(move |room| room.attach(me, lobby));
        }
        if let Some(cluster) = &mut self.cluster {
            cluster.opened(id);
            cluster
                .link
                .routes
                .open(id, queue.downgrade(), peers.to_vec());
        }
        self.rooms.insert(id, queue);
        debug_assert_eq!(self.rooms.len(), self.seating.open_rooms());
        debug!("lobby: room {id} opened ({} open)", self.rooms.len());
    }
}

impl fmt::Debug for Lobby {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lobby")
            .field("seating", &self.seating)
            .field("tick", &self.flush.as_ref().map(|f| f.tick()))
            .field("seated", &self.seats.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RoomSizeCounts;

    #[test]
    fn rooms_fill_in_order_and_open_when_all_are_full() {
        let mut seating = Seating::new(2, Arc::default());
        assert_eq!(seating.open(), RoomId(1));
        assert_eq!(seating.seat(), Placement::Existing(RoomId(1)));
        assert_eq!(seating.seat(), Placement::Existing(RoomId(1)));
        assert_eq!(seating.seat(), Placement::Opened(RoomId(2)));
        assert_eq!(seating.seat(), Placement::Existing(RoomId(2)));
        assert_eq!(seating.seat(), Placement::Opened(RoomId(3)));
        // A seat frees up in room 1: the next newcomer goes there, the oldest with space.
        assert!(!seating.left(RoomId(1)));
        assert_eq!(seating.seat(), Placement::Existing(RoomId(1)));
    }

    #[test]
    fn empty_rooms_close_except_the_first() {
        let mut seating = Seating::new(1, Arc::default());
        seating.open();
        assert_eq!(seating.seat(), Placement::Existing(RoomId(1)));
        assert_eq!(seating.seat(), Placement::Opened(RoomId(2)));
        assert!(seating.left(RoomId(2)), "room 2 is empty: closed");
        assert!(!seating.left(RoomId(1)), "the first room stays");
        assert_eq!(seating.open_rooms(), 1);
        assert_eq!(seating.seat(), Placement::Existing(RoomId(1)));
        assert_eq!(
            seating.seat(),
            Placement::Opened(RoomId(3)),
            "ids are not reused"
        );
    }

    #[test]
    fn capacity_zero_is_one_room_without_limit() {
        let sizes = Arc::new(RoomSizes::default());
        let mut seating = Seating::new(0, Arc::clone(&sizes));
        seating.open();
        for _ in 0..10_000 {
            assert_eq!(seating.seat(), Placement::Existing(RoomId(1)));
        }
        assert_eq!(seating.open_rooms(), 1);
        let by_size: Vec<_> = sizes.counts().cumulative().skip(12).collect();
        assert_eq!(by_size, [(Some(5_000), 0), (Some(10_000), 1), (None, 1)]);
    }

    #[test]
    fn room_sizes_follow_every_head_count() {
        let sizes = Arc::new(RoomSizes::default());
        let mut seating = Seating::new(2, Arc::clone(&sizes));
        seating.open();
        let by_size = || -> Vec<_> { sizes.counts().cumulative().take(3).collect() };
        assert_eq!(by_size(), [(Some(0), 1), (Some(1), 1), (Some(2), 1)]);
        for _ in 0..3 {
            seating.seat(); // room 1 full, room 2 with one
        }
        assert_eq!(by_size(), [(Some(0), 0), (Some(1), 1), (Some(2), 2)]);
        seating.left(RoomId(1));
        seating.left(RoomId(2)); // empty: closed
        assert_eq!(by_size(), [(Some(0), 0), (Some(1), 1), (Some(2), 1)]);
        seating.close_all();
        assert_eq!(sizes.counts(), RoomSizeCounts::default());
    }
}
