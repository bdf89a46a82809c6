//! The wire format: round trips, every refusal, and a seeded fuzz run of the decoder.

use super::*;
use crate::packets::{
    C_Move, S_BroadcastEnterGame, S_BroadcastLeaveGame, S_BroadcastMove, S_Chat, S_PlayerList,
};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

fn header(first_seq: u64, last_seq: u64) -> Header {
    Header {
        origin: ProcessId(0x1234_5678_9abc_def0),
        room: RoomId(7),
        first_seq,
        last_seq,
    }
}

fn sample_frames() -> Vec<Bytes> {
    vec![
        S_BroadcastEnterGame {
            player_id: 5,
            pos_x: 0.0,
            pos_y: 0.0,
            pos_z: 0.0,
        }
        .encode()
        .unwrap(),
        S_BroadcastMove {
            player_id: 5,
            pos_x: 1.5,
            pos_y: 0.0,
            pos_z: -2.0,
        }
        .encode()
        .unwrap(),
        S_Chat {
            player_id: 5,
            chat: "안녕 👋".into(),
        }
        .encode()
        .unwrap(),
        S_BroadcastLeaveGame { player_id: 5 }.encode().unwrap(),
    ]
}

#[test]
fn a_batch_round_trips_with_its_effects() {
    let frames = sample_frames();
    let msg = encode_batch(&header(3, 5), &frames);
    assert_eq!(&msg[..4], b"GS\x01\x01");
    let decoded = decode(&msg).unwrap();
    assert_eq!(decoded.header, header(3, 5));
    assert_eq!(
        decoded.body,
        Body::Batch {
            frames: join(&frames),
            effects: vec![
                Effect::Entered(5, [0.0; 3]),
                Effect::Moved(5, [1.5, 0.0, -2.0]),
                Effect::Left(5),
            ],
        }
    );
    assert_eq!(peek(&msg).unwrap().0, header(3, 5));
}

#[test]
fn a_snapshot_round_trips() {
    let players = vec![(1, [1.0, 2.0, 3.0]), (-4, [f32::MAX, 0.0, -0.5])];
    for reply_wanted in [false, true] {
        let msg = encode_snapshot(&header(9, 9), &players, reply_wanted);
        assert_eq!(
            decode(&msg).unwrap().body,
            Body::Snapshot {
                players: players.clone(),
                reply_wanted
            }
        );
    }
    let empty = encode_snapshot(&header(1, 1), &[], false);
    assert_eq!(empty.len(), HEADER_LEN + 4);
    assert!(decode(&empty).is_ok());
}

#[test]
fn everything_else_is_refused_with_a_reason() {
    let good = encode_batch(&header(1, 1), &sample_frames());
    let with = |at: usize, byte: u8| {
        let mut m = good.clone();
        m[at] = byte;
        m
    };
    assert_eq!(decode(&good[..10]), Err(WireError::TooShort { len: 10 }));
    assert_eq!(decode(&with(0, b'X')), Err(WireError::Magic(*b"XS")));
    assert_eq!(decode(&with(2, 2)), Err(WireError::Version(2)));
    assert_eq!(decode(&with(3, 9)), Err(WireError::Kind(9)));
    let zero_seq = encode_batch(&header(0, 0), &[]);
    assert!(matches!(decode(&zero_seq), Err(WireError::Sequence { .. })));
    let backwards = encode_batch(&header(5, 4), &[]);
    assert!(matches!(
        decode(&backwards),
        Err(WireError::Sequence { .. })
    ));
    let ranged_snapshot = encode_snapshot(&header(1, 2), &[], false);
    assert!(matches!(
        decode(&ranged_snapshot),
        Err(WireError::Sequence { .. })
    ));
    assert!(matches!(
        decode(&good[..good.len() - 1]),
        Err(WireError::Frame { .. })
    ));
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[1, 0]);
    assert!(matches!(decode(&trailing), Err(WireError::Frame { .. })));
    let client_packet = C_Move::default().encode().unwrap();
    assert!(matches!(
        decode(&encode_batch(&header(1, 1), &[client_packet])),
        Err(WireError::NotABroadcast {
            packet: "C_Move",
            ..
        })
    ));
    let list = S_PlayerList::default().encode().unwrap();
    assert!(matches!(
        decode(&encode_batch(&header(1, 1), &[list])),
        Err(WireError::NotABroadcast { .. })
    ));
    let mut bad_count = encode_snapshot(&header(1, 1), &[(1, [0.0; 3])], false);
    bad_count[HEADER_LEN] = 2;
    assert!(matches!(
        decode(&bad_count),
        Err(WireError::Snapshot { count: 2, .. })
    ));
    let huge = vec![0u8; MAX_MESSAGE_LEN + 1];
    assert!(matches!(decode(&huge), Err(WireError::TooLong { .. })));
}

/// Valid messages, to mutate.
fn valid_message() -> impl Strategy<Value = Vec<u8>> {
    let batch = (
        1u64..1000,
        0u64..5,
        proptest::collection::vec(0usize..4, 0..8),
    )
        .prop_map(|(first, more, picks)| {
            let all = sample_frames();
            let frames: Vec<Bytes> = picks.into_iter().map(|i| all[i].clone()).collect();
            encode_batch(&header(first, first + more), &frames)
        });
    let snapshot = (
        1u64..1000,
        proptest::collection::vec((any::<i32>(), any::<[f32; 3]>()), 0..20),
        any::<bool>(),
    )
        .prop_map(|(seq, players, reply)| encode_snapshot(&header(seq, seq), &players, reply));
    prop_oneof![batch, snapshot]
}

/// A valid message with a few bytes changed, cut, or extended.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        valid_message(),
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        proptest::option::of(any::<usize>()),
        proptest::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(mut msg, flips, cut, tail)| {
            for (at, byte) in flips {
                let len = msg.len();
                msg[at % len] = byte;
            }
            if let Some(cut) = cut {
                msg.truncate(cut % (msg.len() + 1));
            }
            msg.extend(tail);
            msg
        })
}

/// What an accepted message says, encoded again: the decoder accepts only what it can
/// reproduce.
fn reencode(msg: &Message) -> Vec<u8> {
    match &msg.body {
        Body::Batch { frames, .. } => encode_batch(&msg.header, std::slice::from_ref(frames)),
        Body::Snapshot {
            players,
            reply_wanted,
        } => encode_snapshot(&msg.header, players, *reply_wanted),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x6A5E_C1A5),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode(&bytes);
        let mut with_header = b"GS\x01\x01".to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = decode(&with_header);
    }

    #[test]
    fn mutated_messages_are_refused_or_read_exactly(msg in mutated()) {
        if let Ok(decoded) = decode(&msg) {
            prop_assert_eq!(reencode(&decoded), msg);
        }
    }
}
