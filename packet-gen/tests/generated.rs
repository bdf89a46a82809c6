//! Tests of the checked-in generated Rust (tests/generated/*/packets.rs).
//!
//! The snapshots are compared with freshly generated code in tests/snapshots.rs; this file
//! compiles them under `#![deny(warnings)]` and checks their behaviour: golden bytes,
//! round trips (property tests with a fixed seed) and hostile input.
#![deny(warnings)]

mod game {
    include!("generated/game/packets.rs");
}

mod all_types {
    include!("generated/all_types/packets.rs");
}

mod utf8 {
    include!("generated/utf8/packets.rs");
}

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn unhex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

// ---------------------------------------------------------------- golden bytes (game.xml)

#[test]
fn golden_c_chat_hi() {
    let p = game::C_Chat { chat: "Hi".into() };
    assert_eq!(game::C_Chat::ID, 7);
    let bytes = p.encode().unwrap();
    assert_eq!(hex(&bytes), "0A 00 07 00 04 00 48 00 69 00");
    assert_eq!(p.encoded_len(), 10);
    assert_eq!(
        game::Packet::decode(&bytes).unwrap(),
        game::Packet::C_Chat(p)
    );
}

#[test]
fn golden_c_move_is_16_bytes() {
    let p = game::C_Move {
        pos_x: 1.0,
        pos_y: 2.0,
        pos_z: -0.5,
    };
    let bytes = p.encode().unwrap();
    assert_eq!(
        hex(&bytes),
        "10 00 05 00 00 00 80 3F 00 00 00 40 00 00 00 BF"
    );
    assert_eq!(p.encoded_len(), 16);
    assert_eq!(game::Packet::decode(&bytes).unwrap(), p.into());
}

#[test]
fn golden_s_player_list_two_players() {
    let p = game::S_PlayerList {
        players: vec![
            game::s_player_list::Player {
                is_self: true,
                player_id: 1,
                pos_x: 1.0,
                pos_y: 0.0,
                pos_z: 2.5,
            },
            game::s_player_list::Player {
                is_self: false,
                player_id: 2,
                pos_x: -1.0,
                pos_y: 0.5,
                pos_z: 0.0,
            },
        ],
    };
    let want = "28 00 04 00 02 00 \
                01 01 00 00 00 00 00 80 3F 00 00 00 00 00 00 20 40 \
                00 02 00 00 00 00 00 80 BF 00 00 00 3F 00 00 00 00";
    let bytes = p.encode().unwrap();
    assert_eq!(bytes.as_ref(), unhex(want).as_slice());
    assert_eq!(game::Packet::decode(&bytes).unwrap(), p.into());
}

#[test]
fn golden_empty_packet() {
    let bytes = game::C_LeaveGame.encode().unwrap();
    assert_eq!(hex(&bytes), "04 00 02 00");
    assert_eq!(
        game::Packet::decode(&bytes).unwrap(),
        game::Packet::C_LeaveGame(game::C_LeaveGame)
    );
}

#[test]
fn golden_game_ids_and_names() {
    let names = [
        (1, "S_BroadcastEnterGame"),
        (2, "C_LeaveGame"),
        (3, "S_BroadcastLeaveGame"),
        (4, "S_PlayerList"),
        (5, "C_Move"),
        (6, "S_BroadcastMove"),
        (7, "C_Chat"),
        (8, "S_Chat"),
    ];
    let samples: Vec<game::Packet> = vec![
        game::S_BroadcastEnterGame::default().into(),
        game::C_LeaveGame.into(),
        game::S_BroadcastLeaveGame::default().into(),
        game::S_PlayerList::default().into(),
        game::C_Move::default().into(),
        game::S_BroadcastMove::default().into(),
        game::C_Chat::default().into(),
        game::S_Chat::default().into(),
    ];
    for ((id, name), p) in names.into_iter().zip(samples) {
        assert_eq!((p.id(), p.name()), (id, name));
        let bytes = p.encode().unwrap();
        assert_eq!(u16::from_le_bytes([bytes[2], bytes[3]]), id);
    }
    assert_eq!(game::S_BroadcastEnterGame::ID, 1);
    assert_eq!(game::S_Chat::ID, 8);
    let p: game::Packet = game::S_Chat::default().into();
    assert_eq!((p.id(), p.name()), (8, "S_Chat"));
}

