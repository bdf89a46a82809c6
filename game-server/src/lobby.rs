//! The room directory: which rooms exist, how full they are, and who sits where.
//!
//! The lobby is itself a [`JobQueue<Lobby>`](server_core::JobQueue), so it needs no lock
//! either. A newcomer's handler pushes `Lobby::enter`; the lobby picks the first room with
//! space (opening one when all are full, or always the one room when the capacity is 0),
//! pushes the room's `enter` job and hands the room's queue back to the handler, which
//! talks to the room directly from then on. When someone leaves, the room pushes
//! [`Lobby::left`]; a room other than the first that becomes empty is closed: the lobby
//! drops its handle and the room's state is freed once the last player handle is gone.

use crate::player::{JoinTicket, PlayerId};
use crate::room::{GameRoom, RoomJob};
use log::debug;
use server_core::{JobQueue, ServiceHandle};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// A room as the lobby sees it.
struct RoomEntry {
    queue: JobQueue<GameRoom>,
    /// Players sent to this room and not yet reported gone.
    players: usize,
}

/// The room directory, owned by a [`JobQueue<Lobby>`](server_core::JobQueue).
pub struct Lobby {
    service: ServiceHandle,
    /// Players per room; 0 = one room without limit.
    capacity: usize,
    /// Flush interval of every room; `None` = rooms send at once.
    tick: Option<Duration>,
    /// Open rooms by id, so iteration finds the oldest room with space first.
    rooms: BTreeMap<RoomId, RoomEntry>,
    next_room: u32,
    /// The room of every player that entered and has not left, for jobs forwarded
    /// through the lobby before the player's handler learnt its room.
    seats: HashMap<PlayerId, RoomId>,
    /// Open rooms, readable without a job (for the stats line).
    room_count: Arc<AtomicUsize>,
    /// Players in rooms, updated by the rooms.
    players: Arc<AtomicUsize>,
    /// Set by [`close`](Self::close): no more rooms are opened.
    closed: bool,
}

impl Lobby {
    /// An empty directory. `capacity` 0 means one room without limit; `tick` sets the
    /// rooms' flush interval (`None`: send at once).
    pub(crate) fn new(
        service: ServiceHandle,
        capacity: usize,
        tick: Option<Duration>,
        room_count: Arc<AtomicUsize>,
        players: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            service,
            capacity,
            tick,
            rooms: BTreeMap::new(),
            next_room: 1,
            seats: HashMap::new(),
            room_count,
            players,
            closed: false,
        }
    }

    /// Rooms open now.
    #[must_use]
    pub fn rooms(&self) -> usize {
        self.rooms.len()
    }

    /// Opens the first room if there is none yet; called at start so the first room exists
    /// (and is never closed) from the beginning.
    pub(crate) fn open_first_room(&mut self, me: &JobQueue<Lobby>) {
        if self.rooms.is_empty() && !self.closed {
            self.open_room(me);
        }
    }

    /// Seats a newcomer: picks its room, counts it there, pushes the room's `enter` job and
    /// hands the room's queue to the player's handler through `ticket`.
    pub(crate) fn enter(
        &mut self,
        me: &JobQueue<Lobby>,
        player_id: PlayerId,
        session: server_core::Session,
        ticket: &JoinTicket,
    ) {
        if self.closed {
            return;
        }
        let id = self.pick_room(me);
        let Some(room) = self.rooms.get_mut(&id) else {
            return; // pick_room always returns an open room
        };
        room.players += 1;
        self.seats.insert(player_id, id);
        room.queue.push(move |room| room.enter(player_id, session));
        // The handler may be gone already (disconnected meanwhile); its leave follows.
        let _ = ticket.room.set(room.queue.clone());
    }

    /// Runs `job` in the room of `player_id` (for handlers that do not know their room
    /// yet). Dropped if the player has no seat.
    pub(crate) fn forward(&mut self, player_id: PlayerId, job: RoomJob) {
        let room = self.seats.get(&player_id).and_then(|id| self.rooms.get(id));
        match room {
            Some(room) => room.queue.push(job),
            None => debug!("lobby: dropping a job for player {player_id}, who has no room"),
        }
    }

    /// A room reports that `player_id` left it. A room other than the first that is now
    /// empty is closed.
    pub fn left(&mut self, room_id: RoomId, player_id: PlayerId) {
        self.seats.remove(&player_id);
        let first = self.rooms.keys().next().copied();
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        room.players = room.players.saturating_sub(1);
        if room.players == 0 && first != Some(room_id) {
            self.rooms.remove(&room_id);
            self.room_count.store(self.rooms.len(), Ordering::Relaxed);
            debug!(
                "lobby: room {room_id} is empty and closed ({} open)",
                self.rooms.len()
            );
        }
    }

    /// Drops every room handle (rooms hold a lobby handle to report leaves, so this breaks
    /// the cycle at shutdown); no room is opened afterwards.
    pub(crate) fn close(&mut self) {
        self.closed = true;
        self.rooms.clear();
        self.seats.clear();
        self.room_count.store(0, Ordering::Relaxed);
    }

    /// The room a newcomer goes to, opening one if needed.
    fn pick_room(&mut self, me: &JobQueue<Lobby>) -> RoomId {
        let with_space = self
            .rooms
            .iter()
            .find(|(_, room)| self.capacity == 0 || room.players < self.capacity)
            .map(|(&id, _)| id);
        match with_space {
            Some(id) => id,
            None => self.open_room(me),
        }
    }

    fn open_room(&mut self, me: &JobQueue<Lobby>) -> RoomId {
        let id = RoomId(self.next_room);
        self.next_room += 1;
        let room = GameRoom::new(id, self.tick, me.clone(), Arc::clone(&self.players));
        let queue = JobQueue::new(&self.service, room);
        let me = queue.downgrade();
        queue.push(move |room| room.set_queue(me));
        self.rooms.insert(id, RoomEntry { queue, players: 0 });
        self.room_count.store(self.rooms.len(), Ordering::Relaxed);
        debug!("lobby: room {id} opened ({} open)", self.rooms.len());
        id
    }
}

impl fmt::Debug for Lobby {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lobby")
            .field("capacity", &self.capacity)
            .field("tick", &self.tick)
            .field("rooms", &self.rooms.len())
            .field("seated", &self.seats.len())
            .finish()
    }
}
