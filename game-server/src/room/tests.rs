//! The room without a network: members are `DetachedSession`s that record what they were
//! sent, decoded here with the generated `Packet::decode`.

use super::*;
use crate::packets::{s_player_list, Packet, S_PlayerList};
use server_core::testing::DetachedSession;
use std::time::Duration;

/// A room without a queue or lobby (flushes by hand) and its players' probes.
struct Fixture {
    room: GameRoom,
    probes: BTreeMap<PlayerId, DetachedSession>,
    players: Arc<AtomicUsize>,
}

impl Fixture {
    fn new(tick: Option<Duration>) -> Self {
        let players = Arc::new(AtomicUsize::new(0));
        Self {
            room: GameRoom::new(
                RoomId(1),
                tick.map(|tick| Arc::new(FlushBudget::new(tick))),
                Arc::clone(&players),
            ),
            probes: BTreeMap::new(),
            players,
        }
    }

    fn enter(&mut self, id: PlayerId) {
        let probe = DetachedSession::new();
        self.room.enter(id, probe.session());
        self.probes.insert(id, probe);
    }

    /// Every packet `id` received since the last call, decoded.
    fn received(&self, id: PlayerId) -> Vec<Packet> {
        self.probes[&id]
            .take_frames()
            .iter()
            .map(|f| Packet::decode(f).expect("the room sends valid frames"))
            .collect()
    }

    fn everyone_received(&self) -> BTreeMap<PlayerId, Vec<Packet>> {
        self.probes
            .keys()
            .map(|&id| (id, self.received(id)))
            .collect()
    }
}

pub(super) fn listed(id: PlayerId, pos: [f32; 3], is_self: bool) -> s_player_list::Player {
    let [pos_x, pos_y, pos_z] = pos;
    s_player_list::Player {
        is_self,
        player_id: id,
        pos_x,
        pos_y,
        pos_z,
    }
}

fn entered(id: PlayerId) -> Packet {
    entered_at(id, [0.0; 3])
}

/// What every member hears when `id` enters at `pos` (here or, in a cluster, elsewhere).
pub(super) fn entered_at(id: PlayerId, [pos_x, pos_y, pos_z]: [f32; 3]) -> Packet {
    Packet::S_BroadcastEnterGame(S_BroadcastEnterGame {
        player_id: id,
        pos_x,
        pos_y,
        pos_z,
    })
}

pub(super) fn moved(id: PlayerId, [pos_x, pos_y, pos_z]: [f32; 3]) -> Packet {
    Packet::S_BroadcastMove(S_BroadcastMove {
        player_id: id,
        pos_x,
        pos_y,
        pos_z,
    })
}

fn chat(id: PlayerId, text: &str) -> S_Chat {
    S_Chat {
        player_id: id,
        chat: text.into(),
    }
}

#[test]
fn a_newcomer_gets_the_list_then_everyone_sees_it_enter() {
    let mut f = Fixture::new(None);
    f.enter(1);
    assert_eq!(
        f.received(1),
        [
            Packet::S_PlayerList(S_PlayerList {
                players: vec![listed(1, [0.0; 3], true)]
            }),
            entered(1),
        ]
    );
    f.room.move_to(1, [3.0, 0.0, -2.0]);
    f.received(1);
    f.enter(2);
    let seen = f.everyone_received();
    assert_eq!(seen[&1], [entered(2)]);
    assert_eq!(
        seen[&2],
        [
            Packet::S_PlayerList(S_PlayerList {
                players: vec![
                    listed(2, [0.0; 3], true),
                    listed(1, [3.0, 0.0, -2.0], false)
                ]
            }),
            entered(2),
        ],
        "itself first, then the others with their current positions"
    );
    assert_eq!(f.room.len(), 2);
    assert_eq!(f.players.load(Ordering::Relaxed), 2);
}

#[test]
fn moves_and_chats_reach_everyone_including_the_sender() {
    let mut f = Fixture::new(None);
    for id in 1..=3 {
        f.enter(id);
    }
    f.everyone_received();
    f.room.move_to(2, [1.5, 0.0, 9.0]);
    f.room.chat(&chat(3, "안녕 👋"));
    for (_, packets) in f.everyone_received() {
        assert_eq!(
            packets,
            [
                moved(2, [1.5, 0.0, 9.0]),
                Packet::S_Chat(chat(3, "안녕 👋")),
            ]
        );
    }
    // Strangers are ignored.
    f.room.move_to(99, [0.0; 3]);
    f.room.chat(&chat(99, "hi"));
    assert!(f.everyone_received().values().all(Vec::is_empty));
}

#[test]
fn a_leaver_is_announced_to_the_others_only() {
    let mut f = Fixture::new(None);
    f.enter(1);
    f.enter(2);
    f.everyone_received();
    f.room.leave(1);
    let seen = f.everyone_received();
    assert!(seen[&1].is_empty());
    assert_eq!(
        seen[&2],
        [Packet::S_BroadcastLeaveGame(S_BroadcastLeaveGame {
            player_id: 1
        })]
    );
    f.room.chat(&chat(1, "ghost"));
    f.room.leave(1); // twice: ignored
    assert!(f.everyone_received().values().all(Vec::is_empty));
    assert_eq!(f.room.len(), 1);
    assert_eq!(f.players.load(Ordering::Relaxed), 1);
}

