//! The game server over real sockets: enter, see each other, move, chat, leave, bad packets,
//! rooms with a capacity, the tick, and the session limit.

mod util;

use std::time::Duration;
use util::{c_chat, c_move, eventually, frame, server, Client, Entry, Msg, C_LEAVE_GAME};

/// The first packets, byte for byte, as the course's client expects them.
#[test]
fn first_packets_exact_bytes() {
    let server = server(|_| {});
    let addr = server.local_addr();

    let mut a = Client::connect(addr);
    // S_PlayerList: size 23 = 4 header + 2 count + 17 (bool, int, 3 floats); id 4; one
    // entry: isSelf 1, playerId 1, position 0,0,0.
    let mut list = vec![23, 0, 4, 0, 1, 0, 1, 1, 0, 0, 0];
    list.extend([0; 12]);
    assert_eq!(a.frame(), list);
    // S_BroadcastEnterGame: size 20, id 1, playerId 1, 0,0,0.
    let mut enter1 = vec![20, 0, 1, 0, 1, 0, 0, 0];
    enter1.extend([0; 12]);
    assert_eq!(a.frame(), enter1);

    // A move, so the second player's list shows a real position.
    a.send(&c_move([1.5, -2.0, 0.25]));
    let mut moved = vec![20, 0, 6, 0, 1, 0, 0, 0];
    moved.extend([0x00, 0x00, 0xC0, 0x3F]); // 1.5f32
    moved.extend([0x00, 0x00, 0x00, 0xC0]); // -2.0f32
    moved.extend([0x00, 0x00, 0x80, 0x3E]); // 0.25f32
    assert_eq!(a.frame(), moved);

    let mut b = Client::connect(addr);
    // Size 40 = 6 + 2 × 17: itself first (isSelf, id 2, 0,0,0), then player 1 where it stands.
    let mut list2 = vec![40, 0, 4, 0, 2, 0, 1, 2, 0, 0, 0];
    list2.extend([0; 12]);
    list2.extend([0, 1, 0, 0, 0]);
    list2.extend([
        0x00, 0x00, 0xC0, 0x3F, 0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x80, 0x3E,
    ]);
    assert_eq!(b.frame(), list2);
    let mut enter2 = vec![20, 0, 1, 0, 2, 0, 0, 0];
    enter2.extend([0; 12]);
    assert_eq!(b.frame(), enter2);
    assert_eq!(a.frame(), enter2, "the first player sees the second enter");

    // C_Chat "hi" -> S_Chat: size 14, id 8, playerId 2, byte count 4, UTF-16LE "hi".
    b.send(&[10, 0, 7, 0, 4, 0, b'h', 0, b'i', 0]);
    let chat = [14, 0, 8, 0, 2, 0, 0, 0, 4, 0, b'h', 0, b'i', 0];
    assert_eq!(b.frame(), chat);
    assert_eq!(a.frame(), chat);

    // C_LeaveGame from 2 -> S_BroadcastLeaveGame: size 8, id 3, playerId 2.
    b.send(&C_LEAVE_GAME);
    assert_eq!(a.frame(), [8, 0, 3, 0, 2, 0, 0, 0]);
}

