//! One connection: the course's `ClientSession` plus its `PacketHandler`.
//!
//! [`Player`] is the [`SessionHandler`] server-core calls on the connection's I/O thread.
//! It gives each frame to the generated [`dispatch_server`], through a small adapter that
//! implements the generated [`ServerPacketHandler`]; the packet handlers turn packets into
//! jobs for the player's room. A frame that does not decode, an unknown id, or a packet only
//! a server sends makes [`on_packet`](SessionHandler::on_packet) return an error, and
//! server-core closes the session and logs why.
//!
//! # Joining
//! The whole join is in [`Player::on_connected`]: the lobby picks a room, the room sends
//! the newcomer its player list and announces it, and the room's queue is handed back to
//! the handler with [`Session::with_handler`], on the player's own I/O thread. Packets that
//! arrive before that are kept, in order, and follow the enter into the room.
//!
//! # Backpressure
//! Every room job a player's packet makes carries an [`InFlight`](server_core::InFlight)
//! guard, released once the room has sent what the packet caused (the tick's flush).
//! Reading from a player pauses while too many of its jobs are unfinished, so a flood is
//! slowed by TCP instead of piling up in the room.

use crate::cluster::PlayerIds;
use crate::lobby::Lobby;
use crate::packets::{
    dispatch_server, C_Chat, C_LeaveGame, C_Move, DecodeError, Packet, S_Chat, ServerPacketHandler,
};
use crate::room::{GameRoom, RoomJob};
use log::{debug, warn};
use server_core::{frame, DisconnectReason, HandlerError, JobQueue, Session, SessionHandler};
use std::sync::Arc;
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

/// Where the player's jobs go.
enum Seat {
    /// Connected, waiting for the lobby's answer: jobs are kept here, in order, and follow
    /// the enter into the room (their number is bounded by the in-flight limit).
    Entering(Vec<RoomJob>),
    /// In a room: jobs go straight to its queue.
    InRoom(JobQueue<GameRoom>),
    /// Not connected yet, or left (`C_LeaveGame` or disconnect): jobs are dropped.
    Away,
}

/// The per-connection handler: takes a player id on connect, enters a room through the
/// lobby, and turns `C_Move`, `C_Chat` and `C_LeaveGame` into room jobs.
pub struct Player {
    id: PlayerId,
    ids: Arc<PlayerIds>,
    lobby: JobQueue<Lobby>,
    /// This connection, for in-flight guards; set on connect.
    session: Option<Session>,
    seat: Seat,
}

impl Player {
    /// A handler for one accepted connection; `ids` hands out player ids.
    pub(crate) fn new(lobby: JobQueue<Lobby>, ids: Arc<PlayerIds>) -> Self {
        Self {
            id: 0,
            ids,
            lobby,
            session: None,
            seat: Seat::Away,
        }
    }

    /// This player's id (0 before the connection is established).
    #[must_use]
    pub fn id(&self) -> PlayerId {
        self.id
    }

    /// The lobby's answer arrived: the room's queue. Jobs kept meanwhile go first.
    fn take_seat(&mut self, room: JobQueue<GameRoom>) {
        // Away: the player left before the answer came, and the lobby was told.
        if let Seat::Entering(early) = std::mem::replace(&mut self.seat, Seat::Away) {
            for job in early {
                room.push(job);
            }
            self.seat = Seat::InRoom(room);
        }
    }

    /// Hands `job` to the player's room, in order with the player's earlier jobs, with an
    /// in-flight guard the room keeps until what the job caused has been sent.
    fn push_to_room(&mut self, job: impl FnOnce(&mut GameRoom) + Send + 'static) {
        let Some(session) = &self.session else {
            return;
        };
        let guard = session.in_flight();
        let job: RoomJob = Box::new(move |room| {
            job(room);
            room.hold_until_flush(guard);
        });
        match &mut self.seat {
            Seat::InRoom(room) => room.push(job),
            Seat::Entering(early) => early.push(job),
            Seat::Away => {}
        }
    }

    /// Leaves the room, if in one; later room packets are ignored.
    fn leave(&mut self) {
        let id = self.id;
        match std::mem::replace(&mut self.seat, Seat::Away) {
            Seat::InRoom(room) => room.push(move |room| room.leave(id)),
            Seat::Entering(early) => self.lobby.push(move |lobby| lobby.release(id, early)),
            Seat::Away => {}
        }
    }
}

impl SessionHandler for Player {
    fn on_connected(&mut self, session: &Session) {
        let Some(id) = self.ids.next() else {
            // A cluster process whose id blocks ran out while Redis is away.
            warn!(
                "player from {} turned away: no player id left until Redis is back",
                session.peer_addr()
            );
            session.disconnect();
            return;
        };
        self.id = id;
        self.session = Some(session.clone());
        self.seat = Seat::Entering(Vec::new());
        debug!(
            "player {} connected from {} (session {})",
            self.id,
            session.peer_addr(),
            session.id()
        );
        let (id, session) = (self.id, session.clone());
        self.lobby.push(move |lobby| {
            // 1. The lobby picks the room (none once the server is shutting down); in a
            //    cluster the answer comes later, once the room is ready for newcomers.
            lobby.seat(
                id,
                Box::new(move |room| {
                    let Some(room) = room else {
                        session.disconnect();
                        return;
                    };
                    // 2. The room lists everyone to the newcomer and announces it.
                    let newcomer = session.clone();
                    room.push(move |room| room.enter(id, newcomer));
                    // 3. The handler learns its room, on its own I/O thread. If the session
                    //    closed meanwhile, the call is dropped and its on_disconnected
                    //    releases the seat.
                    let _ =
                        session.with_handler(move |player: &mut Player, _| player.take_seat(room));
                }),
            );
        });
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
        self.0.push_to_room(move |room| room.move_to(id, pos));
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
        self.0.push_to_room(move |room| room.chat(&chat));
        Ok(())
    }

