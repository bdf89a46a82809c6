//! The summary maths, its table and JSON forms, and the progress line.

use crate::Mode;
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The outcome of a run. The counts cover the measured window only (see the crate docs).
#[derive(Debug, Clone)]
pub struct Report {
    /// What was sent.
    pub mode: Mode,
    /// Sessions asked for (`--count`).
    pub count: u64,
    /// Sessions that connected and joined (received their `S_PlayerList`).
    pub connected: u64,
    /// Sessions that never joined: connect refused or timed out, or closed before joining.
    pub failed: u64,
    /// Packets sent inside the measured window.
    pub sent: u64,
    /// Broadcasts of those packets received (chat: exact by marker; move: every
    /// `S_BroadcastMove` from window start to drain end).
    pub received: u64,
    /// Servers the sessions were spread over (`--addr a,b,...`).
    pub servers: u64,
    /// Of `received`, those whose sender plays on another server than the receiver (0 with
    /// one server, or with servers that are not one cluster: their player ids repeat).
    pub received_crossed: u64,
    /// Broadcasts a full delivery would give: for each packet sent, the members of the
    /// sender's room at send time.
    pub expected: u64,
    /// Length of the measured window.
    pub window: Duration,
    /// The warmup before it.
    pub warmup: Duration,
    /// Sessions that joined and were then closed before the end of the run.
    pub disconnects: u64,
    /// Flooders of the run (`--flooders`).
    pub flooders: u64,
    /// Packets the flooders wrote (warmup and window).
    pub flood_sent: u64,
    /// Flooders the server closed.
    pub flooders_cut: u64,
    /// Sends of the window whose own broadcast never came back (or overflowed the FIFO).
    pub lost_measurements: u64,
    /// Send-to-own-broadcast latency in microseconds.
    pub latency_us: Histogram<u64>,
    /// With several servers in chat mode: send to receipt by receivers on other servers,
    /// in microseconds, for one marked chat in 64.
    pub cross_latency_us: Histogram<u64>,
    /// The first connect error seen, if any.
    pub first_connect_error: Option<String>,
    /// The reason of the first disconnect, if any.
    pub first_disconnect: Option<String>,
}

/// The keys of [`Report::to_json`], in order.
pub const JSON_KEYS: [&str; 20] = [
    "connected",
    "failed",
    "sent",
    "received",
    "sent_per_s",
    "received_per_s",
    "expected_per_s",
    "delivery_ratio",
    "p50_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "disconnects",
    "flooders",
    "flood_sent",
    "flooders_cut",
    "servers",
    "received_crossed",
    "cross_p50_ms",
    "cross_p99_ms",
];