// ------------------------------------------------------------ golden bytes (all_types.xml)

#[test]
fn golden_nested_lists() {
    use all_types::s_inventory::{item::Attribute, Item, Marker};
    let p = all_types::S_Inventory {
        owner_id: 7,
        items: vec![Item {
            item_id: 42,
            name: "A".into(),
            attributes: vec![
                Attribute {
                    kind: 1,
                    value: 1.0,
                },
                Attribute {
                    kind: 2,
                    value: 2.0,
                },
            ],
        }],
        markers: vec![Marker, Marker, Marker],
        note: String::new(),
    };
    let want = "24 00 03 00 07 00 00 00 01 00 2A 00 00 00 02 00 41 00 \
                02 00 01 00 00 00 80 3F 02 00 00 00 00 40 03 00 00 00";
    let bytes = p.encode().unwrap();
    assert_eq!(hex(&bytes), hex(&unhex(want)));
    assert_eq!(p.encoded_len(), 36);
    assert_eq!(all_types::Packet::decode(&bytes).unwrap(), p.into());
}

#[test]
fn golden_all_scalars() {
    let p = all_types::C_AllTypes {
        flag: true,
        level: 0xFE,
        delta: -2,
        hp: -3,
        mp: 0x1234,
        player_id: -4,
        gold: 0xDEAD_BEEF,
        account_id: -5,
        session_key: 0x0102_0304_0506_0708,
        pos_x: 1.5,
        exact_time: 0.25,
        nick_name: "😀".into(),
    };
    let want = "35 00 02 00 01 FE FE FD FF 34 12 FC FF FF FF EF BE AD DE \
                FB FF FF FF FF FF FF FF 08 07 06 05 04 03 02 01 00 00 C0 3F \
                00 00 00 00 00 00 D0 3F 04 00 3D D8 00 DE";
    let bytes = p.encode().unwrap();
    assert_eq!(hex(&bytes), hex(&unhex(want)));
    assert_eq!(all_types::Packet::decode(&bytes).unwrap(), p.into());
}

#[test]
fn keyword_fields_are_raw_identifiers() {
    let p = all_types::S_Type {
        r#type: 1,
        r#loops: vec![all_types::s_type::Loop { r#match: 9 }],
    };
    let bytes = p.encode().unwrap();
    assert_eq!(hex(&bytes), "0B 00 04 00 01 00 00 00 01 00 09");
}

#[test]
fn bool_non_zero_is_true() {
    let mut bytes = all_types::C_AllTypes::default().encode().unwrap().to_vec();
    bytes[4] = 0x7F;
    match all_types::Packet::decode(&bytes).unwrap() {
        all_types::Packet::C_AllTypes(p) => assert!(p.flag),
        other => panic!("{other:?}"),
    }
}

#[test]
fn golden_utf8_strings() {
    let p = utf8::C_Chat { chat: "Hé".into() };
    let bytes = p.encode().unwrap();
    assert_eq!(hex(&bytes), "09 00 01 00 03 00 48 C3 A9");
    assert_eq!(utf8::Packet::decode(&bytes).unwrap(), p.into());
    assert_eq!(
        utf8::Packet::decode(&unhex("09 00 01 00 03 00 48 C3 28")),
        Err(utf8::DecodeError::InvalidString {
            field: "C_Chat.chat"
        })
    );
}

// -------------------------------------------------------------------- decode errors

