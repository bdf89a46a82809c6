//! Latency across servers (`--addr a,b,...`): how long a chat takes from its sender to the
//! receivers on *other* servers, which the own-broadcast latency cannot show (a sender's
//! own copy never leaves its server).
//!
//! One marked chat in [`PROBE_EVERY`] is a probe: the scheduler notes its send time under
//! (sender's slot, sequence number), and every receiver on another server that gets it
//! records `now - sent`. The wire traffic is the same as without probes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// One marked chat in this many is timed across servers: enough samples for a p99 in a
/// few seconds (500 sessions give 2,000 timed receipts a second), few enough that the
/// shared table is not a cost the load generator takes from the servers it measures.
pub(crate) const PROBE_EVERY: u64 = 64;
/// Send times are kept this long (a probe not received by then is not going to be).
const KEEP: Duration = Duration::from_secs(10);
/// Samples kept between two merges into the histogram (one second apart).
const MAX_SAMPLES: usize = 1 << 17;

/// The probes in flight and the samples not yet merged.
#[derive(Debug, Default)]
pub(crate) struct Probes {
    sent: Mutex<HashMap<(usize, u64), Instant>>,
    samples: Mutex<Vec<u64>>,
}

/// A hasher for player ids: one multiplication, where the default SipHash would cost the
/// load generator a noticeable share of a core at a million lookups a second.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i32(&mut self, id: i32) {
        self.0 = u64::from(id as u32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by player id, hashed with [`IdHasher`].
pub(crate) type IdMap<V> = HashMap<i32, V, std::hash::BuildHasherDefault<IdHasher>>;

/// Whether chat number `seq` of session `slot` is a probe: one in [`PROBE_EVERY`], picked
/// by a hash of both so probes are spread over sessions and time from the first second on.
pub(crate) fn is_probe(slot: usize, seq: u64) -> bool {
    let h = (seq ^ (slot as u64).rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h < u64::MAX / PROBE_EVERY
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Probes {
    /// Session `slot` sent probe `seq` at `at`.
    pub(crate) fn sent(&self, slot: usize, seq: u64, at: Instant) {
        lock(&self.sent).insert((slot, seq), at);
    }

    /// A receiver on another server got probe `seq` of session `slot` at `now`.
    pub(crate) fn received(&self, slot: usize, seq: u64, now: Instant) {
        let Some(at) = lock(&self.sent).get(&(slot, seq)).copied() else {
            return;
        };
        let us = u64::try_from(now.saturating_duration_since(at).as_micros()).unwrap_or(u64::MAX);
        let mut samples = lock(&self.samples);
        if samples.len() < MAX_SAMPLES {
            samples.push(us.max(1));
        }
    }

    /// Forgets probes sent more than [`KEEP`] ago, and moves the samples into `into`.
    pub(crate) fn merge(&self, into: &mut hdrhistogram::Histogram<u64>, now: Instant) {
        lock(&self.sent).retain(|_, at| now.saturating_duration_since(*at) < KEEP);
        for us in std::mem::take(&mut *lock(&self.samples)) {
            into.saturating_record(us);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_is_timed_by_every_receiver_and_forgotten_later() {
        let probes = Probes::default();
        let t0 = Instant::now();
        let picked = (0..64_000u64)
            .filter(|&i| is_probe(i as usize % 500, i))
            .count();
        assert!((800..1200).contains(&picked), "about one in 64: {picked}");
        probes.sent(3, 128, t0);
        probes.received(3, 128, t0 + Duration::from_millis(4));
        probes.received(3, 128, t0 + Duration::from_millis(6));
        probes.received(3, 192, t0 + Duration::from_millis(6)); // never sent: ignored
        let mut h = crate::new_histogram();
        probes.merge(&mut h, t0);
        assert_eq!(h.len(), 2);
        assert_eq!(h.max() / 1000, 6);
        probes.merge(&mut h, t0 + KEEP);
        assert!(lock(&probes.sent).is_empty());
    }
}
