//! The Prometheus registry of a game server, built with `prometheus-client`.
//!
//! Nothing is counted twice: a [`Collector`] reads one [`StatsSource::snapshot`] (and the
//! loops' state) per scrape and encodes it, so every counter is server-core's (or the
//! game's) own monotonic counter, and the stats line in the log shows the same numbers.
//! Names follow the Prometheus conventions: `servercore_` for the networking core, `game_`
//! for the rooms, `_total` on counters (added by the encoder), base units in the name
//! (`_bytes`, `_seconds`). docs/operations.md lists every metric with its meaning.

use crate::cluster::ClusterStats;
use crate::stats::{GameStats, StatsSource};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use server_core::LoopStatus;
use std::fmt;

/// `Content-Type` of `/metrics`: the Prometheus text format, version 0.0.4.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// One unlabelled metric read from a snapshot: name (without `_total`), help, and how to
/// read it.
struct Metric {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    read: fn(&GameStats) -> u64,
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// Every unlabelled metric of server-core; its labelled families and its histogram follow
/// in [`SnapshotCollector::encode`].
const CORE_METRICS: &[Metric] = &[
    Metric {
        name: "servercore_loops",
        help: "I/O threads (event loops) the service started.",
        kind: Kind::Gauge,
        read: |s| s.service.loops as u64,
    },
    Metric {
        name: "servercore_loops_alive",
        help: "I/O threads running now; fewer than servercore_loops only after a fault \
               inside server-core.",
        kind: Kind::Gauge,
        read: |s| s.service.loops_alive as u64,
    },
    Metric {
        name: "servercore_sessions",
        help: "Sessions open now.",
        kind: Kind::Gauge,
        read: |s| s.service.sessions as u64,
    },
    Metric {
        name: "servercore_sessions_accepted",
        help: "Connections accepted by the listeners.",
        kind: Kind::Counter,
        read: |s| s.service.sessions_accepted,
    },
    Metric {
        name: "servercore_sessions_refused",
        help: "Connections closed at accept because --max-sessions sessions were open.",
        kind: Kind::Counter,
        read: |s| s.service.sessions_refused,
    },
    Metric {
        name: "servercore_received_packets",
        help: "Packets (frames) received from clients and handed to handlers.",
        kind: Kind::Counter,
        read: |s| s.service.packets_in,
    },
    Metric {
        name: "servercore_received_bytes",
        help: "Bytes read from client sockets.",
        kind: Kind::Counter,
        read: |s| s.service.bytes_in,
    },
    Metric {
        name: "servercore_sent_packets",
        help: "Packets (frames) fully written to client sockets; a broadcast counts once per \
               recipient, a tick's batch of N packets counts N.",
        kind: Kind::Counter,
        read: |s| s.service.packets_out,
    },
    Metric {
        name: "servercore_sent_bytes",
        help: "Bytes written to client sockets.",
        kind: Kind::Counter,
        read: |s| s.service.bytes_out,
    },
    Metric {
        name: "servercore_send_queue_bytes",
        help: "Bytes queued for sending and not yet written, over all sessions.",
        kind: Kind::Gauge,
        read: |s| s.service.queued_bytes as u64,
    },
    Metric {
        name: "servercore_read_calls",
        help: "read system calls on sessions, including the last one of each wake-up that \
               finds nothing.",
        kind: Kind::Counter,
        read: |s| s.service.read_calls,
    },
    Metric {
        name: "servercore_write_calls",
        help: "writev system calls on sessions.",
        kind: Kind::Counter,
        read: |s| s.service.write_calls,
    },
    Metric {
        name: "servercore_loop_iterations",
        help: "Event-loop wake-ups (one epoll_wait each), summed over the I/O threads.",
        kind: Kind::Counter,
        read: |s| s.service.loop_iterations,
    },
    Metric {
        name: "servercore_rate_limited_packets",
        help: "Inbound packets over a session's rate limit: dropped, or held back until its \
               budget refilled.",
        kind: Kind::Counter,
        read: |s| s.service.rate_limited_packets,
    },
    Metric {
        name: "servercore_rate_limit_episodes",
        help: "Episodes of a session exceeding its rate limit (each logged once).",
        kind: Kind::Counter,
        read: |s| s.service.rate_limit_episodes,
    },
    Metric {
        name: "servercore_read_pauses",
        help: "Times reading from a session paused for backpressure (its unfinished work or \
               its own send backlog over their limits).",
        kind: Kind::Counter,
        read: |s| s.service.read_pauses,
    },
];

/// The rooms' unlabelled metrics; `game_rooms_by_players` follows them.
const GAME_METRICS: &[Metric] = &[
    Metric {
        name: "game_rooms",
        help: "Rooms open now.",
        kind: Kind::Gauge,
        read: |s| s.rooms as u64,
    },
    Metric {
        name: "game_players",
        help: "Players in a room now.",
        kind: Kind::Gauge,
        read: |s| s.players as u64,
    },
];

/// Reads the server's counters at scrape time.
struct SnapshotCollector(StatsSource);

impl fmt::Debug for SnapshotCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SnapshotCollector")
    }
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let stats = self.0.snapshot();
        let loops = self.0.loops();
        encode_all(&mut encoder, CORE_METRICS, &stats)?;
        encode_disconnects(&mut encoder, &stats)?;
        encode_panics(&mut encoder, &stats)?;
        encode_loops(&mut encoder, &loops)?;
        encode_job_lag(&mut encoder, &stats)?;
        encode_all(&mut encoder, GAME_METRICS, &stats)?;
        encode_room_sizes(&mut encoder, &stats)?;
        match &stats.cluster {
            Some(cluster) => encode_cluster(&mut encoder, cluster),
            None => Ok(()),
        }
    }
}