#[test]
fn decode_errors() {
    use game::{DecodeError, Packet};
    assert_eq!(
        Packet::decode(&[0x0A, 0x00, 0x07]),
        Err(DecodeError::Truncated {
            needed: 4,
            available: 3
        })
    );
    assert_eq!(
        Packet::decode(&unhex("0B 00 07 00 04 00 48 00 69 00")),
        Err(DecodeError::SizeMismatch {
            header: 11,
            actual: 10
        })
    );
    assert_eq!(
        Packet::decode(&unhex("04 00 63 00")),
        Err(DecodeError::UnknownId(99))
    );
    assert_eq!(
        Packet::decode(&unhex("04 00 00 00")),
        Err(DecodeError::UnknownId(0))
    );
    // String length says 4 bytes, only 2 left.
    assert_eq!(
        Packet::decode(&unhex("08 00 07 00 04 00 48 00")),
        Err(DecodeError::Truncated {
            needed: 10,
            available: 8
        })
    );
    // Odd UTF-16 length.
    assert_eq!(
        Packet::decode(&unhex("07 00 07 00 01 00 48")),
        Err(DecodeError::InvalidString {
            field: "C_Chat.chat"
        })
    );
    // Unpaired surrogate.
    assert_eq!(
        Packet::decode(&unhex("08 00 07 00 02 00 00 D8")),
        Err(DecodeError::InvalidString {
            field: "C_Chat.chat"
        })
    );
    // List claims 1000 players in 0 bytes.
    assert_eq!(
        Packet::decode(&unhex("06 00 04 00 E8 03")),
        Err(DecodeError::ListTooLong {
            field: "S_PlayerList.players",
            count: 1000,
            remaining: 0
        })
    );
    // Trailing byte after C_LeaveGame.
    assert_eq!(
        Packet::decode(&unhex("05 00 02 00 FF")),
        Err(DecodeError::TrailingBytes {
            packet: "C_LeaveGame",
            extra: 1
        })
    );
    // Display is human-readable.
    assert_eq!(DecodeError::UnknownId(9).to_string(), "unknown packet id 9");
}

#[test]
fn zero_sized_list_elements_accept_any_count() {
    // S_Inventory with 65535 markers: no bytes per marker, nothing heavy allocated.
    let frame = unhex("0E 00 03 00 00 00 00 00 00 00 FF FF 00 00");
    match all_types::Packet::decode(&frame).unwrap() {
        all_types::Packet::S_Inventory(p) => assert_eq!(p.markers.len(), 65535),
        other => panic!("{other:?}"),
    }
}

// -------------------------------------------------------------------- encode errors

#[test]
fn encode_errors() {
    use bytes::BytesMut;
    let big = game::C_Chat {
        chat: "x".repeat(40_000),
    };
    let mut buf = BytesMut::from(&b"keep"[..]);
    assert_eq!(
        big.encode_into(&mut buf),
        Err(game::EncodeError::StringTooLong {
            field: "C_Chat.chat",
            len: 80_000
        })
    );
    assert_eq!(&buf[..], b"keep", "nothing appended on error");

    let near = game::C_Chat {
        chat: "x".repeat(32_765),
    };
    assert_eq!(near.encoded_len(), 65_536);
    assert_eq!(
        near.encode(),
        Err(game::EncodeError::TooLarge { size: 65_536 })
    );
    let fits = game::C_Chat {
        chat: "x".repeat(32_764),
    };
    assert_eq!(fits.encode().unwrap().len(), 65_534);

    let many = all_types::S_Inventory {
        markers: vec![all_types::s_inventory::Marker; 65_536],
        ..Default::default()
    };
    assert_eq!(
        many.encode(),
        Err(all_types::EncodeError::ListTooLong {
            field: "S_Inventory.markers",
            len: 65_536
        })
    );

    // encode_into appends after existing content, and Packet forwards.
    let mut buf = BytesMut::new();
    let p: game::Packet = game::C_LeaveGame.into();
    p.encode_into(&mut buf).unwrap();
    game::C_Chat { chat: "Hi".into() }
        .encode_into(&mut buf)
        .unwrap();
    assert_eq!(hex(&buf), "04 00 02 00 0A 00 07 00 04 00 48 00 69 00");
}

