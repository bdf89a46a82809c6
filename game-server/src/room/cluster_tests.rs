//! Two rooms of the same id on two "processes", wired by hand through the wire format
//! (what Redis would carry), without Redis: what crosses, what is published, snapshots,
//! gaps and gone processes.

use super::*;
use crate::cluster::testing::FakeBus;
use crate::cluster::wire::{self, Header};
use crate::lobby::RoomId;
use crate::packets::{Packet, S_Chat, S_PlayerList};
use crate::room::tests::{entered_at as entered, listed, moved};
use server_core::testing::DetachedSession;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;

/// One process's copy of room 1, flushed by hand, with its members' probes.
struct Side {
    room: GameRoom,
    bus: Arc<FakeBus>,
    probes: BTreeMap<PlayerId, DetachedSession>,
}

impl Side {
    fn new(process: u64) -> Self {
        let bus = FakeBus::new(process);
        let mut room = GameRoom::new(
            RoomId(1),
            Some(Arc::new(crate::flush_policy::FlushBudget::new(
                std::time::Duration::from_millis(50),
            ))),
            Arc::new(AtomicUsize::new(0)),
        );
        room.join_cluster(bus.clone());
        Self {
            room,
            bus,
            probes: BTreeMap::new(),
        }
    }

    fn enter(&mut self, id: PlayerId) {
        let probe = DetachedSession::new();
        self.room.enter(id, probe.session());
        self.probes.insert(id, probe);
    }

    /// Flushes, then carries everything this side published to `to`, as Redis would.
    fn carry_to(&mut self, to: &mut Side) {
        self.room.flush();
        for out in self.bus.take() {
            to.room.cluster_receive(through_the_wire(self.bus.me, out));
        }
        to.room.flush();
    }

    fn received(&self, id: PlayerId) -> Vec<Packet> {
        self.probes[&id]
            .take_frames()
            .iter()
            .map(|f| Packet::decode(f).expect("valid frames"))
            .collect()
    }
}

/// Encodes a room's message as the publisher does and decodes it as the subscriber does.
fn through_the_wire(origin: ProcessId, out: crate::cluster::Outgoing) -> wire::Message {
    let header = Header {
        origin,
        room: out.room,
        first_seq: out.seq,
        last_seq: out.seq,
    };
    let bytes = match &out.body {
        OutBody::Frames(frames) => wire::encode_batch(&header, frames),
        OutBody::Snapshot {
            players,
            reply_wanted,
        } => wire::encode_snapshot(&header, players, *reply_wanted),
    };
    wire::decode(&bytes).expect("a room's own message decodes")
}

fn left(id: PlayerId) -> Packet {
    Packet::S_BroadcastLeaveGame(crate::packets::S_BroadcastLeaveGame { player_id: id })
}

#[test]
fn what_a_player_does_reaches_the_other_process_once_per_flush() {
    let (mut a, mut b) = (Side::new(0xA), Side::new(0xB));
    b.enter(2);
    b.carry_to(&mut a);
    b.received(2);
    a.enter(1);
    a.received(1);
    a.room.move_to(1, [3.0, 0.0, 4.0]);
    a.room.chat(&S_Chat {
        player_id: 1,
        chat: "hi".into(),
    });
    a.room.flush();
    let published = a.bus.take();
    assert_eq!(published.len(), 1, "one message for the whole flush");
    for out in published {
        b.room.cluster_receive(through_the_wire(a.bus.me, out));
    }
    b.room.flush();
    assert_eq!(
        b.received(2),
        [
            entered(1, [0.0; 3]),
            moved(1, [3.0, 0.0, 4.0]),
            Packet::S_Chat(S_Chat {
                player_id: 1,
                chat: "hi".into()
            })
        ]
    );
    assert!(
        b.bus.take().is_empty(),
        "frames from elsewhere are not published again"
    );
    assert_eq!(b.room.remote_players(), 1);
    assert_eq!(a.room.remote_players(), 1);
    assert_eq!(
        a.received(1),
        [
            entered(1, [0.0; 3]),
            moved(1, [3.0, 0.0, 4.0]),
            Packet::S_Chat(S_Chat {
                player_id: 1,
                chat: "hi".into()
            })
        ]
    );
}

#[test]
fn a_newcomer_lists_everyone_on_every_process_with_positions() {
    let (mut a, mut b) = (Side::new(0xA), Side::new(0xB));
    a.enter(1);
    a.room.move_to(1, [1.0, 2.0, 3.0]);
    a.carry_to(&mut b);
    b.enter(5);
    b.enter(3);
    let got = b.received(3);
    assert_eq!(
        got[0],
        Packet::S_PlayerList(S_PlayerList {
            players: vec![
                listed(3, [0.0; 3], true),
                listed(1, [1.0, 2.0, 3.0], false),
                listed(5, [0.0; 3], false),
            ]
        }),
        "itself, then everyone by id, local and remote"
    );
    b.room.flush();
    assert_eq!(
        b.received(3),
        [entered(3, [0.0; 3])],
        "no stale enter of a player it already has in its list"
    );
}

