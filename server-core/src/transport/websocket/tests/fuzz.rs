//! Fuzz-style run with a fixed seed and a count and time budget (`cargo fuzz` needs
//! nightly): random, valid, mutated and spliced inputs into the request parser and the
//! decoder, each checked against its model, any panic reported with its input.

use super::model::random_valid_stream;
use super::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// One input for the request parser.
fn request_input(rng: &mut Rng) -> Vec<u8> {
    match rng.below(6) {
        0 => {
            let n = rng.below(600);
            rng.bytes(n)
        }
        1 => valid_upgrade(rng).0.into_bytes(),
        2 => {
            // Printable noise with line breaks: gets past the first byte more often.
            let n = rng.below(600);
            (0..n)
                .map(|_| match rng.below(12) {
                    0 => b'\n',
                    1 => b'\r',
                    2 => b':',
                    _ => b' ' + rng.below(95) as u8,
                })
                .collect()
        }
        _ => {
            let mut bytes = valid_upgrade(rng).0.into_bytes();
            mutate(rng, &mut bytes);
            bytes
        }
    }
}

/// One input for the decoder: valid streams, mutated, spliced or random.
fn frame_input(rng: &mut Rng) -> Vec<u8> {
    match rng.below(6) {
        0 => {
            let n = rng.below(300);
            rng.bytes(n)
        }
        1 => random_valid_stream(rng),
        2 => {
            // Two valid streams spliced at random points.
            let a = random_valid_stream(rng);
            let b = random_valid_stream(rng);
            let (i, j) = (rng.below(a.len() + 1), rng.below(b.len() + 1));
            [&a[..i], &b[j..]].concat()
        }
        _ => {
            let mut bytes = random_valid_stream(rng);
            mutate(rng, &mut bytes);
            bytes
        }
    }
}

/// Runs up to `count` inputs of each kind, stopping at `time_cap`; returns how many ran.
fn fuzz(seed: u64, count: usize, time_cap: Duration) -> usize {
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let small = HandshakeConfig {
        max_head_bytes: 512,
        max_headers: 8,
        ..HandshakeConfig::default()
    };
    let default = HandshakeConfig::default();
    let mut run = 0;
    while run < count && (run % 256 != 0 || started.elapsed() < time_cap) {
        let request = request_input(&mut rng);
        let cuts: Vec<usize> = (0..rng.below(6))
            .map(|_| rng.below(request.len() + 1))
            .collect();
        let frames = frame_input(&mut rng);
        let max_message_size = if rng.below(3) == 0 {
            1 + rng.below(200) as u64
        } else {
            1 << 20
        };
        let chunk_seed = rng.next_u64();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            check_handshake(&request, &cuts, &small);
            check_handshake(&request, &cuts, &default);
            check_decoder(&frames, max_message_size, chunk_seed);
        }));
        if outcome.is_err() {
            panic!(
                "seed {seed:#x}, input #{run} failed (see the panic above)\nrequest {cuts:?}: {:?}\nframes (max {max_message_size}, chunks {chunk_seed:#x}): {:02x?}",
                String::from_utf8_lossy(&request),
                frames
            );
        }
        run += 1;
    }
    run
}

/// 20,000 of each input kind, capped at 8 s (a debug build on a shared 2-core machine
/// gets through several thousand a second).
#[test]
fn random_and_mutated_inputs_agree_with_the_models() {
    let run = fuzz(0xF0CC_0B5E, 20_000, Duration::from_secs(8));
    assert!(run >= 2_000, "only {run} inputs in the time cap");
}