// -------------------------------------------------------------------- dispatch

#[derive(Debug, PartialEq)]
enum TestError {
    Decode(game::DecodeError),
}

impl From<game::DecodeError> for TestError {
    fn from(e: game::DecodeError) -> Self {
        TestError::Decode(e)
    }
}

#[derive(Default)]
struct Server {
    seen: Vec<String>,
}

impl game::ServerPacketHandler for Server {
    type Error = TestError;
    fn on_c_leave_game(&mut self, _: game::C_LeaveGame) -> Result<(), TestError> {
        self.seen.push("leave".into());
        Ok(())
    }
    fn on_c_move(&mut self, p: game::C_Move) -> Result<(), TestError> {
        self.seen.push(format!("move {}", p.pos_x));
        Ok(())
    }
    fn on_c_chat(&mut self, p: game::C_Chat) -> Result<(), TestError> {
        self.seen.push(format!("chat {}", p.chat));
        Ok(())
    }
    fn on_unexpected(&mut self, p: game::Packet) -> Result<(), TestError> {
        self.seen.push(format!("unexpected {}", p.name()));
        Ok(())
    }
}

#[derive(Default)]
struct Client {
    seen: Vec<u16>,
}

impl game::ClientPacketHandler for Client {
    type Error = TestError;
    fn on_s_broadcast_enter_game(
        &mut self,
        p: game::S_BroadcastEnterGame,
    ) -> Result<(), TestError> {
        self.seen.push(game::Packet::from(p).id());
        Ok(())
    }
    fn on_s_broadcast_leave_game(
        &mut self,
        p: game::S_BroadcastLeaveGame,
    ) -> Result<(), TestError> {
        self.seen.push(game::Packet::from(p).id());
        Ok(())
    }
    fn on_s_player_list(&mut self, p: game::S_PlayerList) -> Result<(), TestError> {
        self.seen.push(game::Packet::from(p).id());
        Ok(())
    }
    fn on_s_broadcast_move(&mut self, p: game::S_BroadcastMove) -> Result<(), TestError> {
        self.seen.push(game::Packet::from(p).id());
        Ok(())
    }
    fn on_s_chat(&mut self, p: game::S_Chat) -> Result<(), TestError> {
        self.seen.push(game::Packet::from(p).id());
        Ok(())
    }
    fn on_unexpected(&mut self, p: game::Packet) -> Result<(), TestError> {
        self.seen.push(1000 + p.id());
        Ok(())
    }
}

#[test]
fn dispatch_calls_the_matching_handler() {
    let mut server = Server::default();
    for frame in [
        game::C_LeaveGame.encode().unwrap(),
        game::C_Move {
            pos_x: 3.0,
            ..Default::default()
        }
        .encode()
        .unwrap(),
        game::C_Chat { chat: "yo".into() }.encode().unwrap(),
        game::S_Chat::default().encode().unwrap(),
    ] {
        game::dispatch_server(&frame, &mut server).unwrap();
    }
    assert_eq!(
        server.seen,
        ["leave", "move 3", "chat yo", "unexpected S_Chat"]
    );
    assert_eq!(
        game::dispatch_server(&[1, 2], &mut server),
        Err(TestError::Decode(game::DecodeError::Truncated {
            needed: 4,
            available: 2
        }))
    );

    let mut client = Client::default();
    for frame in [
        game::S_BroadcastEnterGame::default().encode().unwrap(),
        game::S_BroadcastLeaveGame::default().encode().unwrap(),
        game::S_PlayerList::default().encode().unwrap(),
        game::S_BroadcastMove::default().encode().unwrap(),
        game::S_Chat::default().encode().unwrap(),
        game::C_Chat::default().encode().unwrap(),
    ] {
        game::dispatch_client(&frame, &mut client).unwrap();
    }
    assert_eq!(client.seen, [1, 3, 4, 6, 8, 1007]);
}