#[test]
fn a_dead_connection_in_the_middle_of_a_broadcast_hurts_nobody() {
    let mut f = Fixture::new(None);
    for id in 1..=4 {
        f.enter(id);
    }
    f.everyone_received();
    // Player 2's socket dies; its leave has not reached the room yet.
    f.probes[&2].close();
    f.room.chat(&chat(1, "still here?"));
    let seen = f.everyone_received();
    assert!(seen[&2].is_empty(), "sends to a closed session are dropped");
    for id in [1, 3, 4] {
        assert_eq!(seen[&id], [Packet::S_Chat(chat(1, "still here?"))]);
    }
    // Then its leave arrives, as on_disconnected sends it.
    f.room.leave(2);
    let seen = f.everyone_received();
    for id in [1, 3, 4] {
        assert_eq!(
            seen[&id],
            [Packet::S_BroadcastLeaveGame(S_BroadcastLeaveGame {
                player_id: 2
            })]
        );
    }
}

#[test]
fn a_tick_gathers_broadcasts_into_one_send_per_member() {
    let mut f = Fixture::new(Some(Duration::from_millis(50)));
    f.enter(1);
    let _list = f.probes[&1].take_frames(); // sent at once, not part of the tick
    for i in 0..10 {
        f.room.move_to(1, [i as f32, 0.0, 0.0]);
    }
    assert!(f.probes[&1].take_sent().is_empty(), "held until the flush");
    f.room.flush();
    let sent = f.probes[&1].take_sent();
    assert_eq!(sent.len(), 1, "one send for the whole tick");
    let frames = server_core::testing::DetachedSession::new();
    frames.session().send(sent[0].clone());
    let packets: Vec<Packet> = frames
        .take_frames()
        .iter()
        .map(|f| Packet::decode(f).unwrap())
        .collect();
    let mut expected = vec![entered(1)];
    expected.extend((0..10).map(|i| moved(1, [i as f32, 0.0, 0.0])));
    assert_eq!(packets, expected);
    f.room.flush();
    assert!(
        f.probes[&1].take_sent().is_empty(),
        "nothing pending, nothing sent"
    );
}

#[test]
fn a_member_who_joins_mid_tick_gets_the_tick_from_its_entry_on() {
    let mut f = Fixture::new(Some(Duration::from_millis(50)));
    f.enter(1);
    f.room.flush();
    f.everyone_received();
    f.room.chat(&chat(1, "before 2 came"));
    f.enter(2);
    f.room.chat(&chat(1, "after"));
    f.room.flush();
    let seen = f.everyone_received();
    assert_eq!(
        seen[&1],
        [
            Packet::S_Chat(chat(1, "before 2 came")),
            entered(2),
            Packet::S_Chat(chat(1, "after")),
        ]
    );
    assert_eq!(
        seen[&2][1..],
        [entered(2), Packet::S_Chat(chat(1, "after"))],
        "its list first (at once), then the tick from its entry"
    );
    assert!(matches!(seen[&2][0], Packet::S_PlayerList(_)));
}

#[test]
fn in_flight_guards_are_held_until_the_tick_is_sent() {
    let mut f = Fixture::new(Some(Duration::from_millis(50)));
    f.enter(1);
    let sender = f.probes[&1].session();
    f.room.chat(&chat(1, "queued"));
    f.room.hold_until_flush(sender.in_flight());
    assert_eq!(sender.in_flight_count(), 1, "its chat waits for the tick");
    f.room.flush();
    assert_eq!(sender.in_flight_count(), 0, "sent: released");
    // Nothing pending: released at once.
    f.room.hold_until_flush(sender.in_flight());
    assert_eq!(sender.in_flight_count(), 0);
}

#[test]
fn a_quiet_room_flushes_at_once_and_a_busy_one_waits_at_most_a_tick() {
    let tick = Duration::from_millis(7);
    let budget = Arc::new(FlushBudget::new(tick));
    let frame = || bytes::Bytes::from_static(&[4, 0, 8, 0]);
    let mut quiet = Outbox::new(Some(Arc::clone(&budget)));
    assert_eq!(
        quiet.push(frame(), 50),
        Some(Duration::ZERO),
        "at the end of this iteration"
    );
    quiet.armed();
    assert_eq!(quiet.push(frame(), 50), None, "already booked");
    // A room of 500 flushing again and again uses up the budget: its flushes are spread
    // out, never more than a tick away.
    let mut busy = Outbox::new(Some(budget));
    let mut waits = Vec::new();
    for _ in 0..5 {
        let wait = busy.push(frame(), 500).expect("not armed");
        assert!(wait <= tick);
        waits.push(wait);
        busy.take();
    }
    assert!(waits[4] > tick / 2, "{waits:?}");
}
