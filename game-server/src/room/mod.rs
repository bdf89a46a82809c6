//! The GameRoom: who is in the room, where they stand, and the broadcasts between them.
//!
//! A room lives inside a [`JobQueue<GameRoom>`](server_core::JobQueue): every change to it
//! is a job, run one at a time, so the state below needs no lock. Player handlers push
//! jobs ([`GameRoom::enter`], [`GameRoom::move_to`], [`GameRoom::chat`],
//! [`GameRoom::leave`]); the room tells the [`Lobby`] when someone leaves so the lobby can
//! keep its head counts and free empty rooms.
//!
//! Every broadcast is encoded once (through [`server_core::encode_with`]) and the same
//! [`Bytes`](bytes::Bytes) goes to every member, at once or gathered for a flush
//! (`outbox.rs`; when it runs: [`flush_policy`](crate::flush_policy)).
//! `S_PlayerList` is not part of the tick: the newcomer gets it at once, so it always comes
//! before the tick carrying its own `S_BroadcastEnterGame` (`player_list.rs`).
//!
//! A room needs no network to run: its members are [`Session`]s, and the unit tests
//! (`tests.rs`) drive it with [`server_core::testing::DetachedSession`]s.

mod cluster;
mod outbox;
mod player_list;
#[cfg(test)]
mod tests;

pub use player_list::MAX_PLAYERS_PER_LIST;

use crate::flush_policy::FlushBudget;
use crate::lobby::{Lobby, RoomId};
use crate::packets::{
    EncodeError, S_BroadcastEnterGame, S_BroadcastLeaveGame, S_BroadcastMove, S_Chat,
};
use crate::player::PlayerId;
use bytes::BytesMut;
use log::{debug, error};
use outbox::Outbox;
use player_list::player_lists;
use server_core::{encode_with, InFlight, JobQueue, Session, WeakJobQueue};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A job for a room's queue.
pub(crate) type RoomJob = Box<dyn FnOnce(&mut GameRoom) + Send>;

/// One player in a room.
#[derive(Debug)]
struct Member {
    session: Session,
    pos: [f32; 3],
    /// Length of the room's pending output when this member entered (tick mode): the member
    /// receives the tick's output from this offset on.
    joined_at: usize,
}

/// A game room: its members with their positions, and (in tick mode) the output of the
/// current tick. Owned by a [`JobQueue<GameRoom>`](server_core::JobQueue).
#[derive(Debug)]
pub struct GameRoom {
    id: RoomId,
    /// Ordered by player id, so `S_PlayerList` lists players in the order they came.
    members: BTreeMap<PlayerId, Member>,
    outbox: Outbox,
    /// This room's own queue, to arm the flush timer; weak, so the room does not keep
    /// itself alive. `None` for a room driven directly (tests): flush by hand.
    me: Option<WeakJobQueue<GameRoom>>,
    /// Where leaves are reported; `None` for a room without a lobby (tests).
    lobby: Option<JobQueue<Lobby>>,
    /// Players in rooms, over the whole server (for the stats).
    players: Arc<AtomicUsize>,
    /// The room's part in a cluster; `None` in a single process.
    cluster: Option<Box<cluster::RoomLink>>,
}