#[test]
fn players_see_each_other_move_and_chat() {
    let server = server(|_| {});
    let addr = server.local_addr();
    let (mut a, list) = Client::enter(addr);
    let a_id = a.id;
    assert_eq!(list.len(), 1);
    let (mut b, list) = Client::enter(addr);
    let b_id = b.id;
    assert_eq!(
        list,
        [
            Entry {
                is_self: true,
                id: b_id,
                pos: [0.0; 3]
            },
            Entry {
                is_self: false,
                id: a_id,
                pos: [0.0; 3]
            },
        ]
    );
    assert_eq!(
        a.msg(),
        Msg::Enter {
            id: b_id,
            pos: [0.0; 3]
        }
    );
    let (mut c, list) = Client::enter(addr);
    let c_id = c.id;
    assert_eq!(list.len(), 3);
    assert_ne!(c_id, a_id);
    assert_ne!(c_id, b_id);
    for x in [&mut a, &mut b] {
        assert_eq!(
            x.msg(),
            Msg::Enter {
                id: c_id,
                pos: [0.0; 3]
            }
        );
    }

    a.move_to([3.0, 4.0, 5.0]);
    for x in [&mut a, &mut b, &mut c] {
        assert_eq!(
            x.msg(),
            Msg::Move {
                id: a_id,
                pos: [3.0, 4.0, 5.0]
            }
        );
    }
    // Text goes through unchanged, Korean and emoji (surrogate pairs) included.
    let text = "안녕하세요 🎮 hello";
    c.chat(text);
    for x in [&mut a, &mut b, &mut c] {
        assert_eq!(
            x.msg(),
            Msg::Chat {
                id: c_id,
                text: text.into()
            }
        );
    }
    c.chat("");
    for x in [&mut a, &mut b, &mut c] {
        assert_eq!(
            x.msg(),
            Msg::Chat {
                id: c_id,
                text: String::new()
            }
        );
    }
    // A newcomer sees the stored position.
    let (_d, list) = Client::enter(addr);
    let seen_a = list.iter().find(|e| e.id == a_id).unwrap();
    assert_eq!(seen_a.pos, [3.0, 4.0, 5.0]);
    assert!(!seen_a.is_self);
}

#[test]
fn one_clients_packets_arrive_in_order() {
    let server = server(|_| {});
    let addr = server.local_addr();
    let (mut a, _) = Client::enter(addr);
    let a_id = a.id;
    let (mut b, _) = Client::enter(addr);
    a.msg(); // b entered
    let mut burst = Vec::new();
    for i in 0..200 {
        burst.extend(c_move([i as f32, 0.0, 0.0]));
    }
    burst.extend(c_chat("done"));
    a.send(&burst);
    for x in [&mut a, &mut b] {
        for i in 0..200 {
            assert_eq!(
                x.msg(),
                Msg::Move {
                    id: a_id,
                    pos: [i as f32, 0.0, 0.0]
                }
            );
        }
        assert_eq!(
            x.msg(),
            Msg::Chat {
                id: a_id,
                text: "done".into()
            }
        );
    }
}

#[test]
fn leave_notifies_others_and_keeps_the_connection() {
    let server = server(|_| {});
    let addr = server.local_addr();
    let (mut a, _) = Client::enter(addr);
    let a_id = a.id;
    let (mut b, _) = Client::enter(addr);
    let b_id = b.id;
    a.msg();
    assert_eq!(server.stats().players, 2);

    b.leave();
    assert_eq!(a.msg(), Msg::Leave { id: b_id });
    // Out of the room: moves, chats and a second leave are ignored, not errors.
    b.move_to([9.0, 9.0, 9.0]);
    b.chat("anyone?");
    b.leave();
    a.chat("still here");
    assert_eq!(
        a.msg(),
        Msg::Chat {
            id: a_id,
            text: "still here".into()
        }
    );
    a.expect_quiet();
    b.expect_quiet(); // still open, and hears nothing from the room
    eventually("one player left", || server.stats().players == 1);
    assert_eq!(server.stats().service.sessions, 2);
}

#[test]
fn disconnect_notifies_others() {
    let server = server(|_| {});
    let addr = server.local_addr();
    let (mut a, _) = Client::enter(addr);
    let (b, _) = Client::enter(addr);
    let b_id = b.id;
    a.msg();
    drop(b);
    assert_eq!(a.msg(), Msg::Leave { id: b_id });
    eventually("the session is gone", || {
        server.stats().service.sessions == 1
    });
    let (_c, list) = Client::enter(addr);
    assert_eq!(
        list.len(),
        2,
        "the list no longer has the disconnected player"
    );
}

