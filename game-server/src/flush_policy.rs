//! When a room sends what was said in it: at once while the server has time to spare,
//! gathered into one send per member when it has not. A pure decision (time in, time
//! out): the room asks when to flush and arms the one timer it is told to.
//!
//! # The cost model
//! A room flush costs one `writev` per member, and a `writev` costs about the same whatever
//! it carries: 4-6 µs on loopback TCP on a quiet machine ([`WRITE_COST`]), more when the
//! machine is busy. server-core measures it as it writes
//! ([`ServiceHandle::write_cost`](server_core::ServiceHandle::write_cost)). Sending every
//! broadcast at once is cheap in a quiet room and ruinous in a busy one (500 members ×
//! 2,000 messages/s would be a million writes a second); one fixed tick is the reverse,
//! making every message in a quiet room wait for it.
//!
//! So the rooms of a server share one [`FlushBudget`]: flushing may take half a core
//! ([`FLUSH_SHARE_PERCENT`]). A flush of a room of `m` members is charged
//! `m × write cost × 100 / FLUSH_SHARE_PERCENT` of budget time (8 µs per member at 4 µs a
//! write), a generic cell rate algorithm keeps the account, and the account may run one
//! tick ahead:
//!
//! * a room flushes at once (at the end of the current loop iteration) while the budget has
//!   room: quiet rooms, and the first message after a pause in a busy one;
//! * once broadcasts come faster than the budget pays for, flushes are spaced by their
//!   charge: at 4 µs a write a room of 200 gathers 1.6 ms and a room of 500 4 ms; on a
//!   machine where a write costs 19 µs (a busy VM), 7.6 and 19 ms;
//! * nothing waits longer than the tick: `--tick-ms` is the upper bound on the latency the
//!   batching adds. With many busy rooms the budget is overdrawn and every room flushes
//!   once per tick, as with a fixed tick.
//!
//! Nothing here runs on its own: a room with nothing to send arms no timer, so an idle
//! server does not wake up.
//!
//! ```text
//!   budget time ─────────────────────────────────────────────────────────────▶
//!   spent until ──────────────┐
//!                  ◀── tick ──┤        a new flush may run at (spent until − tick),
//!                             │        never before now, never after now + tick,
//!                             │        and moves "spent until" on by its charge
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The cost of one small `writev` on loopback TCP on a quiet machine, measured by the
/// criterion benchmark `loopback_send_340_bytes` (3.9 µs) and in the load test (4-6 µs
/// with everything around it): what a budget charges before server-core has measured.
pub const WRITE_COST: Duration = Duration::from_micros(4);

/// The share of one core, in percent, that room flushes may take before rooms start
/// gathering. Half a core: at a quarter, rooms of 100 to 200 gathered on a machine with
/// dear writes and answered twice as slowly as the tokio baseline, for no saving a busy
/// room needed (docs/benchmarks.md, "Choosing the defaults").
pub const FLUSH_SHARE_PERCENT: u32 = 50;

/// The flush account shared by every room of a server.
///
/// # Examples
/// ```
/// use game_server::flush_policy::FlushBudget;
/// use std::time::{Duration, Instant};
///
/// let budget = FlushBudget::new(Duration::from_millis(7));
/// let now = Instant::now();
/// // A quiet room of 50 flushes at once...
/// assert_eq!(budget.reserve(now, 50), now);
/// // ...and a flood in a room of 500 is spread out, never more than a tick.
/// let mut last = now;
/// for _ in 0..10 {
///     last = budget.reserve(now, 500);
/// }
/// assert_eq!(last, now + Duration::from_millis(7));
/// ```
pub struct FlushBudget {
    /// Time zero of `spent_until`.
    epoch: Instant,
    /// Nanoseconds after `epoch` up to which the budget is spent (the cell rate
    /// algorithm's theoretical arrival time).
    spent_until: AtomicU64,
    /// The most a flush may wait, and the credit a quiet server builds up.
    tick: Duration,
    /// What one write costs now.
    write_cost: Box<dyn Fn() -> Duration + Send + Sync>,
}

