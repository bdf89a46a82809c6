//! Inbound rate limits: two token buckets per session (packets and bytes), with the time
//! passed in, so the limiter is pure and testable without clocks or sockets.
//!
//! Each bucket is kept as a "theoretical arrival time" (the generic cell rate algorithm,
//! GCRA): admitting a cost `c` at rate `r` moves it `c / r` later; a packet fits while that
//! stays within `burst / r` of now. One `Instant` per bucket, integer nanoseconds, no
//! floating-point drift:
//!
//! ```text
//!   now            tat                       now + burst/r
//!    |--------------|-------------------------|
//!    |  spent       |  tokens still available |      admit c: tat' = max(tat, now) + c/r
//!                                                    fits if tat' <= now + burst/r
//! ```

use crate::config::defaults;
use std::time::{Duration, Instant};

/// What happens to packets that arrive faster than a session's [`RateLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Excess {
    /// Stop reading from the session until its buckets refill: nothing is lost, the peer is
    /// slowed by TCP flow control, and no CPU is spent on the excess. The default.
    Throttle,
    /// Read and discard the excess packets (counted in
    /// [`ServiceStats::rate_limited_packets`](crate::ServiceStats::rate_limited_packets)).
    Drop,
    /// Discard the excess, and close the session with
    /// [`DisconnectReason::RateLimited`](crate::DisconnectReason::RateLimited) once it has
    /// kept exceeding its rate for `after`.
    Disconnect {
        /// How long the excess may last.
        after: Duration,
    },
}

/// Inbound limits of one listener's sessions: a sustained rate and a burst, in packets and
/// in bytes. A packet is admitted when both buckets hold enough tokens.
///
/// The defaults ([`defaults::PACKETS_PER_SEC`] = 1,000 packets/s with a burst of 1,000,
/// [`defaults::BYTES_PER_SEC`] = 1 MiB/s with a burst of 2 MiB, [`Excess::Throttle`]) are
/// far above what a player sends (a client moving at 60 Hz and chatting sends ~70 packets
/// and a few KiB per second) and far below what one client can flood (hundreds of thousands
/// of packets per second on loopback).
///
/// # Examples
/// ```
/// use server_core::{Excess, RateLimit};
/// use std::time::Duration;
///
/// let strict = RateLimit::new(100, 64 * 1024)
///     .packet_burst(200)
///     .on_excess(Excess::Disconnect { after: Duration::from_secs(5) });
/// assert_eq!(strict.packets_per_sec, 100);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Sustained packets per second.
    pub packets_per_sec: u32,
    /// Packets allowed at once above the sustained rate (the bucket's size).
    pub packet_burst: u32,
    /// Sustained bytes per second (frame headers included).
    pub bytes_per_sec: u32,
    /// Bytes allowed at once above the sustained rate; at least the max packet size.
    pub byte_burst: u32,
    /// What happens to the excess.
    pub on_excess: Excess,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            packets_per_sec: defaults::PACKETS_PER_SEC,
            packet_burst: defaults::PACKET_BURST,
            bytes_per_sec: defaults::BYTES_PER_SEC,
            byte_burst: defaults::BYTE_BURST,
            on_excess: Excess::Throttle,
        }
    }
}

impl RateLimit {
    /// `packets_per_sec` and `bytes_per_sec` sustained, with bursts of one second's worth
    /// (bytes: two seconds' worth, and at least the default burst so a largest packet fits)
    /// and [`Excess::Throttle`].
    #[must_use]
    pub fn new(packets_per_sec: u32, bytes_per_sec: u32) -> Self {
        Self {
            packets_per_sec,
            packet_burst: packets_per_sec,
            bytes_per_sec,
            byte_burst: bytes_per_sec
                .saturating_mul(2)
                .max(defaults::MAX_PACKET_SIZE as u32),
            on_excess: Excess::Throttle,
        }
    }

    /// Sets the packet burst.
    #[must_use]
    pub fn packet_burst(mut self, packets: u32) -> Self {
        self.packet_burst = packets;
        self
    }

    /// Sets the byte burst.
    #[must_use]
    pub fn byte_burst(mut self, bytes: u32) -> Self {
        self.byte_burst = bytes;
        self
    }

    /// Sets the policy for the excess.
    #[must_use]
    pub fn on_excess(mut self, policy: Excess) -> Self {
        self.on_excess = policy;
        self
    }
}

/// A refused packet counts as part of the same episode of excess if it comes within this
/// long of the previous refusal; an episode is logged once when it starts and once when it
/// ends, never per packet.
const EPISODE_GAP: Duration = Duration::from_secs(1);

/// One session's buckets and its current episode of excess.
#[derive(Debug)]
pub(crate) struct Limiter {
    /// Theoretical arrival time of the packet bucket.
    packets_tat: Instant,
    /// Theoretical arrival time of the byte bucket.
    bytes_tat: Instant,
    /// Boxed: most sessions never have one, and every session carries a limiter.
    episode: Option<Box<Episode>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Episode {
    pub(crate) started: Instant,
    pub(crate) last_refusal: Instant,
    pub(crate) refused: u64,
}

/// The limiter's answer for one packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Admission {
    /// Take it; if an episode of excess ended with this packet, here it is (for the log).
    Admit { ended: Option<Episode> },
    /// Over the limit. `wait` is how long until the buckets hold enough for this packet;
    /// `started` is true for the first refusal of an episode (log it once).
    Refuse {
        wait: Duration,
        started: bool,
        episode: Episode,
    },
}

