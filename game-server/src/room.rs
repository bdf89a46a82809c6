//! The GameRoom: who is in the room, where they stand, and the broadcasts between them.
//!
//! A room lives inside a [`JobQueue<GameRoom>`](server_core::JobQueue): every change to it
//! is a job, run one at a time, so the state below needs no lock. Player handlers push
//! jobs ([`GameRoom::enter`], [`GameRoom::move_to`], [`GameRoom::chat`],
//! [`GameRoom::leave`]); the room tells the [`Lobby`] when someone
//! leaves so the lobby can keep its head counts and free empty rooms.
//!
//! # Sending
//! Every broadcast is encoded once (through [`server_core::encode_with`]) and the same
//! [`Bytes`] goes to every member. With a tick (`--tick-ms N > 0`, the course's
//! `Flush` every 250 ms) broadcasts are appended to a pending list instead, and every tick
//! the list is concatenated into one [`Bytes`] that each member receives as a single send.
//! A member who joined during the tick receives only the part queued after it joined (a
//! zero-copy slice of the same [`Bytes`]). `S_PlayerList` is not part of the tick: the
//! newcomer gets it at once, so it always comes before the tick carrying its own
//! `S_BroadcastEnterGame`.
//!
//! # Huge rooms
//! A frame's size is a `u16`, so one `S_PlayerList` holds at most
//! [`MAX_PLAYERS_PER_LIST`] (3,854) players. A newcomer to a bigger room receives several
//! `S_PlayerList` packets in a row, each a valid frame; the first starts with the newcomer's
//! own entry (`isSelf`). The course's client handles each list by adding its players, so
//! several lists add up to the whole room.

use crate::lobby::{Lobby, RoomId};
use crate::packets::{
    s_player_list, EncodeError, S_BroadcastEnterGame, S_BroadcastLeaveGame, S_BroadcastMove,
    S_Chat, S_PlayerList,
};
use crate::player::PlayerId;
use bytes::{Bytes, BytesMut};
use log::{debug, error};
use server_core::{encode_with, frame, JobQueue, Session, WeakJobQueue};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A job for a room's queue.
pub(crate) type RoomJob = Box<dyn FnOnce(&mut GameRoom) + Send>;

/// Bytes of one `S_PlayerList` entry: `bool isSelf` (1) + `int playerId` (4) + 3 × `float` (12).
const PLAYER_ENTRY_LEN: usize = 17;
/// Bytes of an `S_PlayerList` without entries: frame header (4) + `u16` list count (2).
const PLAYER_LIST_BASE_LEN: usize = frame::HEADER_SIZE + 2;
/// Most entries one `S_PlayerList` frame can carry within the `u16` size field (3,854).
pub const MAX_PLAYERS_PER_LIST: usize =
    (frame::MAX_FRAME_SIZE - PLAYER_LIST_BASE_LEN) / PLAYER_ENTRY_LEN;

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
    /// Flush interval: broadcasts wait at most this long (`None`: sent at once).
    tick: Option<Duration>,
    /// A flush is scheduled. The timer is armed by the first broadcast after a flush, so an
    /// idle room sets no timers at all (a fixed `push_every` would wake the server 200
    /// times a second per room for nothing).
    flush_armed: bool,
    /// This room's own queue, to arm the flush timer; weak, so the room does not keep
    /// itself alive.
    me: Option<WeakJobQueue<GameRoom>>,
    /// Frames broadcast since the last flush (tick mode only).
    pending: Vec<Bytes>,
    /// Total bytes in `pending`.
    pending_len: usize,
    /// Where leaves are reported.
    lobby: JobQueue<Lobby>,
    /// Players in rooms, over the whole server (for the stats line).
    players: Arc<AtomicUsize>,
}

