//! Property tests with fixed seeds: (a) any bytes, in any chunking, against the models of
//! the request parser and the decoder; (b) random valid client conversations (fragments,
//! masks, pings and pongs between fragments, a close at the end) decode to exactly the
//! payloads and control frames they were built from.

use super::*;
// Named, so it wins over proptest's `Rng` trait from the prelude glob.
use super::Rng;
use crate::transport::websocket::handshake::derive_accept_key;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

/// A small head limit so the tests cross it often.
fn small_config() -> HandshakeConfig {
    HandshakeConfig {
        max_head_bytes: 512,
        max_headers: 10,
        ..HandshakeConfig::default()
    }
}

/// Request-like inputs: random bytes, valid upgrades, mutated ones, bloated ones.
fn request_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..700),
        any::<u64>().prop_map(|seed| valid_upgrade(&mut Rng::new(seed)).0.into_bytes()),
        any::<u64>().prop_map(|seed| {
            let mut rng = Rng::new(seed);
            let mut bytes = valid_upgrade(&mut rng).0.into_bytes();
            mutate(&mut rng, &mut bytes);
            bytes
        }),
        (any::<u64>(), 0usize..900).prop_map(|(seed, cookie)| {
            let (request, _) = valid_upgrade(&mut Rng::new(seed));
            request
                .replacen(
                    "Host:",
                    &format!("Cookie: {}\r\nHost:", "c".repeat(cookie)),
                    1,
                )
                .into_bytes()
        }),
    ]
}

/// A valid client stream with mutations: the inputs most likely to reach deep states.
fn frame_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..400),
        (any::<u64>(), any::<bool>()).prop_map(|(seed, mutated)| {
            let mut rng = Rng::new(seed);
            let mut bytes = random_valid_stream(&mut rng);
            if mutated {
                mutate(&mut rng, &mut bytes);
            }
            bytes
        }),
    ]
}

/// Valid frames from a generator, for the fuzz-style inputs: a few messages in fragments,
/// controls between them, sometimes a close.
pub(super) fn random_valid_stream(rng: &mut Rng) -> Vec<u8> {
    let mut frames = Vec::new();
    for _ in 0..rng.below(5) {
        let fragments = 1 + rng.below(3);
        for i in 0..fragments {
            let len = if rng.below(8) == 0 {
                126 + rng.below(300)
            } else {
                rng.below(20)
            };
            let opcode = if i == 0 { 0x2 } else { 0x0 };
            let mut frame = ClientFrame::new(opcode, &rng.bytes(len)).fin(i + 1 == fragments);
            frame.mask = Some([0, 0, 0, 0].map(|_: u8| rng.next_u64() as u8));
            frames.push(frame);
            match rng.below(5) {
                0 => {
                    let len = rng.below(126);
                    frames.push(ClientFrame::new(0x9, &rng.bytes(len)));
                }
                1 => {
                    let len = rng.below(10);
                    frames.push(ClientFrame::new(0xA, &rng.bytes(len)));
                }
                _ => {}
            }
        }
    }
    if rng.below(3) == 0 {
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"done");
        frames.push(ClientFrame::new(0x8, &payload));
    }
    encode_all(&frames)
}

/// A control frame between fragments in the model test.
#[derive(Debug, Clone)]
enum Between {
    Nothing,
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..40),
        2 => proptest::collection::vec(any::<u8>(), 120..400),
        // 64-bit lengths; content from a formula keeps the strategy cheap.
        1 => (65_536usize..70_000).prop_map(|n| (0..n).map(|i| (i * 31 % 251) as u8).collect()),
    ]
}

fn between() -> impl Strategy<Value = Between> {
    prop_oneof![
        4 => Just(Between::Nothing),
        1 => proptest::collection::vec(any::<u8>(), 0..=125).prop_map(Between::Ping),
        1 => proptest::collection::vec(any::<u8>(), 0..=125).prop_map(Between::Pong),
    ]
}

/// A message: its fragments, each followed by an optional control frame.
fn message() -> impl Strategy<Value = Vec<(Vec<u8>, Between)>> {
    proptest::collection::vec((payload(), between()), 1..4)
}