impl GameRoom {
    /// An empty room. With a flush budget, broadcasts are held until
    /// [`flush`](Self::flush), which runs when the budget says (at most its tick after the
    /// first held broadcast) once the room is [attached](Self::attach) to its queue.
    pub(crate) fn new(
        id: RoomId,
        flush: Option<Arc<FlushBudget>>,
        players: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            id,
            members: BTreeMap::new(),
            outbox: Outbox::new(flush),
            me: None,
            lobby: None,
            players,
            cluster: None,
        }
    }

    /// Gives the room a handle to its own queue (for its flush timer) and to the lobby
    /// (for leaves).
    pub(crate) fn attach(&mut self, me: WeakJobQueue<GameRoom>, lobby: JobQueue<Lobby>) {
        self.me = Some(me);
        self.lobby = Some(lobby);
    }

    /// This room's id (1, 2, ... in the order the lobby opened them).
    #[must_use]
    pub fn id(&self) -> RoomId {
        self.id
    }

    /// Players in the room now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the room is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// A player enters: it first receives `S_PlayerList` (everyone, itself first with
    /// `isSelf`, split over several packets if the room is huge), then every member, the
    /// newcomer included, receives `S_BroadcastEnterGame{id, 0, 0, 0}`.
    pub fn enter(&mut self, player_id: PlayerId, session: Session) {
        if self.members.contains_key(&player_id) {
            error!("room {}: player {player_id} entered twice", self.id);
            return;
        }
        let me = Member {
            session,
            pos: [0.0; 3],
            joined_at: self.outbox.pending_len(),
        };
        let lists = if self.cluster.is_none() {
            let others = self.members.iter().map(|(&id, m)| (id, m.pos));
            player_lists((player_id, me.pos), others)
        } else {
            player_lists((player_id, me.pos), self.everyone_else().into_iter())
        };
        for list in lists {
            match encode_with(|buf| list.encode_into(buf)) {
                Ok(frame) => me.session.send(frame),
                Err(e) => error!("room {}: cannot encode S_PlayerList: {e:?}", self.id),
            }
        }
        self.members.insert(player_id, me);
        self.players.fetch_add(1, Ordering::Relaxed);
        debug!(
            "room {}: player {player_id} entered ({} here)",
            self.id,
            self.members.len()
        );
        self.broadcast(&S_BroadcastEnterGame {
            player_id,
            pos_x: 0.0,
            pos_y: 0.0,
            pos_z: 0.0,
        });
    }

    /// A player leaves (`C_LeaveGame` or disconnect): the others receive
    /// `S_BroadcastLeaveGame{id}` and the lobby is told. Unknown players are ignored.
    pub fn leave(&mut self, player_id: PlayerId) {
        if self.members.remove(&player_id).is_none() {
            return;
        }
        self.players.fetch_sub(1, Ordering::Relaxed);
        debug!(
            "room {}: player {player_id} left ({} here)",
            self.id,
            self.members.len()
        );
        self.broadcast(&S_BroadcastLeaveGame { player_id });
        if let Some(lobby) = &self.lobby {
            let room = self.id;
            lobby.push(move |lobby| lobby.left(room, player_id));
        }
    }

    /// A player moves: the position is stored and `S_BroadcastMove` goes to every member,
    /// the mover included. Players not in the room are ignored.
    pub fn move_to(&mut self, player_id: PlayerId, pos: [f32; 3]) {
        let Some(member) = self.members.get_mut(&player_id) else {
            return;
        };
        member.pos = pos;
        let [pos_x, pos_y, pos_z] = pos;
        self.broadcast(&S_BroadcastMove {
            player_id,
            pos_x,
            pos_y,
            pos_z,
        });
    }

    /// A player speaks: `chat` (already an `S_Chat` with the speaker's id) goes to every
    /// member, the speaker included. Players not in the room are ignored.
    pub fn chat(&mut self, chat: &S_Chat) {
        if self.members.contains_key(&chat.player_id) {
            self.broadcast(chat);
        }
    }

    /// Sends everything broadcast since the last flush: one concatenated [`Bytes`](bytes::Bytes), one
    /// send per member (a member who joined meanwhile gets the part from its entry on).
    /// Does nothing when nothing is pending.
    pub fn flush(&mut self) {
        let Some(all) = self.outbox.take() else {
            return;
        };
        if self.cluster.is_some() {
            self.publish_own();
        }
        for member in self.members.values_mut() {
            let from = std::mem::take(&mut member.joined_at);
            if from == 0 {
                member.session.send(all.clone());
            } else if from < all.len() {
                member.session.send(all.slice(from..));
            }
        }
    }

    /// Keeps a player's [`InFlight`] guard until what its packet caused has been sent (the
    /// next flush), or releases it now if nothing is waiting.
    pub(crate) fn hold_until_flush(&mut self, guard: InFlight) {
        self.outbox.hold(guard);
    }

    /// Encodes `packet` once and sends it to every member now, or queues it for the tick.
    fn broadcast(&mut self, packet: &impl Encode) {
        let frame = match encode_with(|buf| packet.encode_into(buf)) {
            Ok(frame) => frame,
            Err(e) => {
                error!("room {}: cannot encode a broadcast: {e:?}", self.id);
                return;
            }
        };
        self.send_to_members(frame, true);
    }

    /// Sends `frame` to every member now, or queues it for the tick. `own`: caused by this
    /// process's players, so published to the other processes of a cluster too.
    fn send_to_members(&mut self, frame: bytes::Bytes, own: bool) {
        if !self.outbox.gathers() {
            for member in self.members.values() {
                member.session.send(frame.clone());
            }
            if own && self.cluster.is_some() {
                self.publish(crate::cluster::OutBody::Frames(vec![frame]));
            }
            return;
        }
        let wait = if own {
            self.outbox.push(frame, self.members.len())
        } else {
            self.outbox.push_from_elsewhere(frame, self.members.len())
        };
        let Some(delay) = wait else {
            return; // a flush is already scheduled
        };
        let Some(me) = self.me.as_ref().and_then(WeakJobQueue::upgrade) else {
            return; // driven by hand: the caller flushes
        };
        match me.push_after(delay, GameRoom::flush) {
            Ok(()) => self.outbox.armed(),
            Err(e) => {
                // No thread can hold the timer (shutting down): send now rather than
                // strand the broadcast.
                debug!("room {}: flush timer refused ({e}); flushing now", self.id);
                self.flush();
            }
        }
    }
}

/// The generated packets' `encode_into`, so [`GameRoom::broadcast`] takes any of them.
trait Encode {
    fn encode_into(&self, buf: &mut BytesMut) -> Result<(), EncodeError>;
}

macro_rules! impl_encode {
    ($($packet:ty),*) => {$(
        impl Encode for $packet {
            fn encode_into(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
                <$packet>::encode_into(self, buf)
            }
        }
    )*};
}
impl_encode!(
    S_BroadcastEnterGame,
    S_BroadcastLeaveGame,
    S_BroadcastMove,
    S_Chat
);