/// `game_cluster_*`, with `--cluster` only (docs/scaling.md explains each).
fn encode_cluster(out: &mut DescriptorEncoder<'_>, c: &ClusterStats) -> fmt::Result {
    let gauges = [
        (
            "game_cluster_redis_up",
            "1 while every connection to Redis is up, else 0.",
            u64::from(c.redis_up),
        ),
        (
            "game_cluster_peers",
            "Other processes registered at the last heartbeat.",
            c.peers,
        ),
        (
            "game_cluster_remote_players",
            "Players of other processes in this process's rooms.",
            c.remote_players,
        ),
    ];
    for (name, help, value) in gauges {
        encode_gauge(out, name, help, value)?;
    }
    let counters = [
        (
            "game_cluster_redis_outages",
            "Times Redis was lost (until every connection was back).",
            c.redis_outages,
        ),
        (
            "game_cluster_messages_published",
            "Room messages published (a flush, flushes merged, or a snapshot).",
            c.published,
        ),
        (
            "game_cluster_published_bytes",
            "Bytes of the published messages, headers included.",
            c.published_bytes,
        ),
        (
            "game_cluster_messages_received",
            "Room messages from other processes handed to a room.",
            c.received,
        ),
        (
            "game_cluster_received_bytes",
            "Bytes read from room channels, this process's own echoes included.",
            c.received_bytes,
        ),
        (
            "game_cluster_messages_rejected",
            "Messages on a room channel refused as malformed or of another version.",
            c.rejected,
        ),
        (
            "game_cluster_sequence_gaps",
            "Times a room saw another process's messages skip (and asked for snapshots).",
            c.gaps,
        ),
        (
            "game_cluster_seat_fallbacks",
            "Players seated in a room open here while Redis was away.",
            c.seat_fallbacks,
        ),
    ];
    for (name, help, value) in counters {
        encode_counter(out, name, help, value)?;
    }
    let mut dropped = out.encode_descriptor(
        "game_cluster_messages_dropped",
        "Room messages dropped: not published because Redis was away (redis_down) or the \
         publish queue was full (queue_full), or not handed to a room that had too many \
         jobs waiting (room_busy).",
        None,
        MetricType::Counter,
    )?;
    for (reason, count) in [
        ("redis_down", c.dropped_redis_down),
        ("queue_full", c.dropped_queue_full),
        ("room_busy", c.dropped_room_busy),
    ] {
        ConstCounter::new(count).encode(dropped.encode_family(&[("reason", reason)])?)?;
    }
    Ok(())
}

fn encode_all(
    out: &mut DescriptorEncoder<'_>,
    metrics: &[Metric],
    stats: &GameStats,
) -> fmt::Result {
    for metric in metrics {
        let value = (metric.read)(stats);
        match metric.kind {
            Kind::Counter => encode_counter(out, metric.name, metric.help, value)?,
            // Gauges here are counts far below i64::MAX.
            Kind::Gauge => encode_gauge(out, metric.name, metric.help, value)?,
        }
    }
    Ok(())
}