#[test]
fn leaving_crosses_and_the_view_forgets() {
    let (mut a, mut b) = (Side::new(0xA), Side::new(0xB));
    a.enter(1);
    b.enter(2);
    a.carry_to(&mut b);
    b.received(2);
    a.room.leave(1);
    a.carry_to(&mut b);
    assert_eq!(b.received(2), [left(1)]);
    assert_eq!(b.room.remote_players(), 0);
}

#[test]
fn a_room_that_opens_asks_for_snapshots_and_is_ready_once_answered() {
    let (mut a, mut b) = (Side::new(0xA), Side::new(0xB));
    a.enter(1);
    a.room.move_to(1, [7.0, 0.0, 0.0]);
    a.room.flush();
    a.bus.take(); // B was not listening yet: lost
    b.room.cluster_subscribed(&[ProcessId(0xA), ProcessId(0xB)]);
    assert!(b
        .room
        .cluster
        .as_ref()
        .unwrap()
        .awaiting
        .as_ref()
        .is_some_and(|w| w.len() == 1));
    b.carry_to(&mut a); // B's snapshot, asking for replies
    a.carry_to(&mut b); // A's reply
    assert!(b.room.cluster.as_ref().unwrap().awaiting.is_none(), "ready");
    assert_eq!(b.room.everyone_else(), [(1, [7.0, 0.0, 0.0])]);
    assert!(b.bus.take().is_empty(), "a reply is not answered");
}

#[test]
fn lost_messages_are_noticed_and_snapshots_asked_for() {
    let (mut a, mut b) = (Side::new(0xA), Side::new(0xB));
    a.enter(1);
    b.enter(2);
    a.carry_to(&mut b);
    b.received(2);
    a.room.move_to(1, [1.0, 0.0, 0.0]);
    a.room.flush();
    a.bus.take(); // lost (Redis away)
    a.room.move_to(1, [2.0, 0.0, 0.0]);
    a.carry_to(&mut b);
    assert_eq!(b.bus.counters.snapshot().gaps, 1);
    let asked: Vec<_> = b.bus.take();
    assert!(
        matches!(
            asked.last().map(|o| &o.body),
            Some(OutBody::Snapshot {
                reply_wanted: true,
                ..
            })
        ),
        "{asked:?}"
    );
    assert_eq!(b.received(2), [moved(1, [2.0, 0.0, 0.0])]);
}

#[test]
fn a_snapshot_after_an_outage_tells_members_what_they_missed() {
    let (mut a, mut b) = (Side::new(0xA), Side::new(0xB));
    a.enter(1);
    a.enter(4);
    b.enter(2);
    a.carry_to(&mut b);
    b.received(2);
    // Redis away: 4 leaves, 1 moves, 6 enters; none of it crosses.
    a.room.leave(4);
    a.room.move_to(1, [9.0, 0.0, 9.0]);
    a.enter(6);
    a.room.flush();
    a.bus.take();
    // Back: A resynchronises.
    a.room.cluster_resync();
    a.carry_to(&mut b);
    let mut got = b.received(2);
    got.sort_by_key(|p| format!("{p:?}"));
    let mut want = vec![left(4), moved(1, [9.0, 0.0, 9.0]), entered(6, [0.0; 3])];
    want.sort_by_key(|p| format!("{p:?}"));
    assert_eq!(got, want);
    assert_eq!(b.room.remote_players(), 2);
}

#[test]
fn a_gone_process_takes_its_players_with_it() {
    let (mut a, mut b) = (Side::new(0xA), Side::new(0xB));
    a.enter(1);
    b.enter(2);
    a.carry_to(&mut b);
    b.received(2);
    let nobody = HashSet::new();
    b.room.cluster_peers(&nobody, true);
    b.room.flush();
    assert!(
        b.received(2).is_empty(),
        "nothing is decided in the grace period"
    );
    b.room
        .cluster_peers(&HashSet::from([ProcessId(0xA)]), false);
    b.room.flush();
    assert!(b.received(2).is_empty(), "A is alive");
    b.room.cluster_peers(&nobody, false);
    b.room.flush();
    assert!(
        b.received(2).is_empty(),
        "A was heard from less than a presence TTL ago"
    );
    // Pretend A's last message is older than the TTL.
    let link = b.room.cluster.as_deref_mut().unwrap();
    let stale = Instant::now() - Duration::from_secs(6);
    link.remote.note(
        &Header {
            origin: ProcessId(0xA),
            room: RoomId(1),
            first_seq: 1,
            last_seq: 1,
        },
        stale,
    );
    b.room.cluster_peers(&nobody, false);
    b.room.flush();
    assert_eq!(b.received(2), [left(1)]);
    assert_eq!(b.room.remote_players(), 0);
}

#[test]
fn a_room_whose_first_subscription_failed_is_ready_at_the_resync() {
    let mut b = Side::new(0xB);
    assert!(
        b.room.cluster.as_ref().unwrap().awaiting.is_some(),
        "not subscribed yet"
    );
    b.room.cluster_resync();
    assert!(b.room.cluster.as_ref().unwrap().awaiting.is_none(), "ready");
    assert!(matches!(
        b.bus.take().last().map(|o| &o.body),
        Some(OutBody::Snapshot {
            reply_wanted: true,
            ..
        })
    ));
}