fn per_second(n: u64, window: Duration) -> f64 {
    let secs = window.as_secs_f64();
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Rounds to `digits` decimals for printing; never NaN or infinite.
fn round(v: f64, digits: i32) -> f64 {
    if !v.is_finite() {
        return 0.0;
    }
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}

impl Report {
    /// Packets sent per second of the window.
    #[must_use]
    pub fn sent_per_s(&self) -> f64 {
        per_second(self.sent, self.window)
    }

    /// Broadcasts received per second of the window.
    #[must_use]
    pub fn received_per_s(&self) -> f64 {
        per_second(self.received, self.window)
    }

    /// Broadcasts a full delivery would give per second: sent per second × sessions sharing
    /// each sender's room.
    #[must_use]
    pub fn expected_per_s(&self) -> f64 {
        per_second(self.expected, self.window)
    }

    /// `received / expected`; 1.0 when nothing was expected.
    #[must_use]
    pub fn delivery_ratio(&self) -> f64 {
        if self.expected == 0 {
            1.0
        } else {
            self.received as f64 / self.expected as f64
        }
    }

    /// Latency at quantile `q` (0..=1) in milliseconds; 0 without samples.
    #[must_use]
    pub fn latency_ms(&self, q: f64) -> f64 {
        quantile_ms(&self.latency_us, q)
    }

    /// Largest latency in milliseconds; 0 without samples.
    #[must_use]
    pub fn max_ms(&self) -> f64 {
        if self.latency_us.is_empty() {
            0.0
        } else {
            self.latency_us.max() as f64 / 1000.0
        }
    }

    /// `None` when every session connected and stayed connected, else the one-line reason
    /// for a non-zero exit.
    #[must_use]
    pub fn failure(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.failed > 0 {
            let why = self
                .first_connect_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default();
            parts.push(format!(
                "{} of {} sessions failed to connect{why}",
                self.failed, self.count
            ));
        }
        if self.disconnects > 0 {
            let why = self
                .first_disconnect
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default();
            parts.push(format!(
                "{} sessions disconnected during the run{why}",
                self.disconnects
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// The process exit status: 0 when [`failure`](Self::failure) is `None`, else 1.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        i32::from(self.failure().is_some())
    }

    /// One flat JSON object with exactly the keys of [`JSON_KEYS`], on one line.
    #[must_use]
    pub fn to_json(&self) -> String {
        let values: [String; 20] = [
            self.connected.to_string(),
            self.failed.to_string(),
            self.sent.to_string(),
            self.received.to_string(),
            round(self.sent_per_s(), 3).to_string(),
            round(self.received_per_s(), 3).to_string(),
            round(self.expected_per_s(), 3).to_string(),
            round(self.delivery_ratio(), 6).to_string(),
            round(self.latency_ms(0.5), 3).to_string(),
            round(self.latency_ms(0.99), 3).to_string(),
            round(self.latency_ms(0.999), 3).to_string(),
            round(self.max_ms(), 3).to_string(),
            self.disconnects.to_string(),
            self.flooders.to_string(),
            self.flood_sent.to_string(),
            self.flooders_cut.to_string(),
            self.servers.to_string(),
            self.received_crossed.to_string(),
            round(quantile_ms(&self.cross_latency_us, 0.5), 3).to_string(),
            round(quantile_ms(&self.cross_latency_us, 0.99), 3).to_string(),
        ];
        let mut out = String::from("{");
        for (i, (key, value)) in JSON_KEYS.iter().zip(values).enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "\"{key}\":{value}");
        }
        out.push('}');
        out
    }

    /// A human-readable summary table.
    #[must_use]
    pub fn to_table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "dummy-client summary: {} mode, {:.2} s measured window after {:.1} s warmup",
            self.mode,
            self.window.as_secs_f64(),
            self.warmup.as_secs_f64()
        );
        let _ = writeln!(t, "  {:<16}{:>14}{:>16}", "", "total", "per second");
        for (name, total) in [
            ("sessions", self.count),
            ("connected", self.connected),
            ("failed", self.failed),
            ("disconnects", self.disconnects),
        ] {
            let _ = writeln!(t, "  {name:<16}{total:>14}");
        }
        for (name, total, per_s) in [
            ("sent", self.sent, self.sent_per_s()),
            ("received", self.received, self.received_per_s()),
            ("expected", self.expected, self.expected_per_s()),
        ] {
            let _ = writeln!(t, "  {name:<16}{total:>14}{per_s:>16.1}");
        }
        if self.servers > 1 {
            let _ = writeln!(
                t,
                "  {:<16}{:>14}{:>16.1}   (received from a player on another of the {} servers)",
                "crossed",
                self.received_crossed,
                per_second(self.received_crossed, self.window),
                self.servers
            );
        }
        let _ = writeln!(
            t,
            "  {:<16}{:>14.6}",
            "delivery ratio",
            self.delivery_ratio()
        );
        let _ = writeln!(
            t,
            "  latency (send -> own broadcast), {} samples, {} lost:",
            self.latency_us.len(),
            self.lost_measurements
        );
        for (name, v) in [
            ("p50", self.latency_ms(0.5)),
            ("p99", self.latency_ms(0.99)),
            ("p99.9", self.latency_ms(0.999)),
            ("max", self.max_ms()),
        ] {
            let _ = writeln!(t, "    {name:<14}{v:>12.3} ms");
        }
        if self.servers > 1 {
            let _ = writeln!(
                t,
                "  latency to receivers on other servers, {} samples: p50 {:.3} ms, p99 {:.3} ms",
                self.cross_latency_us.len(),
                quantile_ms(&self.cross_latency_us, 0.5),
                quantile_ms(&self.cross_latency_us, 0.99),
            );
        }
        if self.flooders > 0 {
            let _ = writeln!(
                t,
                "  flooders: {} sent {} packets, {} cut by the server",
                self.flooders, self.flood_sent, self.flooders_cut
            );
        }
        t
    }
}

