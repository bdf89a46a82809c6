//! The lobby's side of cluster seating: players whose seat request is with the control
//! thread, and players waiting for a room that is still synchronising. Plain data kept
//! by the [`Lobby`](crate::lobby::Lobby), which does the seating itself.

use super::log_limit::LogLimit;
use super::LobbyLink;
use crate::lobby::{RoomId, Seated};
use crate::player::PlayerId;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// The lobby's cluster state.
pub(crate) struct ClusterSeats {
    pub(crate) link: LobbyLink,
    /// Players asked about and not answered yet, with what to do once seated; `None` when
    /// the player left meanwhile (its seat is given back when the answer comes).
    asking: HashMap<PlayerId, Option<Seated>>,
    /// Rooms open here that are ready for newcomers.
    ready: HashSet<RoomId>,
    /// Players waiting for a room to become ready, in arrival order.
    waiting: HashMap<RoomId, Vec<(PlayerId, Seated)>>,
    /// Players turned away while Redis is away, logged at most every 10 s.
    refused: LogLimit,
}

impl ClusterSeats {
    pub(crate) fn new(link: LobbyLink) -> Self {
        Self {
            link,
            asking: HashMap::new(),
            ready: HashSet::new(),
            waiting: HashMap::new(),
            refused: LogLimit::new(Duration::from_secs(10)),
        }
    }

    /// Sends a seat request; `then` runs when the player may enter its room.
    pub(crate) fn ask(&mut self, player: PlayerId, then: Seated) {
        self.asking.insert(player, Some(then));
        self.link.ask_seat(player);
    }

    /// The answer for `player` came: what to do with it (`None` if the player left or is
    /// unknown).
    pub(crate) fn answered(&mut self, player: PlayerId) -> Option<Seated> {
        self.asking.remove(&player).flatten()
    }

    /// The player left before its answer came; returns whether it was waiting for one.
    pub(crate) fn forget_asking(&mut self, player: PlayerId) -> bool {
        match self.asking.get_mut(&player) {
            Some(then) => {
                *then = None;
                true
            }
            None => false,
        }
    }

    /// The player left while waiting for its room to be ready: returns the room.
    pub(crate) fn forget_waiting(&mut self, player: PlayerId) -> Option<RoomId> {
        let (&room, list) = self
            .waiting
            .iter_mut()
            .find(|(_, list)| list.iter().any(|(p, _)| *p == player))?;
        list.retain(|(p, _)| *p != player);
        Some(room)
    }

    /// A room opened here (not ready until it says so).
    pub(crate) fn opened(&mut self, room: RoomId) {
        self.ready.remove(&room);
    }

    /// A room closed here.
    pub(crate) fn closed(&mut self, room: RoomId) {
        self.ready.remove(&room);
        self.link.routes.close(room);
    }

    pub(crate) fn is_ready(&self, room: RoomId) -> bool {
        self.ready.contains(&room)
    }

    /// `then` runs once `room` is ready.
    pub(crate) fn wait(&mut self, room: RoomId, player: PlayerId, then: Seated) {
        self.waiting.entry(room).or_default().push((player, then));
    }

    /// `room` is ready: returns the players that waited for it.
    pub(crate) fn ready(&mut self, room: RoomId) -> Vec<(PlayerId, Seated)> {
        self.ready.insert(room);
        self.waiting.remove(&room).unwrap_or_default()
    }

    /// Everyone still asking or waiting (at shutdown): they are turned away.
    pub(crate) fn drain(&mut self) -> Vec<Seated> {
        let asking = self.asking.drain().filter_map(|(_, then)| then);
        let waiting = self
            .waiting
            .drain()
            .flat_map(|(_, list)| list.into_iter().map(|(_, t)| t));
        asking.chain(waiting).collect()
    }

    /// Whether a refusal may be logged now (`Some(n)`: n were left out since).
    pub(crate) fn log_refusal(&mut self) -> Option<u64> {
        self.refused.allow(Instant::now())
    }
}