/// Malformed frames, unknown ids and server packets close only the sender's session.
#[test]
fn bad_packets_close_only_that_session() {
    let server = server(|_| {});
    let addr = server.local_addr();
    let (mut a, _) = Client::enter(addr);
    let a_id = a.id;
    let bad_frames: [(&str, Vec<u8>); 6] = [
        ("C_Move with a short body", vec![8, 0, 5, 0, 0, 0, 0, 0]),
        ("C_Move with trailing bytes", {
            let mut f = c_move([1.0, 2.0, 3.0]);
            f.push(0);
            f[0] += 1;
            f
        }),
        (
            "C_Chat whose string runs past the frame",
            vec![8, 0, 7, 0, 10, 0, b'h', 0],
        ),
        ("unknown id 99", frame(99, &[])),
        ("S_Chat from a client", frame(8, &[1, 0, 0, 0, 0, 0])),
        ("S_BroadcastEnterGame from a client", frame(1, &[0; 16])),
    ];
    for (what, bad) in bad_frames {
        let (mut bad_client, _) = Client::enter(addr);
        assert!(matches!(a.msg(), Msg::Enter { .. }), "{what}");
        bad_client.send(&bad);
        bad_client.expect_closed();
        assert_eq!(a.msg(), Msg::Leave { id: bad_client.id }, "{what}");
        a.chat(what);
        assert_eq!(
            a.msg(),
            Msg::Chat {
                id: a_id,
                text: what.into()
            }
        );
    }
    // A frame header below 4 bytes is rejected by server-core's framing.
    let (mut bad_client, _) = Client::enter(addr);
    a.msg();
    bad_client.send(&[2, 0]);
    bad_client.expect_closed();
    assert_eq!(a.msg(), Msg::Leave { id: bad_client.id });
    eventually("only the good session left", || {
        server.stats().service.sessions == 1
    });
}

#[test]
fn room_capacity_opens_a_second_room() {
    let server = server(|c| c.room_capacity = 2);
    let addr = server.local_addr();
    let (mut a, _) = Client::enter(addr);
    let a_id = a.id;
    let (mut b, _) = Client::enter(addr);
    a.msg();
    let (mut c, list) = Client::enter(addr);
    let c_id = c.id;
    assert_eq!(list.len(), 1, "the third player is alone in a new room");
    assert_eq!(server.stats().rooms, 2);

    a.chat("room one");
    for x in [&mut a, &mut b] {
        assert_eq!(
            x.msg(),
            Msg::Chat {
                id: a_id,
                text: "room one".into()
            }
        );
    }
    c.chat("room two");
    assert_eq!(
        c.msg(),
        Msg::Chat {
            id: c_id,
            text: "room two".into()
        }
    );
    c.expect_quiet();
    a.expect_quiet();
    b.expect_quiet();

    // A fourth joins room two; when both leave, room two is closed (room one stays).
    let (mut d, list) = Client::enter(addr);
    let d_id = d.id;
    assert_eq!(list.len(), 2);
    assert_eq!(
        c.msg(),
        Msg::Enter {
            id: d_id,
            pos: [0.0; 3]
        }
    );
    c.leave();
    d.leave();
    eventually("the empty room closed", || server.stats().rooms == 1);
    a.leave();
    b.leave();
    c.expect_quiet();
    assert_eq!(
        server.stats().rooms,
        1,
        "the first room is kept even when empty"
    );
    let (_e, list) = Client::enter(addr);
    assert_eq!(list.len(), 1);
}