impl Limiter {
    /// Full buckets: a new session may burst at once.
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            packets_tat: now,
            bytes_tat: now,
            episode: None,
        }
    }

    /// Asks to take one packet of `len` bytes at `now`.
    pub(crate) fn admit(&mut self, limit: &RateLimit, len: usize, now: Instant) -> Admission {
        let packets = self.packets_tat.max(now) + cost(1, limit.packets_per_sec);
        let bytes = self.bytes_tat.max(now) + cost(len as u64, limit.bytes_per_sec);
        let packets_over = packets
            .saturating_duration_since(now)
            .saturating_sub(cost(u64::from(limit.packet_burst), limit.packets_per_sec));
        let bytes_over = bytes
            .saturating_duration_since(now)
            .saturating_sub(cost(u64::from(limit.byte_burst), limit.bytes_per_sec));
        if packets_over.is_zero() && bytes_over.is_zero() {
            self.packets_tat = packets;
            self.bytes_tat = bytes;
            let ended = match &self.episode {
                Some(e) if now.saturating_duration_since(e.last_refusal) >= EPISODE_GAP => {
                    self.episode.take().map(|e| *e)
                }
                _ => None,
            };
            return Admission::Admit { ended };
        }
        // At least a millisecond: the loop's timers have millisecond resolution.
        let wait = packets_over.max(bytes_over).max(Duration::from_millis(1));
        let started = self.episode.is_none();
        let episode = self.episode.get_or_insert_with(|| {
            Box::new(Episode {
                started: now,
                last_refusal: now,
                refused: 0,
            })
        });
        episode.last_refusal = now;
        episode.refused += 1;
        Admission::Refuse {
            wait,
            started,
            episode: **episode,
        }
    }
}

/// The time `count` tokens take to refill at `rate` per second.
fn cost(count: u64, rate: u32) -> Duration {
    let nanos = u128::from(count) * 1_000_000_000 / u128::from(rate.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(pps: u32, burst: u32) -> RateLimit {
        RateLimit::new(pps, 1 << 30).packet_burst(burst)
    }

    #[test]
    fn a_burst_is_admitted_then_the_sustained_rate() {
        let l = limit(100, 10);
        let t0 = Instant::now();
        let mut limiter = Limiter::new(t0);
        for _ in 0..10 {
            assert!(matches!(limiter.admit(&l, 10, t0), Admission::Admit { .. }));
        }
        let Admission::Refuse { wait, started, .. } = limiter.admit(&l, 10, t0) else {
            panic!("the eleventh packet of the burst is over the limit");
        };
        assert!(started);
        assert_eq!(wait, Duration::from_millis(10), "one packet per 10 ms");
        assert!(matches!(
            limiter.admit(&l, 10, t0 + Duration::from_millis(10)),
            Admission::Admit { ended: None }
        ));
    }

    #[test]
    fn sustained_excess_is_one_episode_reported_once_at_each_end() {
        let l = limit(100, 1);
        let t0 = Instant::now();
        let mut limiter = Limiter::new(t0);
        let mut starts = 0;
        let mut now = t0;
        let mut admitted = 0;
        // 1,000 packets/s offered for two seconds against 100/s.
        for _ in 0..2000 {
            match limiter.admit(&l, 1, now) {
                Admission::Admit { ended } => {
                    admitted += 1;
                    assert!(ended.is_none(), "no gap yet");
                }
                Admission::Refuse { started, .. } => starts += usize::from(started),
            }
            now += Duration::from_millis(1);
        }
        assert_eq!(starts, 1, "one episode");
        assert_eq!(admitted, 200, "one every 10 ms: at 0, 10, ..., 1990 ms");
        // After a quiet second, the next packet ends the episode.
        let Admission::Admit { ended: Some(e) } = limiter.admit(&l, 1, now + EPISODE_GAP) else {
            panic!("the episode ends after a second without excess");
        };
        assert_eq!(e.started, t0 + Duration::from_millis(1));
        assert!(e.refused > 1700, "{}", e.refused);
    }

    #[test]
    fn bytes_limit_alone_refuses_big_packets() {
        let l = RateLimit::new(1_000_000, 1000).byte_burst(1000);
        let t0 = Instant::now();
        let mut limiter = Limiter::new(t0);
        assert!(matches!(
            limiter.admit(&l, 600, t0),
            Admission::Admit { .. }
        ));
        let Admission::Refuse { wait, .. } = limiter.admit(&l, 600, t0) else {
            panic!("only 400 bytes left");
        };
        assert_eq!(wait, Duration::from_millis(200), "200 bytes at 1000 B/s");
    }
}