impl GameRoom {
    /// An empty room. With `tick` set, broadcasts are held until [`flush`](Self::flush),
    /// which runs at most `tick` after the first held broadcast.
    pub(crate) fn new(
        id: RoomId,
        tick: Option<Duration>,
        lobby: JobQueue<Lobby>,
        players: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            id,
            members: BTreeMap::new(),
            tick,
            flush_armed: false,
            me: None,
            pending: Vec::new(),
            pending_len: 0,
            lobby,
            players,
        }
    }

    /// Gives the room a handle to its own queue (for its flush timer).
    pub(crate) fn set_queue(&mut self, me: WeakJobQueue<GameRoom>) {
        self.me = Some(me);
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
            joined_at: self.pending_len,
        };
        let others = self.members.iter().map(|(&id, m)| (id, m.pos));
        for list in player_lists((player_id, me.pos), others) {
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
        let room = self.id;
        self.lobby.push(move |lobby| lobby.left(room, player_id));
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

    /// Sends everything broadcast since the last flush: one concatenated [`Bytes`], one
    /// send per member (a member who joined meanwhile gets the part from its entry on).
    /// Does nothing when nothing is pending.
    pub fn flush(&mut self) {
        self.flush_armed = false;
        if self.pending.is_empty() {
            return;
        }
        let all = match self.pending.len() {
            1 => self.pending.pop().unwrap_or_default(),
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
        for member in self.members.values_mut() {
            let from = std::mem::take(&mut member.joined_at);
            if from == 0 {
                member.session.send(all.clone());
            } else if from < all.len() {
                member.session.send(all.slice(from..));
            }
        }
    }

    /// Encodes `packet` once and sends it to every member now, or appends it to the
    /// tick's pending output.
    fn broadcast(&mut self, packet: &impl Encode) {
        let frame = match encode_with(|buf| packet.encode_into(buf)) {
            Ok(frame) => frame,
            Err(e) => {
                error!("room {}: cannot encode a broadcast: {e:?}", self.id);
                return;
            }
        };
        if let Some(tick) = self.tick {
            self.pending_len += frame.len();
            self.pending.push(frame);
            if !self.flush_armed {
                if let Some(me) = self.me.as_ref().and_then(WeakJobQueue::upgrade) {
                    match me.push_after(tick, GameRoom::flush) {
                        Ok(()) => self.flush_armed = true,
                        Err(e) => {
                            // No thread can hold the timer (shutting down): send now
                            // rather than strand the broadcast.
                            debug!("room {}: flush timer refused ({e}); flushing now", self.id);
                            self.flush();
                        }
                    }
                }
            }
        } else {
            for member in self.members.values() {
                member.session.send(frame.clone());
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

/// The `S_PlayerList` packets a newcomer receives: the newcomer first (`isSelf`), then
/// `others` in the order given, at most [`MAX_PLAYERS_PER_LIST`] per packet so each fits a
/// frame (a room of 10,000 gets three packets; clients append them all).
fn player_lists(
    me: (PlayerId, [f32; 3]),
    others: impl ExactSizeIterator<Item = (PlayerId, [f32; 3])>,
) -> Vec<S_PlayerList> {
    let entry = |(player_id, [pos_x, pos_y, pos_z]): (PlayerId, [f32; 3]), is_self: bool| {
        s_player_list::Player {
            is_self,
            player_id,
            pos_x,
            pos_y,
            pos_z,
        }
    };
    let total = others.len() + 1;
    let mut lists = Vec::with_capacity(total.div_ceil(MAX_PLAYERS_PER_LIST));
    let mut current = Vec::with_capacity(total.min(MAX_PLAYERS_PER_LIST));
    let everyone = std::iter::once(entry(me, true)).chain(others.map(|p| entry(p, false)));
    for player in everyone {
        if current.len() == MAX_PLAYERS_PER_LIST {
            lists.push(S_PlayerList {
                players: std::mem::take(&mut current),
            });
        }
        current.push(player);
    }
    lists.push(S_PlayerList { players: current });
    lists
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_players_per_list_fills_a_frame() {
        let full = S_PlayerList {
            players: vec![s_player_list::Player::default(); MAX_PLAYERS_PER_LIST],
        };
        assert!(full.encoded_len() <= frame::MAX_FRAME_SIZE);
        let over = S_PlayerList {
            players: vec![s_player_list::Player::default(); MAX_PLAYERS_PER_LIST + 1],
        };
        assert!(over.encoded_len() > frame::MAX_FRAME_SIZE);
        assert!(over.encode().is_err());
    }

    #[test]
    fn a_huge_room_is_listed_in_several_frames_self_first() {
        let others = (2..10_001).map(|id| (id, [id as f32, 0.0, -1.0]));
        let lists = player_lists((1, [0.0; 3]), others);
        assert_eq!(lists.len(), 3);
        assert_eq!(lists[0].players.len(), MAX_PLAYERS_PER_LIST);
        assert!(lists[0].players[0].is_self);
        assert_eq!(lists[0].players[0].player_id, 1);
        let all: Vec<_> = lists.iter().flat_map(|l| &l.players).collect();
        assert_eq!(all.len(), 10_000);
        assert_eq!(all.iter().filter(|p| p.is_self).count(), 1);
        assert!(all
            .iter()
            .enumerate()
            .all(|(i, p)| p.player_id == i as i32 + 1));
        for list in &lists {
            let frame = list.encode().expect("each list fits a frame");
            assert_eq!(frame.len(), list.encoded_len());
        }
    }

    #[test]
    fn a_small_room_is_one_list() {
        let lists = player_lists((5, [0.0; 3]), [(1, [1.0, 2.0, 3.0])].into_iter());
        assert_eq!(lists.len(), 1);
        assert_eq!(lists[0].players.len(), 2);
        assert!(lists[0].players[0].is_self && !lists[0].players[1].is_self);
    }
}