/// The once-a-second progress line.
#[derive(Debug)]
pub struct Progress {
    started: Instant,
    last: Option<(Instant, u64, u64)>,
    printed: bool,
    /// Shown at the start of the line: `warmup`, `measuring` or `draining`.
    pub phase: &'static str,
}

impl Progress {
    /// A progress line for a run that started at `started`.
    #[must_use]
    pub fn new(started: Instant) -> Self {
        Self {
            started,
            last: None,
            printed: false,
            phase: "warmup",
        }
    }

    /// Whether a line was produced.
    #[must_use]
    pub fn printed(&self) -> bool {
        self.printed
    }

    /// The line for `now`, given the running totals of sent and received packets (all
    /// packets, counted or not) and the latency so far.
    pub fn line(
        &mut self,
        now: Instant,
        connected: usize,
        count: usize,
        sent: u64,
        received: u64,
        latency_us: &Histogram<u64>,
    ) -> String {
        let (sent_rate, recv_rate) = match self.last {
            Some((t, s, r)) => {
                let secs = now.duration_since(t).as_secs_f64();
                if secs > 0.0 {
                    (
                        sent.saturating_sub(s) as f64 / secs,
                        received.saturating_sub(r) as f64 / secs,
                    )
                } else {
                    (0.0, 0.0)
                }
            }
            None => (0.0, 0.0),
        };
        self.last = Some((now, sent, received));
        self.printed = true;
        let p99 = if latency_us.is_empty() {
            "-".to_string()
        } else {
            format!("{:.2} ms", quantile_ms(latency_us, 0.99))
        };
        format!(
            "[{:>6.1}s] {:<9} connected {connected}/{count}  sent/s {sent_rate:.0}  received/s {recv_rate:.0}  p99 {p99}",
            now.duration_since(self.started).as_secs_f64(),
            self.phase,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(sent: u64, received: u64, expected: u64, window_ms: u64) -> Report {
        Report {
            mode: Mode::Chat,
            count: 10,
            connected: 10,
            failed: 0,
            sent,
            received,
            servers: 1,
            received_crossed: 0,
            expected,
            window: Duration::from_millis(window_ms),
            warmup: Duration::from_secs(2),
            disconnects: 0,
            flooders: 0,
            flood_sent: 0,
            flooders_cut: 0,
            lost_measurements: 0,
            latency_us: crate::new_histogram(),
            cross_latency_us: crate::new_histogram(),
            first_connect_error: None,
            first_disconnect: None,
        }
    }

    /// A minimal parser for a flat JSON object of numbers: key -> value text.
    fn parse_flat_json(s: &str) -> Vec<(String, f64)> {
        let inner = s
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .expect("braces");
        inner
            .split(',')
            .map(|pair| {
                let (k, v) = pair.split_once(':').expect("key:value");
                let k = k
                    .strip_prefix('"')
                    .and_then(|k| k.strip_suffix('"'))
                    .expect("quoted key");
                assert!(
                    !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || ".-eE+".contains(c)),
                    "number: {v}"
                );
                (k.to_string(), v.parse::<f64>().expect("a number"))
            })
            .collect()
    }

    #[test]
    fn rates_and_ratio() {
        let r = report(200, 1990, 2000, 10_000);
        assert_eq!(r.sent_per_s(), 20.0);
        assert_eq!(r.received_per_s(), 199.0);
        assert_eq!(r.expected_per_s(), 200.0);
        assert!((r.delivery_ratio() - 0.995).abs() < 1e-12);
    }

    #[test]
    fn empty_window_and_nothing_expected_are_safe() {
        let r = report(0, 0, 0, 0);
        assert_eq!(r.sent_per_s(), 0.0);
        assert_eq!(r.expected_per_s(), 0.0);
        assert_eq!(r.delivery_ratio(), 1.0);
        assert_eq!(r.latency_ms(0.99), 0.0);
        assert_eq!(r.max_ms(), 0.0);
        let json = parse_flat_json(&r.to_json());
        assert!(json.iter().all(|(_, v)| v.is_finite()));
    }

    #[test]
    fn percentiles_from_a_known_histogram() {
        let mut r = report(1000, 1000, 1000, 1000);
        // 1..=1000 ms in microseconds, one sample each.
        for ms in 1..=1000u64 {
            r.latency_us.record(ms * 1000).unwrap();
        }
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.001 + 1e-9;
        assert!(close(r.latency_ms(0.5), 500.0), "{}", r.latency_ms(0.5));
        assert!(close(r.latency_ms(0.99), 990.0), "{}", r.latency_ms(0.99));
        assert!(close(r.latency_ms(0.999), 999.0), "{}", r.latency_ms(0.999));
        assert!(close(r.max_ms(), 1000.0), "{}", r.max_ms());
    }

    #[test]
    fn json_has_exactly_the_thirteen_keys_in_order() {
        let mut r = report(400, 3996, 4000, 2000);
        r.latency_us.record(1500).unwrap();
        r.disconnects = 2;
        let json = r.to_json();
        assert!(!json.contains('\n'));
        let parsed = parse_flat_json(&json);
        let keys: Vec<&str> = parsed.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, JSON_KEYS);
        let get = |k: &str| parsed.iter().find(|(key, _)| key == k).unwrap().1;
        assert_eq!(get("connected"), 10.0);
        assert_eq!(get("sent"), 400.0);
        assert_eq!(get("received"), 3996.0);
        assert_eq!(get("sent_per_s"), 200.0);
        assert_eq!(get("received_per_s"), 1998.0);
        assert_eq!(get("expected_per_s"), 2000.0);
        assert_eq!(get("delivery_ratio"), 0.999);
        assert_eq!(get("p50_ms"), 1.5);
        assert_eq!(get("max_ms"), 1.5);
        assert_eq!(get("disconnects"), 2.0);
    }

