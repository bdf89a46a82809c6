//! Send pacing: one scheduler thread with a min-heap of next-send deadlines.
//!
//! A session enters the heap when it learns its player id, at `now + phase` with its own
//! random phase in `[0, interval)`, so the sessions' sends are spread over the interval
//! instead of in lock-step. After each send the next deadline is the previous one plus the
//! interval (no drift); when the thread has fallen more than an interval behind, the missed
//! slots are skipped rather than sent in a burst. Sending stops when the window ends.

use crate::crossing::is_probe;
use crate::packets::{C_Chat, C_Move};
use crate::session::{chat_text, move_key, Pending, Phase, Shared, Slot};
use crate::Mode;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A tiny xorshift64* generator: phases and positions need spread, not cryptography.
#[derive(Debug, Clone)]
pub(crate) struct XorShift(u64);

impl XorShift {
    /// A generator from any seed (mixed with splitmix64, so 0 is fine).
    pub(crate) fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[-50, 50)` as an `f32`.
    pub(crate) fn coordinate(&mut self) -> f32 {
        let v = (self.next_f64() * 100.0 - 50.0) as f32;
        if v >= 50.0 {
            -50.0
        } else {
            v
        }
    }

    /// A phase in `[0, interval)`.
    pub(crate) fn phase(&mut self, interval: Duration) -> Duration {
        let nanos = u64::try_from(interval.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_nanos(self.next_u64() % nanos)
    }
}

/// The next deadline after `deadline`, skipping slots already more than an interval late.
pub(crate) fn next_deadline(deadline: Instant, interval: Duration, now: Instant) -> Instant {
    let mut next = deadline + interval;
    if next + interval <= now {
        let behind = now.duration_since(next).as_nanos() / interval.as_nanos().max(1);
        let skip = u32::try_from(behind).unwrap_or(u32::MAX);
        next += interval * skip;
    }
    next
}

/// Drives every session's sends.
pub(crate) struct Scheduler {
    slots: Vec<Arc<Slot>>,
    shared: Arc<Shared>,
    ready: Receiver<usize>,
    interval: Duration,
    mode: Mode,
    rng: XorShift,
    seqs: Vec<u64>,
}

impl Scheduler {
    pub(crate) fn new(
        slots: Vec<Arc<Slot>>,
        shared: Arc<Shared>,
        ready: Receiver<usize>,
        interval: Duration,
        mode: Mode,
    ) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x5EED, |d| d.as_nanos() as u64);
        let seqs = vec![0; slots.len()];
        Self {
            slots,
            shared,
            ready,
            interval,
            mode,
            rng: XorShift::new(seed),
            seqs,
        }
    }

    pub(crate) fn spawn(self) -> JoinHandle<()> {
        std::thread::Builder::new()
            .name("dummy-scheduler".into())
            .spawn(move || self.run())
            .expect("spawn the scheduler thread")
    }

    fn run(mut self) {
        let mut heap: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
        let max_wait = Duration::from_millis(20);
        loop {
            if self.shared.phase() >= Phase::Draining {
                return;
            }
            let now = Instant::now();
            // Send everything due.
            while let Some(&Reverse((deadline, index))) = heap.peek() {
                if deadline > now {
                    break;
                }
                heap.pop();
                if self.send(index) {
                    let next = next_deadline(deadline, self.interval, Instant::now());
                    heap.push(Reverse((next, index)));
                }
            }
            let wait = heap
                .peek()
                .map_or(max_wait, |Reverse((d, _))| {
                    d.saturating_duration_since(Instant::now())
                })
                .min(max_wait);
            match self.ready.recv_timeout(wait) {
                Ok(index) => {
                    // Interval 0: idle sessions that connect and only read.
                    let sending = !self.interval.is_zero();
                    for index in std::iter::once(index).chain(self.ready.try_iter()) {
                        if sending {
                            let first = Instant::now() + self.rng.phase(self.interval);
                            heap.push(Reverse((first, index)));
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if heap.is_empty() {
                        return;
                    }
                    if let Some(Reverse((d, _))) = heap.peek() {
                        std::thread::sleep(
                            d.saturating_duration_since(Instant::now()).min(max_wait),
                        );
                    }
                }
            }
        }
    }

    /// One send of session `index`; false when the session is gone or sending is over.
    fn send(&mut self, index: usize) -> bool {
        let slot = &self.slots[index];
        let Some(session) = slot.session.get() else {
            return false;
        };
        if !session.is_connected() {
            return false;
        }
        let phase = self.shared.phase();
        if phase >= Phase::Draining {
            return false;
        }
        let marked = phase == Phase::Measuring;
        let seq = self.seqs[index];
        self.seqs[index] += 1;
        let (frame, key) = match self.mode {
            Mode::Chat => {
                let packet = C_Chat {
                    chat: chat_text(marked, seq),
                };
                (server_core::encode_with(|buf| packet.encode_into(buf)), seq)
            }
            Mode::Move => {
                let (x, z) = (self.rng.coordinate(), self.rng.coordinate());
                let packet = C_Move {
                    pos_x: x,
                    pos_y: 0.0,
                    pos_z: z,
                };
                (
                    server_core::encode_with(|buf| packet.encode_into(buf)),
                    move_key(x, z),
                )
            }
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                log::error!("cannot encode a packet: {e:?}");
                return false;
            }
        };
        let room = u64::from(slot.room_size.load(Ordering::Relaxed));
        slot.latency().push(Pending {
            key,
            at: Instant::now(),
            marked,
        });
        slot.sent_total.fetch_add(1, Ordering::Relaxed);
        if marked {
            slot.sent_marked.fetch_add(1, Ordering::Relaxed);
            slot.expected.fetch_add(room, Ordering::Relaxed);
        }
        if marked && self.mode == Mode::Chat && self.shared.servers > 1 && is_probe(index, seq) {
            self.shared.probes.sent(index, seq, Instant::now());
        }
        session.send(frame);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_stay_in_range() {
        let mut rng = XorShift::new(7);
        for _ in 0..100_000 {
            let c = rng.coordinate();
            assert!((-50.0..50.0).contains(&c), "{c}");
        }
    }

    #[test]
    fn phases_spread_over_the_interval() {
        let mut rng = XorShift::new(1);
        let interval = Duration::from_millis(250);
        let mut buckets = [0u32; 10];
        for _ in 0..10_000 {
            let p = rng.phase(interval);
            assert!(p < interval);
            buckets[(p.as_nanos() * 10 / interval.as_nanos()) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&b| (800..1200).contains(&b)),
            "{buckets:?}"
        );
    }

    #[test]
    fn next_deadline_keeps_phase_and_skips_missed_slots() {
        let t0 = Instant::now();
        let i = Duration::from_millis(100);
        assert_eq!(next_deadline(t0, i, t0), t0 + i);
        // On time or slightly late: just the next slot.
        assert_eq!(next_deadline(t0, i, t0 + i + i / 2), t0 + i);
        // 3.5 intervals late: slots 1 and 2 skipped, the next one is slot 3.
        assert_eq!(next_deadline(t0, i, t0 + i * 7 / 2), t0 + i * 3);
    }
}
