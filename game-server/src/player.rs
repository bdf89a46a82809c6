//! One connection: the course's `ClientSession` plus its `PacketHandler`.
//!
//! [`Player`] is the [`SessionHandler`] server-core calls on the connection's I/O thread.
//! It gives each frame to the generated [`dispatch_server`], through a small adapter that
//! implements the generated [`ServerPacketHandler`]; the packet handlers turn packets into
//! jobs for the player's room. A frame that does not decode, an unknown id, or a packet only
//! a server sends makes [`on_packet`](SessionHandler::on_packet) return an error, and
//! server-core closes the session and logs why.
//!
//! # Finding the room
//! On connect the player asks the lobby for a seat (`Lobby::enter`); the lobby answers
//! with the room's queue through a small shared `JoinTicket`. Until that answer is in (it
//! usually is by the time `on_connected` returns, since an idle queue runs the job at
//! once), the player's jobs go through the lobby, which knows every seat; a counter of
//! such forwarded jobs makes the player switch to pushing to the room directly only when
//! none is still on its way, so the room runs a player's jobs in the order its packets
//! came.

use crate::lobby::Lobby;
use crate::packets::{
    dispatch_server, C_Chat, C_LeaveGame, C_Move, DecodeError, Packet, S_Chat, ServerPacketHandler,
};
use crate::room::{GameRoom, RoomJob};
use log::debug;
use server_core::{frame, DisconnectReason, HandlerError, JobQueue, Session, SessionHandler};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use thiserror::Error;

/// A player's id, as the protocol's `int playerId`.
pub type PlayerId = i32;

/// Why a player's session is closed by the game (server-core logs it).
#[derive(Debug, Error)]
pub enum PlayerError {
    /// The frame is not a valid packet of `PDL.xml` (unknown id, truncated body, bad string).
    #[error("malformed packet: {0}")]
    Decode(#[from] DecodeError),
    /// A valid packet that clients never send (`S_...`).
    #[error("unexpected packet from a client: {name} (id {id})")]
    Unexpected {
        /// The packet's name.
        name: &'static str,
        /// The packet's id.
        id: u16,
    },
    /// A chat line so long that `S_Chat` carrying it would not fit in a frame.
    #[error("chat of {chars} UTF-16 units is too long to broadcast")]
    ChatTooLong {
        /// Length of the line.
        chars: usize,
    },
}

/// The lobby's answer to a newcomer, shared by the player's handler and the lobby's
/// `enter` job. One small allocation: a player that never sends a packet keeps it until it
/// leaves, so it must cost little (a `mpsc` channel here cost ~900 bytes per idle player).
#[derive(Default)]
pub(crate) struct JoinTicket {
    /// The room's queue, set once by the lobby.
    pub(crate) room: OnceLock<JobQueue<GameRoom>>,
    /// Jobs handed to the lobby and not yet passed on to the room.
    forwarded: AtomicUsize,
}

/// Where the player's jobs go.
enum Seat {
    /// Waiting for the lobby's answer; jobs go through the lobby meanwhile.
    Joining(Arc<JoinTicket>),
    /// In a room: jobs go straight to its queue.
    InRoom(JobQueue<GameRoom>),
    /// Not connected yet, or left (`C_LeaveGame` or disconnect): jobs are dropped.
    Away,
}

/// The per-connection handler: takes a player id on connect, enters a room through the
/// lobby, and turns `C_Move`, `C_Chat` and `C_LeaveGame` into room jobs.
pub struct Player {
    id: PlayerId,
    next_id: Arc<AtomicI32>,
    lobby: JobQueue<Lobby>,
    seat: Seat,
}

impl Player {
    /// A handler for one accepted connection; `next_id` hands out player ids.
    pub(crate) fn new(lobby: JobQueue<Lobby>, next_id: Arc<AtomicI32>) -> Self {
        Self {
            id: 0,
            next_id,
            lobby,
            seat: Seat::Away,
        }
    }

    /// This player's id (0 before the connection is established).
    #[must_use]
    pub fn id(&self) -> PlayerId {
        self.id
    }