impl FlushBudget {
    /// A budget for rooms whose broadcasts wait at most `tick`, charging [`WRITE_COST`] per
    /// write.
    #[must_use]
    pub fn new(tick: Duration) -> Self {
        Self::with_write_cost(tick, || WRITE_COST)
    }

    /// A budget that asks `write_cost` what one write costs each time it books a flush
    /// (a game server passes server-core's measurement).
    #[must_use]
    pub fn with_write_cost(
        tick: Duration,
        write_cost: impl Fn() -> Duration + Send + Sync + 'static,
    ) -> Self {
        Self {
            epoch: Instant::now(),
            spent_until: AtomicU64::new(0),
            tick,
            write_cost: Box::new(write_cost),
        }
    }

    /// The most a broadcast waits for its flush.
    #[must_use]
    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// How much budget time a flush to `members` members takes: their writes' cost over
    /// the flushing share, at most one tick.
    #[must_use]
    pub fn charge(&self, members: usize) -> Duration {
        let members = u32::try_from(members).unwrap_or(u32::MAX);
        let per_member = (self.write_cost)().saturating_mul(100) / FLUSH_SHARE_PERCENT;
        per_member.saturating_mul(members).min(self.tick)
    }

    /// Books a flush of a room of `members` members that has something to send since
    /// `now`, and says when it runs: `now` while the budget has room, later when it is
    /// spent, never later than `now + tick`.
    pub fn reserve(&self, now: Instant, members: usize) -> Instant {
        let now_ns = self.nanos(now);
        let tick = nanos_of(self.tick);
        let charge = nanos_of(self.charge(members));
        let mut spent = self.spent_until.load(Ordering::Relaxed);
        loop {
            let at = spent.saturating_sub(tick).clamp(now_ns, now_ns + tick);
            // Debt older than what the latency bound lets anyone wait for is forgiven, so
            // an overdrawn budget means "once per tick", not "ever later".
            let next = (spent.max(now_ns) + charge).min(now_ns + 3 * tick);
            match self.spent_until.compare_exchange_weak(
                spent,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return now + Duration::from_nanos(at - now_ns),
                Err(actual) => spent = actual,
            }
        }
    }

    fn nanos(&self, t: Instant) -> u64 {
        nanos_of(t.saturating_duration_since(self.epoch))
    }
}

impl fmt::Debug for FlushBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushBudget")
            .field("tick", &self.tick)
            .field("write_cost", &(self.write_cost)())
            .field("spent_until_ns", &self.spent_until.load(Ordering::Relaxed))
            .finish()
    }
}

