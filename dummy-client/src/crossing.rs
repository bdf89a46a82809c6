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

/// One marked chat in this many is timed across servers.
pub(crate) const PROBE_EVERY: u64 = 16;
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

/// Whether chat number `seq` of a session is a probe.
pub(crate) fn is_probe(seq: u64) -> bool {
    seq.is_multiple_of(PROBE_EVERY)
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
        assert!(is_probe(0) && is_probe(32) && !is_probe(5));
        probes.sent(3, 32, t0);
        probes.received(3, 32, t0 + Duration::from_millis(4));
        probes.received(3, 32, t0 + Duration::from_millis(6));
        probes.received(3, 48, t0 + Duration::from_millis(6)); // never sent: ignored
        let mut h = crate::new_histogram();
        probes.merge(&mut h, t0);
        assert_eq!(h.len(), 2);
        assert_eq!(h.max() / 1000, 6);
        probes.merge(&mut h, t0 + KEEP);
        assert!(lock(&probes.sent).is_empty());
    }
}