    /// Takes the room from the lobby's answer once it is there and nothing of ours is still
    /// being forwarded; the ticket is freed then.
    fn take_seat(&mut self) {
        if let Seat::Joining(ticket) = &self.seat {
            // Only this handler adds to `forwarded`, so once it reads 0 nothing of ours is
            // still in the lobby and pushing to the room directly keeps the order.
            if ticket.forwarded.load(Ordering::Acquire) == 0 {
                if let Some(room) = ticket.room.get() {
                    self.seat = Seat::InRoom(room.clone());
                }
            }
        }
    }

    /// Hands `job` to the player's room, in order with the player's earlier jobs.
    fn send_to_room(&mut self, job: RoomJob) {
        self.take_seat();
        match &self.seat {
            Seat::InRoom(room) => room.push(job),
            Seat::Joining(ticket) => {
                ticket.forwarded.fetch_add(1, Ordering::AcqRel);
                let ticket = Arc::clone(ticket);
                let id = self.id;
                self.lobby.push(move |lobby| {
                    lobby.forward(id, job);
                    ticket.forwarded.fetch_sub(1, Ordering::Release);
                });
            }
            Seat::Away => {}
        }
    }

    /// Leaves the room, if in one; later room packets are ignored.
    fn leave(&mut self) {
        if matches!(self.seat, Seat::Away) {
            return;
        }
        let id = self.id;
        self.send_to_room(Box::new(move |room| room.leave(id)));
        self.seat = Seat::Away;
    }
}

impl SessionHandler for Player {
    fn on_connected(&mut self, session: &Session) {
        self.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        debug!(
            "player {} connected from {} (session {})",
            self.id,
            session.peer_addr(),
            session.id()
        );
        let ticket = Arc::new(JoinTicket::default());
        self.seat = Seat::Joining(Arc::clone(&ticket));
        let (id, session, lobby) = (self.id, session.clone(), self.lobby.clone());
        self.lobby
            .push(move |l| l.enter(&lobby, id, session, &ticket));
        // The lobby usually ran the enter job right here (its queue was idle).
        self.take_seat();
    }

    fn on_packet(&mut self, _session: &Session, frame: &[u8]) -> Result<(), HandlerError> {
        dispatch_server(frame, &mut Handlers(self)).map_err(HandlerError::from)
    }

    fn on_disconnected(&mut self, _session: &Session, reason: &DisconnectReason) {
        debug!("player {} disconnected: {reason}", self.id);
        self.leave();
    }
}

/// The generated [`ServerPacketHandler`] over a [`Player`] (the course's `PacketHandler`).
struct Handlers<'a>(&'a mut Player);

impl ServerPacketHandler for Handlers<'_> {
    type Error = PlayerError;

    fn on_c_leave_game(&mut self, _packet: C_LeaveGame) -> Result<(), PlayerError> {
        self.0.leave();
        Ok(())
    }

    fn on_c_move(&mut self, packet: C_Move) -> Result<(), PlayerError> {
        let id = self.0.id;
        let pos = [packet.pos_x, packet.pos_y, packet.pos_z];
        self.0
            .send_to_room(Box::new(move |room| room.move_to(id, pos)));
        Ok(())
    }

    fn on_c_chat(&mut self, packet: C_Chat) -> Result<(), PlayerError> {
        if matches!(self.0.seat, Seat::Away) {
            return Ok(());
        }
        let chat = S_Chat {
            player_id: self.0.id,
            chat: packet.chat,
        };
        if chat.encoded_len() > frame::MAX_FRAME_SIZE {
            return Err(PlayerError::ChatTooLong {
                chars: chat.chat.encode_utf16().count(),
            });
        }
        self.0.send_to_room(Box::new(move |room| room.chat(&chat)));
        Ok(())
    }

    fn on_unexpected(&mut self, packet: Packet) -> Result<(), PlayerError> {
        Err(PlayerError::Unexpected {
            name: packet.name(),
            id: packet.id(),
        })
    }
}