#[test]
fn tick_batches_but_delivers_everything() {
    let server = server(|c| c.tick_ms = 20);
    let addr = server.local_addr();
    let (mut a, _) = Client::enter(addr);
    let a_id = a.id;
    let (mut b, _) = Client::enter(addr);
    let b_id = b.id;
    assert_eq!(
        a.msg(),
        Msg::Enter {
            id: b_id,
            pos: [0.0; 3]
        }
    );
    for i in 0..50 {
        a.move_to([i as f32, 1.0, 2.0]);
        b.chat(&format!("line {i}"));
    }
    // Per sender the order is kept; the two senders interleave in some order.
    for x in [&mut a, &mut b] {
        let (mut moves, mut chats) = (0, 0);
        for _ in 0..100 {
            match x.msg() {
                Msg::Move { id, pos } => {
                    assert_eq!((id, pos), (a_id, [moves as f32, 1.0, 2.0]));
                    moves += 1;
                }
                Msg::Chat { id, text } => {
                    assert_eq!((id, text), (b_id, format!("line {chats}")));
                    chats += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    b.leave();
    assert_eq!(a.msg(), Msg::Leave { id: b_id });
}

#[test]
fn max_sessions_refuses_the_51st() {
    let server = server(|c| c.max_sessions = 50);
    let addr = server.local_addr();
    let clients: Vec<Client> = (0..50).map(|_| Client::enter(addr).0).collect();
    let mut extra = Client::connect(addr);
    extra.expect_closed();
    assert_eq!(server.refused_sessions(), 1);
    assert_eq!(server.stats().service.sessions, 50);
    drop(clients);
    eventually("all sessions closed", || {
        server.stats().service.sessions == 0
    });
    eventually("everyone left the room", || server.stats().players == 0);
}

#[test]
fn shutdown_closes_every_session() {
    let server = server(|_| {});
    let (mut a, _) = Client::enter(server.local_addr());
    let started = std::time::Instant::now();
    server.shutdown();
    a.expect_closed();
    assert!(started.elapsed() < Duration::from_secs(5));
    server.shutdown(); // idempotent
}

/// With a tick each member gets one send per tick, however many packets it carries: 50
/// moves to 2 members are 100 packets out but a handful of `writev`s, not 100.
#[test]
fn tick_sends_once_per_member_per_tick() {
    let server = server(|c| c.tick_ms = 50);
    let addr = server.local_addr();
    let (mut a, _) = Client::enter(addr);
    let (mut b, _) = Client::enter(addr);
    a.msg();
    let before = server.stats().service;
    let burst: Vec<u8> = (0..50).flat_map(|i| c_move([i as f32, 0.0, 0.0])).collect();
    a.send(&burst);
    for x in [&mut a, &mut b] {
        for i in 0..50 {
            assert!(matches!(x.msg(), Msg::Move { pos, .. } if pos[0] == i as f32));
        }
    }
    eventually("every packet is counted", || {
        server.stats().service.packets_out >= before.packets_out + 100
    });
    let sends = server.stats().service.write_calls - before.write_calls;
    assert!(sends <= 10, "{sends} writes for 100 packets");
}

/// 200 players in rooms of 50: four rooms, each player hears exactly its own room.
#[test]
fn many_rooms_side_by_side() {
    let server = server(|c| c.room_capacity = 50);
    let addr = server.local_addr();
    let mut clients: Vec<Client> = (0..200).map(|_| Client::enter(addr).0).collect();
    assert_eq!(server.stats().rooms, 4);
    assert_eq!(server.stats().players, 200);
    for c in &mut clients {
        let text = format!("from {}", c.id);
        c.chat(&text);
    }
    let room_of = |id: i32| (id - 1) / 50;
    for c in &mut clients {
        let mut heard = Vec::new();
        for _ in 0..100 {
            match c.msg() {
                Msg::Enter { id, .. } => assert_eq!(room_of(id), room_of(c.id)),
                Msg::Chat { id, text } => {
                    assert_eq!(text, format!("from {id}"));
                    heard.push(id);
                    if heard.len() == 50 {
                        break;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        heard.sort_unstable();
        let room = room_of(c.id);
        assert_eq!(heard, (room * 50 + 1..=room * 50 + 50).collect::<Vec<_>>());
    }
}