    fn on_unexpected(&mut self, packet: Packet) -> Result<(), PlayerError> {
        Err(PlayerError::Unexpected {
            name: packet.name(),
            id: packet.id(),
        })
    }
}

#[cfg(test)]
mod tests {
    //! The join flow without sockets: a real lobby and rooms on a one-thread service (no
    //! listener), players on `DetachedSession`s; the test plays the I/O thread's part by
    //! running the handler calls the lobby queued.
    use super::*;
    use crate::packets::{C_Move, Packet};
    use server_core::testing::DetachedSession;
    use server_core::Service;
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    struct World {
        _service: Service,
        lobby: JobQueue<Lobby>,
        ids: Arc<PlayerIds>,
    }

    impl World {
        fn new() -> Self {
            let service = Service::builder().threads(1).build().unwrap();
            let counter = || Arc::new(AtomicUsize::new(0));
            let lobby = Lobby::start(&service.handle(), 0, None, Arc::default(), counter(), None);
            Self {
                _service: service,
                lobby,
                ids: Arc::new(PlayerIds::local()),
            }
        }

        fn connect(&self) -> (Player, DetachedSession) {
            let mut player = Player::new(self.lobby.clone(), Arc::clone(&self.ids));
            let probe = DetachedSession::new();
            player.on_connected(&probe.session());
            (player, probe)
        }
    }

    /// Waits until `probe` has received `n` packets (the room runs on the service thread).
    fn packets(probe: &DetachedSession, n: usize) -> Vec<Packet> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < deadline {
            got.extend(
                probe
                    .take_frames()
                    .iter()
                    .map(|f| Packet::decode(f).unwrap()),
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(got.len(), n, "{got:?}");
        got
    }

    /// Runs the lobby's `with_handler` call (the seat) once it has been queued.
    fn seat(player: &mut Player, probe: &DetachedSession) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while probe.run_handler_calls(player) == 0 {
            assert!(Instant::now() < deadline, "the lobby never answered");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn c_move(x: f32) -> Vec<u8> {
        C_Move {
            pos_x: x,
            pos_y: 0.0,
            pos_z: 0.0,
        }
        .encode()
        .unwrap()
        .to_vec()
    }

    #[test]
    fn packets_sent_before_the_seat_follow_the_enter_in_order() {
        let world = World::new();
        let (mut a, a_probe) = world.connect();
        // Two moves arrive before the lobby's answer reached the handler.
        a.on_packet(&a_probe.session(), &c_move(1.0)).unwrap();
        a.on_packet(&a_probe.session(), &c_move(2.0)).unwrap();
        seat(&mut a, &a_probe);
        let got = packets(&a_probe, 4);
        assert!(matches!(got[0], Packet::S_PlayerList(_)));
        assert!(matches!(got[1], Packet::S_BroadcastEnterGame(_)));
        assert!(matches!(&got[2], Packet::S_BroadcastMove(m) if m.pos_x == 1.0));
        assert!(matches!(&got[3], Packet::S_BroadcastMove(m) if m.pos_x == 2.0));
        // Seated: the next packet goes straight to the room.
        a.on_packet(&a_probe.session(), &c_move(3.0)).unwrap();
        assert!(matches!(&packets(&a_probe, 1)[0], Packet::S_BroadcastMove(m) if m.pos_x == 3.0));
    }

    #[test]
    fn a_player_who_leaves_before_its_seat_comes_still_leaves_the_room() {
        let world = World::new();
        let (mut watcher, watcher_probe) = world.connect();
        seat(&mut watcher, &watcher_probe);
        packets(&watcher_probe, 2);
        let (mut quick, quick_probe) = world.connect();
        quick
            .on_packet(&quick_probe.session(), &c_move(5.0))
            .unwrap();
        quick_probe.close();
        quick.on_disconnected(&quick_probe.session(), &DisconnectReason::PeerClosed);
        // The watcher sees it enter, move (the packet it sent) and leave, in that order.
        let got = packets(&watcher_probe, 3);
        assert!(matches!(got[0], Packet::S_BroadcastEnterGame(_)));
        assert!(matches!(&got[1], Packet::S_BroadcastMove(m) if m.pos_x == 5.0));
        assert!(matches!(got[2], Packet::S_BroadcastLeaveGame(_)));
        // Its seat call, if it comes at all, changes nothing.
        quick_probe.run_handler_calls(&mut quick);
        quick
            .on_packet(&quick_probe.session(), &c_move(6.0))
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(watcher_probe.take_frames().is_empty());
    }

    #[test]
    fn leave_game_keeps_the_connection_but_leaves_the_room() {
        let world = World::new();
        let (mut a, a_probe) = world.connect();
        seat(&mut a, &a_probe);
        let (mut b, b_probe) = world.connect();
        seat(&mut b, &b_probe);
        packets(&a_probe, 3);
        packets(&b_probe, 2);
        let leave = crate::packets::C_LeaveGame {}.encode().unwrap();
        a.on_packet(&a_probe.session(), &leave).unwrap();
        assert!(matches!(
            packets(&b_probe, 1)[0],
            Packet::S_BroadcastLeaveGame(_)
        ));
        a.on_packet(&a_probe.session(), &c_move(1.0)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            b_probe.take_frames().is_empty(),
            "moves after leaving are ignored"
        );
        assert!(!a_probe.disconnect_requested());
    }
}