    #[test]
    fn failure_reasons_and_exit_codes() {
        let ok = report(1, 1, 1, 1000);
        assert_eq!(ok.failure(), None);
        assert_eq!(ok.exit_code(), 0);
        let mut bad = report(1, 1, 1, 1000);
        bad.failed = 3;
        bad.connected = 7;
        bad.first_connect_error = Some("Connection refused".into());
        bad.disconnects = 1;
        let reason = bad.failure().unwrap();
        assert!(!reason.contains('\n'));
        assert!(reason.contains("3 of 10 sessions failed"), "{reason}");
        assert!(reason.contains("1 sessions disconnected"), "{reason}");
        assert_eq!(bad.exit_code(), 1);
    }

    #[test]
    fn table_mentions_every_figure() {
        let t = report(10, 9, 10, 1000).to_table();
        for word in [
            "connected",
            "failed",
            "sent",
            "received",
            "expected",
            "delivery ratio",
            "p99.9",
        ] {
            assert!(t.contains(word), "{word} missing in\n{t}");
        }
    }

    #[test]
    fn progress_rates_are_per_second_deltas() {
        let t0 = Instant::now();
        let mut p = Progress::new(t0);
        let h = crate::new_histogram();
        let _ = p.line(t0, 0, 5, 0, 0, &h);
        let line = p.line(t0 + Duration::from_secs(2), 5, 5, 100, 400, &h);
        assert!(line.contains("connected 5/5"), "{line}");
        assert!(line.contains("sent/s 50 "), "{line}");
        assert!(line.contains("received/s 200 "), "{line}");
        assert!(line.ends_with("p99 -"), "{line}");
    }
}
