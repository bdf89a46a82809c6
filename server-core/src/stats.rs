//! The numbers a service exposes: per-loop counters written by their loop, summed into
//! [`ServiceStats`] on demand, and the JobQueue lag histogram. server-core only counts;
//! a binary decides how to serve them (a stats line, a Prometheus endpoint).

use crate::session::DisconnectKind;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Counters of one I/O thread. Each is written by its loop (most once per iteration) and
/// read by [`ServiceHandle::stats`](crate::ServiceHandle::stats).
#[derive(Default)]
pub(crate) struct LoopStats {
    pub(crate) sessions: AtomicUsize,
    pub(crate) accepted: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) packets_in: AtomicU64,
    pub(crate) packets_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) read_calls: AtomicU64,
    pub(crate) write_calls: AtomicU64,
    pub(crate) iterations: AtomicU64,
    pub(crate) queued_bytes: AtomicUsize,
    pub(crate) rate_limited_packets: AtomicU64,
    pub(crate) rate_limit_episodes: AtomicU64,
    pub(crate) read_pauses: AtomicU64,
    pub(crate) hook_panics: AtomicU64,
    pub(crate) task_panics: AtomicU64,
    pub(crate) disconnects: [AtomicU64; DisconnectKind::ALL.len()],
}

impl LoopStats {
    pub(crate) fn count_disconnect(&self, kind: DisconnectKind) {
        self.disconnects[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_to(&self, total: &mut ServiceStats) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        total.sessions += self.sessions.load(Ordering::Relaxed);
        total.sessions_accepted += get(&self.accepted);
        total.sessions_refused += get(&self.refused);
        total.packets_in += get(&self.packets_in);
        total.packets_out += get(&self.packets_out);
        total.bytes_in += get(&self.bytes_in);
        total.bytes_out += get(&self.bytes_out);
        total.read_calls += get(&self.read_calls);
        total.write_calls += get(&self.write_calls);
        total.loop_iterations += get(&self.iterations);
        total.queued_bytes += self.queued_bytes.load(Ordering::Relaxed);
        total.rate_limited_packets += get(&self.rate_limited_packets);
        total.rate_limit_episodes += get(&self.rate_limit_episodes);
        total.read_pauses += get(&self.read_pauses);
        total.hook_panics += get(&self.hook_panics);
        total.task_panics += get(&self.task_panics);
        for (sum, count) in total.disconnects.0.iter_mut().zip(&self.disconnects) {
            *sum += get(count);
        }
    }
}

/// Counters over the whole service, summed over its I/O threads (from
/// [`Service::stats`](crate::Service::stats)). Counters only grow; `sessions`,
/// `queued_bytes` and the loop counts are levels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceStats {
    /// Sessions open now (accepted and outgoing).
    pub sessions: usize,
    /// Connections accepted by listeners (refused ones not included).
    pub sessions_accepted: u64,
    /// Connections refused because a listener had `max_sessions` open.
    pub sessions_refused: u64,
    /// Sessions closed, by reason.
    pub disconnects: DisconnectCounts,
    /// Frames delivered to handlers.
    pub packets_in: u64,
    /// Frames fully written to sockets: each recipient of a broadcast counts once, and a
    /// batch of N frames sent as one `Bytes` counts N.
    pub packets_out: u64,
    /// Bytes read from sockets.
    pub bytes_in: u64,
    /// Bytes written to sockets.
    pub bytes_out: u64,
    /// Bytes queued for sending and not yet written, over all sessions (as of each loop's
    /// last iteration).
    pub queued_bytes: usize,
    /// `read` system calls on sessions (including the final one that finds nothing).
    pub read_calls: u64,
    /// `writev` system calls on sessions.
    pub write_calls: u64,
    /// What one of them costs lately ([`ServiceHandle::write_cost`](crate::ServiceHandle::write_cost)).
    pub write_cost: Option<std::time::Duration>,
    /// Event-loop iterations (each one `epoll_wait`), summed over the I/O threads.
    pub loop_iterations: u64,
    /// Inbound packets a rate limit refused: dropped (under `Drop`/`Disconnect`) or held
    /// back until the session's buckets refilled (under `Throttle`).
    pub rate_limited_packets: u64,
    /// Episodes of a session exceeding its rate limit (each logged once).
    pub rate_limit_episodes: u64,
    /// Times reading from a session paused for backpressure (its in-flight work or its
    /// own send backlog over their limits).
    pub read_pauses: u64,
    /// Panics in session hooks, contained (each closed its session or was logged).
    pub hook_panics: u64,
    /// Panics in tasks and timers run by the I/O threads, contained and logged.
    pub task_panics: u64,
    /// Panics in JobQueue jobs, contained and logged.
    pub job_panics: u64,
    /// Time from `JobQueue::push` to the job starting, over every job run.
    pub job_lag: LagHistogram,
    /// I/O threads the service started.
    pub loops: usize,
    /// I/O threads running now (fewer than `loops` only after a fault inside server-core).
    pub loops_alive: usize,
}