fn close() -> impl Strategy<Value = Option<(u16, String)>> {
    proptest::option::of((
        prop_oneof![Just(1000u16), Just(1001), 3000u16..5000],
        "[a-z가-힣 ]{0,20}",
    ))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, rng_seed: RngSeed::Fixed(0x5EED_3A11), ..ProptestConfig::default() })]

    /// (a) The request parser on any bytes in any chunking: never panics, never says
    /// `Incomplete` past the limit, agrees with the grammar model, never changes its mind.
    #[test]
    fn handshake_agrees_with_model_in_any_chunking(
        input in request_input(),
        cuts in proptest::collection::vec(0usize..1000, 0..8),
    ) {
        check_handshake(&input, &cuts, &small_config());
        check_handshake(&input, &cuts, &HandshakeConfig::default());
    }

    /// Valid upgrades, however they are spelled, are accepted with the right key.
    #[test]
    fn valid_upgrades_are_accepted(seed in any::<u64>()) {
        let (request, key) = valid_upgrade(&mut Rng::new(seed));
        let got = parse_request(request.as_bytes(), &HandshakeConfig::default());
        let Ok(Handshake::Upgrade { consumed, response, .. }) = got else {
            panic!("{request:?} gave {got:?}");
        };
        prop_assert_eq!(consumed, request.len());
        let accept = derive_accept_key(key.as_bytes());
        let expected = format!("Sec-WebSocket-Accept: {}\r\n", std::str::from_utf8(&accept).unwrap());
        prop_assert!(std::str::from_utf8(&response).unwrap().contains(&expected));
    }

    /// (a) The decoder on any bytes in any chunking: never panics, never leaves more than
    /// `MAX_UNCONSUMED` bytes behind, and agrees with the whole-input reference decoder.
    #[test]
    fn decoder_agrees_with_reference_in_any_chunking(
        input in frame_input(),
        chunk_seed in any::<u64>(),
        max_message_size in prop_oneof![Just(1u64 << 20), 1u64..300],
    ) {
        check_decoder(&input, max_message_size, chunk_seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, rng_seed: RngSeed::Fixed(0x5EED_3A12), ..ProptestConfig::default() })]

    /// (b) Random valid conversations decode to exactly what they were built from.
    #[test]
    fn valid_conversations_decode_to_their_payloads_and_controls(
        messages in proptest::collection::vec(message(), 0..6),
        masks in proptest::collection::vec(any::<[u8; 4]>(), 1..8),
        close in close(),
        chunk_seed in any::<u64>(),
    ) {
        let mut frames = Vec::new();
        let mut expected = Outcome::default();
        let mut next_mask = masks.iter().cycle();
        for message in &messages {
            for (i, (fragment, between)) in message.iter().enumerate() {
                let opcode = if i == 0 { 0x2 } else { 0x0 };
                let mut frame = ClientFrame::new(opcode, fragment).fin(i + 1 == message.len());
                frame.mask = next_mask.next().copied();
                frames.push(frame);
                expected.stream.extend_from_slice(fragment);
                match between {
                    Between::Nothing => {}
                    Between::Ping(data) => {
                        frames.push(ClientFrame::new(0x9, data));
                        let ping = ControlPayload::new(data).unwrap();
                        expected.controls.push((expected.stream.len(), Control::Ping(ping)));
                    }
                    Between::Pong(data) => frames.push(ClientFrame::new(0xA, data)),
                }
            }
        }
        if let Some((code, reason)) = &close {
            // At most 20 characters of 3 bytes: always within the 123 a reason may take.
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(reason.as_bytes());
            frames.push(ClientFrame::new(0x8, &payload));
            let close = Control::Close(close_frame(Some(*code), &payload));
            expected.controls.push((expected.stream.len(), close));
        }
        let input = encode_all(&frames);
        let got = feed(&mut WsDecoder::new(1 << 20), &input, chunker(chunk_seed));
        prop_assert_eq!(&got, &expected);
    }
}