fn encode_counter(
    out: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> fmt::Result {
    let counter = ConstCounter::new(value);
    counter.encode(out.encode_descriptor(name, help, None, counter.metric_type())?)
}

fn encode_gauge(
    out: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> fmt::Result {
    let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    gauge.encode(out.encode_descriptor(name, help, None, gauge.metric_type())?)
}

/// `servercore_disconnects_total{reason}`: every reason, zeros included, so a rate over a
/// reason that has not happened yet is 0 rather than absent.
fn encode_disconnects(out: &mut DescriptorEncoder<'_>, stats: &GameStats) -> fmt::Result {
    let mut family = out.encode_descriptor(
        "servercore_disconnects",
        "Sessions closed, by reason (server-core's DisconnectKind).",
        None,
        MetricType::Counter,
    )?;
    for (kind, count) in stats.service.disconnects.iter() {
        let labels = [("reason", kind.as_str())];
        ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// `servercore_panics_total{where}`: panics in user code, contained.
fn encode_panics(out: &mut DescriptorEncoder<'_>, stats: &GameStats) -> fmt::Result {
    let mut family = out.encode_descriptor(
        "servercore_panics",
        "Panics in user code, contained: session hooks (hook), tasks and timers on the I/O \
         threads (task), JobQueue jobs (job).",
        None,
        MetricType::Counter,
    )?;
    let service = &stats.service;
    for (place, count) in [
        ("hook", service.hook_panics),
        ("task", service.task_panics),
        ("job", service.job_panics),
    ] {
        ConstCounter::new(count).encode(family.encode_family(&[("where", place)])?)?;
    }
    Ok(())
}

/// `servercore_loop_up{loop}` and `servercore_loop_busy_seconds{loop}`.
fn encode_loops(out: &mut DescriptorEncoder<'_>, loops: &[LoopStatus]) -> fmt::Result {
    let labels: Vec<[(&str, String); 1]> = loops
        .iter()
        .map(|status| [("loop", status.index.to_string())])
        .collect();
    let mut up = out.encode_descriptor(
        "servercore_loop_up",
        "1 while this I/O thread runs, 0 once it stopped after a fault inside server-core.",
        None,
        MetricType::Gauge,
    )?;
    for (status, labels) in loops.iter().zip(&labels) {
        ConstGauge::new(i64::from(status.alive)).encode(up.encode_family(labels)?)?;
    }
    let mut busy = out.encode_descriptor(
        "servercore_loop_busy_seconds",
        "How long this I/O thread has been working since it last waited for events; 0 while \
         it waits. Seconds mean a hook, job or task is blocking it.",
        None,
        MetricType::Gauge,
    )?;
    for (status, labels) in loops.iter().zip(&labels) {
        let seconds = status.busy_for.as_secs_f64();
        ConstGauge::new(seconds).encode(busy.encode_family(labels)?)?;
    }
    Ok(())
}

/// `servercore_job_lag_seconds`: a Prometheus histogram of server-core's lag buckets.
fn encode_job_lag(out: &mut DescriptorEncoder<'_>, stats: &GameStats) -> fmt::Result {
    let lag = &stats.service.job_lag;
    // The encoder takes per-bucket counts and sums them up itself.
    let mut below = 0;
    let buckets: Vec<(f64, u64)> = lag
        .cumulative()
        .map(|(bound, cumulative)| {
            let bound = bound.map_or(f64::INFINITY, |b| b.as_secs_f64());
            let in_bucket = cumulative - below;
            below = cumulative;
            (bound, in_bucket)
        })
        .collect();
    let mut histogram = out.encode_descriptor(
        "servercore_job_lag_seconds",
        "Time from JobQueue::push to the job starting (a room's queue delay).",
        None,
        MetricType::Histogram,
    )?;
    histogram.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        lag.sum().as_secs_f64(),
        lag.count(),
        &buckets,
        None,
    )
}

/// `game_rooms_by_players{le}`: open rooms holding at most `le` players, cumulative like
/// histogram buckets (so `histogram_quantile` works on it), but a gauge: rooms fill and
/// empty.
fn encode_room_sizes(out: &mut DescriptorEncoder<'_>, stats: &GameStats) -> fmt::Result {
    let mut family = out.encode_descriptor(
        "game_rooms_by_players",
        "Open rooms holding at most le players (cumulative, like histogram buckets).",
        None,
        MetricType::Gauge,
    )?;
    for (bound, rooms) in stats.room_sizes.cumulative() {
        let le = bound.map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
        let gauge = ConstGauge::new(i64::try_from(rooms).unwrap_or(i64::MAX));
        gauge.encode(family.encode_family(&[("le", le)])?)?;
    }
    Ok(())
}

/// A registry holding every metric of the server behind `source`.
pub(crate) fn registry(source: StatsSource) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(source)));
    registry
}

/// The registry in the Prometheus text format.
pub(crate) fn render(registry: &Registry) -> Result<String, fmt::Error> {
    let mut out = String::with_capacity(8192);
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    Ok(out)
}