/// Sessions closed, by [`DisconnectKind`].
///
/// # Examples
/// ```
/// use server_core::{DisconnectKind, Service};
///
/// let service = Service::builder().threads(1).build()?;
/// let stats = service.stats();
/// assert_eq!(stats.disconnects.get(DisconnectKind::PeerClosed), 0);
/// assert_eq!(stats.disconnects.iter().count(), DisconnectKind::ALL.len());
/// # Ok::<(), server_core::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DisconnectCounts([u64; DisconnectKind::ALL.len()]);

impl DisconnectCounts {
    /// Sessions closed for this kind of reason.
    #[must_use]
    pub fn get(&self, kind: DisconnectKind) -> u64 {
        self.0[kind.index()]
    }

    /// Every kind with its count.
    pub fn iter(&self) -> impl Iterator<Item = (DisconnectKind, u64)> + '_ {
        DisconnectKind::ALL
            .iter()
            .map(|&kind| (kind, self.get(kind)))
    }

    /// Sessions closed for any reason.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// Buckets of [`LagHistogram`]: upper bounds of 1 µs × 2^i, from 1 µs to about 16.8 s, plus
/// one for anything longer.
const LAG_BUCKETS: usize = 26;

/// A histogram of durations (JobQueue lag: push to start), with fixed power-of-two buckets
/// from 1 µs to about 16.8 s, in the shape Prometheus histograms use.
///
/// # Examples
/// ```
/// let lag = server_core::LagHistogram::default();
/// assert_eq!(lag.count(), 0);
/// let (first_bound, _) = lag.cumulative().next().unwrap();
/// assert_eq!(first_bound, Some(std::time::Duration::from_micros(1)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LagHistogram {
    counts: [u64; LAG_BUCKETS],
    sum_nanos: u64,
}

impl LagHistogram {
    /// Observations in all.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Sum of all observations.
    #[must_use]
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_nanos)
    }

    /// `(upper bound, observations at or below it)` for every bucket in increasing order;
    /// the last bound is `None` (+Inf) and its count is [`count`](Self::count).
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<Duration>, u64)> + '_ {
        let mut running = 0;
        self.counts.iter().enumerate().map(move |(i, &n)| {
            running += n;
            (bucket_bound(i), running)
        })
    }

    /// The upper bound of the bucket holding the `q`-quantile (0.0 to 1.0), `None` if empty
    /// or in the +Inf bucket: a cheap percentile for logs.
    #[must_use]
    pub fn quantile_bound(&self, q: f64) -> Option<Duration> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let target = ((count as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        self.cumulative()
            .find(|&(_, c)| c >= target)
            .and_then(|(bound, _)| bound)
    }

    fn merge(&mut self, other: &AtomicLagHistogram) {
        for (sum, count) in self.counts.iter_mut().zip(&other.counts) {
            *sum += count.load(Ordering::Relaxed);
        }
        self.sum_nanos += other.sum_nanos.load(Ordering::Relaxed);
    }
}

fn bucket_bound(i: usize) -> Option<Duration> {
    (i < LAG_BUCKETS - 1).then(|| Duration::from_micros(1 << i))
}

fn bucket_of(lag: Duration) -> usize {
    let micros = lag.as_nanos().div_ceil(1000);
    if micros <= 1 {
        return 0;
    }
    // The smallest i with 2^i >= micros.
    let i = (128 - (micros - 1).leading_zeros()) as usize;
    i.min(LAG_BUCKETS - 1)
}

/// The service-wide JobQueue numbers, written by whichever thread runs a job.
#[derive(Default)]
pub(crate) struct JobStats {
    lag: AtomicLagHistogram,
    pub(crate) panics: AtomicU64,
}

#[derive(Default)]
struct AtomicLagHistogram {
    counts: [AtomicU64; LAG_BUCKETS],
    sum_nanos: AtomicU64,
}

impl JobStats {
    pub(crate) fn record_lag(&self, lag: Duration) {
        self.lag.counts[bucket_of(lag)].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(lag.as_nanos()).unwrap_or(u64::MAX);
        self.lag.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn record_panic(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_to(&self, total: &mut ServiceStats) {
        total.job_lag.merge(&self.lag);
        total.job_panics += self.panics.load(Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lags_land_in_power_of_two_buckets() {
        assert_eq!(bucket_of(Duration::ZERO), 0);
        assert_eq!(bucket_of(Duration::from_nanos(900)), 0);
        assert_eq!(bucket_of(Duration::from_micros(2)), 1);
        assert_eq!(bucket_of(Duration::from_micros(3)), 2);
        assert_eq!(bucket_of(Duration::from_micros(1024)), 10);
        assert_eq!(bucket_of(Duration::from_secs(3600)), LAG_BUCKETS - 1);
        let stats = JobStats::default();
        for micros in [1, 3, 3, 900, 5_000_000] {
            stats.record_lag(Duration::from_micros(micros));
        }
        let mut total = ServiceStats::default();
        stats.add_to(&mut total);
        let lag = total.job_lag;
        assert_eq!(lag.count(), 5);
        assert_eq!(lag.quantile_bound(0.5), Some(Duration::from_micros(4)));
        assert_eq!(
            lag.quantile_bound(1.0),
            Some(Duration::from_micros(1 << 23))
        );
        let last = lag.cumulative().last().unwrap();
        assert_eq!(last, (None, 5));
    }
}