// -------------------------------------------------------------------- property tests

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        rng_seed: RngSeed::Fixed(0x5EED_0F9A_C4E7),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any f32 bit pattern except NaN (NaN != NaN would break value equality).
fn f32_no_nan() -> impl Strategy<Value = f32> {
    any::<u32>().prop_map(|b| {
        let f = f32::from_bits(b);
        if f.is_nan() {
            0.0
        } else {
            f
        }
    })
}

fn f64_no_nan() -> impl Strategy<Value = f64> {
    any::<u64>().prop_map(|b| {
        let f = f64::from_bits(b);
        if f.is_nan() {
            0.0
        } else {
            f
        }
    })
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn game_packet() -> impl Strategy<Value = game::Packet> {
    let pos = || (f32_no_nan(), f32_no_nan(), f32_no_nan());
    let player = (any::<bool>(), any::<i32>(), pos()).prop_map(|(s, id, (x, y, z))| {
        game::s_player_list::Player {
            is_self: s,
            player_id: id,
            pos_x: x,
            pos_y: y,
            pos_z: z,
        }
    });
    prop_oneof![
        (any::<i32>(), pos()).prop_map(|(id, (x, y, z))| game::S_BroadcastEnterGame {
            player_id: id,
            pos_x: x,
            pos_y: y,
            pos_z: z
        }
        .into()),
        Just(game::C_LeaveGame.into()),
        any::<i32>().prop_map(|id| game::S_BroadcastLeaveGame { player_id: id }.into()),
        proptest::collection::vec(player, 0..5)
            .prop_map(|players| game::S_PlayerList { players }.into()),
        pos().prop_map(|(x, y, z)| game::C_Move {
            pos_x: x,
            pos_y: y,
            pos_z: z
        }
        .into()),
        (any::<i32>(), pos()).prop_map(|(id, (x, y, z))| game::S_BroadcastMove {
            player_id: id,
            pos_x: x,
            pos_y: y,
            pos_z: z
        }
        .into()),
        text().prop_map(|chat| game::C_Chat { chat }.into()),
        (any::<i32>(), text()).prop_map(|(id, chat)| game::S_Chat {
            player_id: id,
            chat
        }
        .into()),
    ]
}

fn all_types_packet() -> impl Strategy<Value = all_types::Packet> {
    use all_types::s_inventory::{item::Attribute, Item, Marker};
    let scalars = (
        any::<bool>(),
        any::<u8>(),
        any::<i8>(),
        any::<i16>(),
        any::<u16>(),
        any::<i32>(),
        any::<u32>(),
        any::<i64>(),
        any::<u64>(),
        f32_no_nan(),
        f64_no_nan(),
        text(),
    )
        .prop_map(
            |(flag, level, delta, hp, mp, pid, gold, acc, key, x, t, nick)| {
                all_types::C_AllTypes {
                    flag,
                    level,
                    delta,
                    hp,
                    mp,
                    player_id: pid,
                    gold,
                    account_id: acc,
                    session_key: key,
                    pos_x: x,
                    exact_time: t,
                    nick_name: nick,
                }
                .into()
            },
        );
    let attribute =
        (any::<u16>(), f32_no_nan()).prop_map(|(kind, value)| Attribute { kind, value });
    let item = (
        any::<i32>(),
        text(),
        proptest::collection::vec(attribute, 0..4),
    )
        .prop_map(|(item_id, name, attributes)| Item {
            item_id,
            name,
            attributes,
        });
    let inventory = (
        any::<i32>(),
        proptest::collection::vec(item, 0..4),
        0usize..300,
        text(),
    )
        .prop_map(|(owner_id, items, markers, note)| {
            all_types::S_Inventory {
                owner_id,
                items,
                markers: vec![Marker; markers],
                note,
            }
            .into()
        });
    prop_oneof![
        Just(all_types::C_Empty.into()),
        scalars,
        inventory,
        (any::<i32>(), proptest::collection::vec(any::<u8>(), 0..5)).prop_map(|(t, m)| {
            all_types::S_Type {
                r#type: t,
                loops: m
                    .into_iter()
                    .map(|b| all_types::s_type::Loop { r#match: b })
                    .collect(),
            }
            .into()
        }),
    ]
}

fn utf8_packet() -> impl Strategy<Value = utf8::Packet> {
    prop_oneof![
        text().prop_map(|chat| utf8::C_Chat { chat }.into()),
        (
            any::<i32>(),
            text(),
            proptest::collection::vec(text(), 0..4)
        )
            .prop_map(|(id, chat, nicks)| utf8::S_Chat {
                player_id: id,
                chat,
                mentions: nicks
                    .into_iter()
                    .map(|nick| utf8::s_chat::Mention { nick })
                    .collect(),
            }
            .into()),
    ]
}

/// A valid frame mangled: byte flips, truncation, extension, with or without the size
/// field patched to match.
fn mutate(frame: &[u8], ops: &[(u8, u16, u8)]) -> Vec<u8> {
    let mut f = frame.to_vec();
    for &(op, at, val) in ops {
        let at = usize::from(at);
        match op % 5 {
            0 if !f.is_empty() => {
                let i = at % f.len();
                f[i] ^= val | 1;
            }
            1 => f.truncate(at % (f.len() + 1)),
            2 => f.push(val),
            3 if f.len() >= 2 => {
                let len = u16::try_from(f.len()).unwrap_or(u16::MAX);
                f[..2].copy_from_slice(&len.to_le_bytes());
            }
            4 if f.len() >= 6 => {
                // Corrupt a likely length/count field after the header.
                let i = 4 + at % (f.len() - 5);
                f[i] = val;
                f[i + 1] = val;
            }
            _ => {}
        }
    }
    f
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn game_round_trip(p in game_packet()) {
        let bytes = p.encode().unwrap();
        prop_assert_eq!(bytes.len(), p.encoded_len());
        let decoded = game::Packet::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &p);
        prop_assert_eq!(decoded.encode().unwrap(), bytes);
    }

    #[test]
    fn all_types_round_trip(p in all_types_packet()) {
        let bytes = p.encode().unwrap();
        prop_assert_eq!(bytes.len(), p.encoded_len());
        let decoded = all_types::Packet::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &p);
        prop_assert_eq!(decoded.encode().unwrap(), bytes);
    }

    #[test]
    fn utf8_round_trip(p in utf8_packet()) {
        let bytes = p.encode().unwrap();
        prop_assert_eq!(bytes.len(), p.encoded_len());
        prop_assert_eq!(utf8::Packet::decode(&bytes).unwrap(), p);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = game::Packet::decode(&bytes);
        let _ = all_types::Packet::decode(&bytes);
        let _ = utf8::Packet::decode(&bytes);
    }

    #[test]
    fn random_bodies_with_valid_header_never_panic(
        id in 0u16..6,
        body in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&u16::try_from(body.len() + 4).unwrap().to_le_bytes());
        frame.extend_from_slice(&id.to_le_bytes());
        frame.extend_from_slice(&body);
        let _ = all_types::Packet::decode(&frame);
        if let Ok(p) = game::Packet::decode(&frame) {
            // Whatever decodes re-encodes to the same bytes (NaN payloads included).
            prop_assert_eq!(p.encode().unwrap().to_vec(), frame);
        }
    }

    #[test]
    fn mutated_frames_never_panic(
        p in all_types_packet(),
        ops in proptest::collection::vec((any::<u8>(), any::<u16>(), any::<u8>()), 1..4),
    ) {
        let frame = mutate(&p.encode().unwrap(), &ops);
        if let Ok(decoded) = all_types::Packet::decode(&frame) {
            prop_assert_eq!(decoded.encode().unwrap().to_vec(), frame);
        }
    }

    #[test]
    fn mutated_game_frames_never_panic(
        p in game_packet(),
        ops in proptest::collection::vec((any::<u8>(), any::<u16>(), any::<u8>()), 1..4),
    ) {
        let frame = mutate(&p.encode().unwrap(), &ops);
        let _ = game::Packet::decode(&frame);
    }
}