fn nanos_of(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const TICK: Duration = Duration::from_millis(7);
    const MS: Duration = Duration::from_millis(1);

    /// A budget charging 16 µs per member (8 µs writes at half a core).
    fn budget() -> (FlushBudget, Instant) {
        let b = FlushBudget::with_write_cost(TICK, || Duration::from_micros(8));
        let t0 = b.epoch;
        (b, t0)
    }

    /// Flush times of a room of `members` receiving a broadcast every `gap` for `count`
    /// broadcasts; the flush runs when booked, the next broadcast books the next flush.
    fn run(
        b: &FlushBudget,
        t0: Instant,
        members: usize,
        gap: Duration,
        count: u32,
    ) -> Vec<Duration> {
        let mut flushes = Vec::new();
        let mut armed: Option<Instant> = None;
        for i in 0..count {
            let now = t0 + gap * i;
            if let Some(at) = armed {
                if at <= now {
                    flushes.push(at - t0);
                    armed = None;
                }
            }
            if armed.is_none() {
                armed = Some(b.reserve(now, members));
            }
        }
        flushes
    }

    #[test]
    fn the_charge_grows_with_members_up_to_the_tick() {
        let (b, _) = budget();
        assert_eq!(b.charge(0), Duration::ZERO);
        assert_eq!(b.charge(50), Duration::from_micros(800));
        assert_eq!(b.charge(200), Duration::from_micros(3200));
        assert_eq!(b.charge(500), TICK);
        assert_eq!(b.charge(usize::MAX), TICK);
    }

    #[test]
    fn the_default_prices_a_member_at_8_microseconds() {
        assert_eq!(FlushBudget::new(TICK).charge(1), Duration::from_micros(8));
    }

    #[test]
    fn dearer_writes_mean_more_gathering() {
        let b = FlushBudget::with_write_cost(TICK, || Duration::from_micros(24));
        assert_eq!(b.charge(100), Duration::from_micros(4800));
        assert_eq!(b.charge(200), TICK);
    }

    #[test]
    fn a_quiet_room_always_flushes_at_once() {
        let (b, t0) = budget();
        // 50 members, a broadcast every 5 ms (50 players chatting 4 times a second).
        for i in 0..1000 {
            let now = t0 + 5 * MS * i;
            assert_eq!(b.reserve(now, 50), now, "broadcast {i}");
        }
    }

    #[test]
    fn a_short_burst_in_a_quiet_room_goes_out_at_once() {
        let (b, t0) = budget();
        // Three flushes of 200 members back to back fit in one tick of credit.
        for _ in 0..3 {
            assert_eq!(b.reserve(t0, 200), t0);
        }
        assert!(b.reserve(t0, 200) > t0);
    }

    #[test]
    fn a_busy_room_is_paced_by_its_charge() {
        let (b, t0) = budget();
        // 200 members, a broadcast every 0.1 ms: after the credit, one flush per 3.2 ms.
        let flushes = run(&b, t0, 200, MS / 10, 1000);
        let gaps: Vec<Duration> = flushes.windows(2).map(|w| w[1] - w[0]).collect();
        let steady = &gaps[5..];
        assert!(
            steady
                .iter()
                .all(|g| g.abs_diff(Duration::from_micros(3200)) <= MS / 10),
            "{gaps:?}"
        );
    }

    #[test]
    fn no_broadcast_waits_longer_than_a_tick() {
        let (b, t0) = budget();
        for members in [1, 50, 500, 5000] {
            for i in 0..500 {
                let now = t0 + MS / 10 * i;
                let at = b.reserve(now, members);
                assert!(at >= now && at <= now + TICK, "{members} members at {i}");
            }
        }
    }

    #[test]
    fn a_huge_room_flushes_once_per_tick() {
        let (b, t0) = budget();
        let flushes = run(&b, t0, 1500, MS / 10, 2000);
        let gaps: Vec<Duration> = flushes.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps[2..].iter().all(|&g| g.abs_diff(TICK) <= MS / 10),
            "{gaps:?}"
        );
    }

    #[test]
    fn rooms_share_the_budget() {
        let (b, t0) = budget();
        // 40 rooms of 50 each want to flush every 5 ms: 40 × 0.8 ms of charge per 5 ms is
        // over budget, so flushes spread out, each still within a tick.
        let mut late = 0;
        for round in 0..100u32 {
            let now = t0 + 5 * MS * round;
            for _ in 0..40 {
                let at = b.reserve(now, 50);
                assert!(at <= now + TICK);
                late += usize::from(at > now);
            }
        }
        assert!(
            late > 3000,
            "most flushes wait once the budget is spent: {late}"
        );
    }

    #[test]
    fn an_overdrawn_budget_recovers_after_a_pause() {
        let (b, t0) = budget();
        for _ in 0..1000 {
            b.reserve(t0, 5000);
        }
        // Debt beyond the latency bound is forgiven: three ticks later the budget has room.
        let later = t0 + 3 * TICK;
        assert_eq!(b.reserve(later, 50), later);
    }

    #[test]
    fn concurrent_rooms_book_distinct_slots() {
        let b = Arc::new(FlushBudget::with_write_cost(TICK, || {
            Duration::from_micros(8)
        }));
        let now = b.epoch + Duration::from_secs(1);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || (0..2).map(|_| b.reserve(now, 100)).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<Instant> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort();
        // Eight flushes of 1.6 ms each: the first ones run at once (a tick of credit),
        // the rest at 1.6 ms steps after the credit is used up.
        let waits: Vec<Duration> = all.iter().map(|&t| t - now).collect();
        assert_eq!(waits.iter().filter(|w| w.is_zero()).count(), 5, "{waits:?}");
        assert_eq!(waits[7], Duration::from_micros(4200), "{waits:?}");
    }
}
