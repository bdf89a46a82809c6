//! The Prometheus registry of a game server, built with `prometheus-client`.
//!
//! Nothing is counted twice: a [`Collector`] reads one [`StatsSource::snapshot`] per scrape
//! and encodes it, so every counter is server-core's (or the game's) own monotonic counter,
//! and the stats line in the log shows the same numbers. Names follow the Prometheus
//! conventions: `servercore_` for the networking core, `game_` for the rooms, `_total` on
//! counters (added by the encoder), base units in the name (`_bytes`).

use crate::stats::{GameStats, StatsSource};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::fmt;

/// `Content-Type` of `/metrics`: the Prometheus text format, version 0.0.4.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// One metric read from a snapshot: name (without `_total`), help, and how to read it.
struct Metric {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    read: fn(&GameStats, &StatsSource) -> u64,
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// Every metric of the snapshot. docs/operations.md lists the same, with their meaning.
const METRICS: &[Metric] = &[
    Metric {
        name: "servercore_io_threads",
        help: "I/O threads (event loops) of the service.",
        kind: Kind::Gauge,
        read: |_, source| source.service.threads() as u64,
    },
    Metric {
        name: "servercore_sessions",
        help: "Sessions open now.",
        kind: Kind::Gauge,
        read: |s, _| s.service.sessions as u64,
    },
    Metric {
        name: "servercore_sessions_refused",
        help: "Connections closed at accept because --max-sessions sessions were open.",
        kind: Kind::Counter,
        read: |s, _| s.sessions_refused,
    },
    Metric {
        name: "servercore_packets_received",
        help: "Packets (frames) received from clients and handed to handlers.",
        kind: Kind::Counter,
        read: |s, _| s.service.packets_in,
    },
    Metric {
        name: "servercore_received_bytes",
        help: "Bytes read from client sockets.",
        kind: Kind::Counter,
        read: |s, _| s.service.bytes_in,
    },
    Metric {
        name: "servercore_sends",
        help: "Buffers handed to Session::send and fully written; a room tick's batch of \
               packets counts once per member.",
        kind: Kind::Counter,
        read: |s, _| s.service.packets_out,
    },
    Metric {
        name: "servercore_sent_bytes",
        help: "Bytes written to client sockets.",
        kind: Kind::Counter,
        read: |s, _| s.service.bytes_out,
    },
    Metric {
        name: "servercore_read_calls",
        help: "read system calls on sessions, including the last one of each wake-up that \
               finds nothing.",
        kind: Kind::Counter,
        read: |s, _| s.service.read_calls,
    },
    Metric {
        name: "servercore_write_calls",
        help: "writev system calls on sessions.",
        kind: Kind::Counter,
        read: |s, _| s.service.write_calls,
    },
    Metric {
        name: "servercore_loop_iterations",
        help: "Event-loop wake-ups (one epoll_wait each), summed over the I/O threads.",
        kind: Kind::Counter,
        read: |s, _| s.service.loop_iterations,
    },
    Metric {
        name: "game_rooms",
        help: "Rooms open now.",
        kind: Kind::Gauge,
        read: |s, _| s.rooms as u64,
    },
    Metric {
        name: "game_players",
        help: "Players in a room now.",
        kind: Kind::Gauge,
        read: |s, _| s.players as u64,
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
        for metric in METRICS {
            let value = (metric.read)(&stats, &self.0);
            match metric.kind {
                Kind::Counter => {
                    let counter = ConstCounter::new(value);
                    let out = encoder.encode_descriptor(
                        metric.name,
                        metric.help,
                        None,
                        counter.metric_type(),
                    )?;
                    counter.encode(out)?;
                }
                Kind::Gauge => {
                    // Gauges here are counts far below i64::MAX.
                    let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
                    let out = encoder.encode_descriptor(
                        metric.name,
                        metric.help,
                        None,
                        gauge.metric_type(),
                    )?;
                    gauge.encode(out)?;
                }
            }
        }
        Ok(())
    }
}

/// A registry holding every metric of the server behind `source`.
pub(crate) fn registry(source: StatsSource) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(source)));
    registry
}

/// The registry in the Prometheus text format.
pub(crate) fn render(registry: &Registry) -> Result<String, fmt::Error> {
    let mut out = String::with_capacity(4096);
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    Ok(out)
}
