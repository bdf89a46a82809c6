//! The server's settings, which are also its command line and its environment.
//!
//! Every flag has an environment variable (`--max-sessions` = `GAME_SERVER_MAX_SESSIONS`);
//! a flag given on the command line wins over its variable. Values outside what a flag
//! allows are refused by the parser with the flag's name, and by [`ServerConfig::validate`]
//! (run by [`start`](crate::start)) when the config is built in code.

use crate::ListenAddr;
use server_core::{defaults, Excess, RateLimit};
use std::fmt::Display;
use std::net::SocketAddr;
use std::str::FromStr;
use thiserror::Error;

/// Default longest wait of a room broadcast (`--tick-ms`), chosen by the load test in
/// docs/benchmarks.md.
pub const DEFAULT_TICK_MS: u64 = 20;

/// Settings of a game server; also its command line (`--help` shows these texts).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ServerConfig {
    /// Address to listen on, HOST:PORT; a host name is resolved at start and the first
    /// address it gives is used (0.0.0.0:7777 for every interface).
    #[arg(long, env = "GAME_SERVER_ADDR", default_value = "127.0.0.1:7777")]
    pub addr: ListenAddr,

    /// I/O threads [default: available cores].
    #[arg(long, env = "GAME_SERVER_THREADS", value_parser = |s: &str| parse_within(s, THREADS))]
    pub threads: Option<u32>,

    /// Most connections open at once; further ones are closed at once and logged.
    #[arg(long, env = "GAME_SERVER_MAX_SESSIONS", default_value_t = defaults::MAX_SESSIONS, value_parser = |s: &str| parse_within(s, MAX_SESSIONS))]
    pub max_sessions: usize,

    /// Players per room: newcomers join the first room with space, a new room opens when all
    /// are full, and rooms that become empty are closed (except the first).
    /// 0 = a single room without limit, as in the course.
    #[arg(long, env = "GAME_SERVER_ROOM_CAPACITY", default_value_t = 0)]
    pub room_capacity: usize,

    /// The longest, in milliseconds, a room broadcast waits before it is sent: the upper
    /// bound on the latency batching adds. A quiet room sends at once; rooms gather
    /// broadcasts into one send per member only when flushing at once would take more than
    /// half a core, and then for at most this long. 0 = never gather (server-core still
    /// writes everything queued for a session in one loop iteration with one write). The
    /// default, 20 (a 50 Hz tick), lets a 500-player room cost about a third of the CPU per
    /// delivered packet that sending at once costs even where writes are dear
    /// (docs/benchmarks.md).
    #[arg(long, env = "GAME_SERVER_TICK_MS", default_value_t = DEFAULT_TICK_MS, value_parser = |s: &str| parse_within(s, TICK_MS))]
    pub tick_ms: u64,

    /// Bytes that may wait in one session's send queue; a client reading slower than that
    /// is disconnected. At least 65536, so the largest packet fits.
    #[arg(long, env = "GAME_SERVER_MAX_SEND_QUEUE", default_value_t = defaults::MAX_SEND_QUEUE, value_parser = |s: &str| parse_within(s, MAX_SEND_QUEUE))]
    pub max_send_queue: usize,

    /// Seconds a client may stay silent before it is disconnected; 0 = never.
    #[arg(long, env = "GAME_SERVER_IDLE_TIMEOUT", default_value_t = 300, value_parser = |s: &str| parse_within(s, IDLE_TIMEOUT))]
    pub idle_timeout: u64,

    /// Largest packet accepted from a client, header included (4 to 65535); a bigger size
    /// field disconnects it.
    #[arg(long, env = "GAME_SERVER_MAX_PACKET_SIZE", default_value_t = DEFAULT_MAX_PACKET_SIZE, value_parser = |s: &str| parse_within(s, MAX_PACKET_SIZE))]
    pub max_packet_size: u16,

    /// Packets per second one client may send, sustained (bursts of as many are allowed);
    /// beyond it --rate-policy applies. 0 = no rate limit.
    #[arg(long, env = "GAME_SERVER_RATE_PACKETS", default_value_t = defaults::PACKETS_PER_SEC, value_parser = |s: &str| parse_within(s, RATE_PACKETS))]
    pub rate_packets: u32,

    /// Bytes per second one client may send, sustained (bursts of twice as many are
    /// allowed). Must let the largest packet through.
    #[arg(long, env = "GAME_SERVER_RATE_BYTES", default_value_t = defaults::BYTES_PER_SEC, value_parser = |s: &str| parse_within(s, RATE_BYTES))]
    pub rate_bytes: u32,

    /// What happens to a client over its rate: `throttle` stops reading from it until it
    /// is back under (nothing lost, TCP slows it down), `drop` discards the excess,
    /// `disconnect` discards it and closes the client after --rate-grace seconds of excess.
    #[arg(long, env = "GAME_SERVER_RATE_POLICY", value_enum, default_value_t = RatePolicy::Throttle)]
    pub rate_policy: RatePolicy,

    /// Seconds of sustained excess before `--rate-policy disconnect` closes a client.
    #[arg(long, env = "GAME_SERVER_RATE_GRACE", default_value_t = defaults::RATE_LIMIT_GRACE.as_secs(), value_parser = |s: &str| parse_within(s, RATE_GRACE))]
    pub rate_grace: u64,

    /// Room jobs a client's packets may have unfinished (waiting in its room or for the
    /// room's tick) before reading from it pauses until they are done.
    #[arg(long, env = "GAME_SERVER_MAX_IN_FLIGHT", default_value_t = defaults::MAX_IN_FLIGHT, value_parser = |s: &str| parse_within(s, MAX_IN_FLIGHT))]
    pub max_in_flight: u32,

    /// Address of the browser port, HOST:PORT: `GET /` serves the playable web page, `/ws`
    /// is the game over WebSocket (the same rooms as --addr), anything else is 404.
    /// `off` (or an empty value) turns it off.
    #[arg(long, env = "GAME_SERVER_WS_ADDR", default_value = "127.0.0.1:7780", value_parser = parse_ws_addr)]
    // `std::option::Option` spelled out: clap reads a plain `Option` as "flag absent", but
    // this flag has a default and an explicit "off".
    pub ws_addr: ::std::option::Option<ListenAddr>,

    /// Serve Prometheus metrics (/metrics), health (/healthz) and readiness (/readyz) over
    /// HTTP on this HOST:PORT, like 127.0.0.1:9100; off when not given.
    #[arg(long, env = "GAME_SERVER_METRICS_ADDR")]
    pub metrics_addr: Option<ListenAddr>,

    /// On SIGTERM or SIGINT, seconds to let connected players play on while no new one is
    /// accepted (and /readyz answers 503) before the rest are disconnected; a second signal
    /// ends the wait. 0 = stop at once. (For the binary: `start` does not read it; code
    /// drains with `GameServer::drain`.)
    #[arg(long, env = "GAME_SERVER_DRAIN_TIMEOUT", default_value_t = 0, value_parser = |s: &str| parse_within(s, DRAIN_TIMEOUT))]
    pub drain_timeout: u64,

    /// Share rooms with every other game-server pointing at this Redis, as
    /// redis://HOST:PORT (docs/scaling.md). Off when not given: one process, as without it.
    /// An unreachable Redis fails the start.
    #[arg(long, env = "GAME_SERVER_CLUSTER", value_name = "URL", value_parser = parse_cluster_url)]
    pub cluster: Option<String>,

    /// Seconds after which a clustered process that stopped heartbeating (killed, cut
    /// off) counts as gone and its players leave everywhere; it heartbeats every third.
    #[arg(long, env = "GAME_SERVER_CLUSTER_TTL", value_name = "SECS", default_value_t = 5, value_parser = |s: &str| parse_within(s, CLUSTER_TTL))]
    pub cluster_ttl: u64,
}

/// server-core's largest frame, as the `u16` the flag takes (65,535 fits).
const DEFAULT_MAX_PACKET_SIZE: u16 = {
    assert!(defaults::MAX_PACKET_SIZE <= u16::MAX as usize);
    defaults::MAX_PACKET_SIZE as u16
};

impl Default for ServerConfig {
    /// The command-line defaults, except that the browser port (`ws_addr`) is off: code
    /// that starts servers (tests, embedders) picks its ports, and a fixed second port
    /// would collide between servers started side by side. Set it to turn it on.
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 7777)).into(),
            threads: None,
            max_sessions: defaults::MAX_SESSIONS,
            room_capacity: 0,
            tick_ms: DEFAULT_TICK_MS,
            max_send_queue: defaults::MAX_SEND_QUEUE,
            idle_timeout: 300,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            rate_packets: defaults::PACKETS_PER_SEC,
            rate_bytes: defaults::BYTES_PER_SEC,
            rate_policy: RatePolicy::Throttle,
            rate_grace: defaults::RATE_LIMIT_GRACE.as_secs(),
            max_in_flight: defaults::MAX_IN_FLIGHT,
            ws_addr: None,
            metrics_addr: None,
            drain_timeout: 0,

            cluster: None,
            cluster_ttl: 5,
        }
    }
}

impl ServerConfig {
    /// Checks every bounded value, as the command-line parser does.
    ///
    /// # Errors
    /// The first value out of bounds, with its flag's name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let threads = self.threads.map_or(Ok(()), |n| check(n, THREADS));
        threads
            .and(check(self.max_sessions, MAX_SESSIONS))
            .and(check(self.tick_ms, TICK_MS))
            .and(check(self.max_send_queue, MAX_SEND_QUEUE))
            .and(check(self.idle_timeout, IDLE_TIMEOUT))
            .and(check(self.max_packet_size, MAX_PACKET_SIZE))
            .and(check(self.rate_packets, RATE_PACKETS))
            .and(check(self.rate_bytes, RATE_BYTES))
            .and(check(self.rate_grace, RATE_GRACE))
            .and(check(self.max_in_flight, MAX_IN_FLIGHT))
            .and(check(self.cluster_ttl, CLUSTER_TTL))
            .and(self.check_rate_bytes_fit_a_packet())
            .and(check(self.drain_timeout, DRAIN_TIMEOUT))
            .and(self.cluster.as_deref().map_or(Ok(()), |url| {
                parse_cluster_url(url)
                    .map(drop)
                    .map_err(|reason| ConfigError {
                        flag: "--cluster",
                        reason,
                    })
            }))
    }

    /// The per-client rate limit these flags describe (`None` with `--rate-packets 0`).
    #[must_use]
    pub fn rate_limit(&self) -> Option<RateLimit> {
        if self.rate_packets == 0 {
            return None;
        }
        let on_excess = match self.rate_policy {
            RatePolicy::Throttle => Excess::Throttle,
            RatePolicy::Drop => Excess::Drop,
            RatePolicy::Disconnect => Excess::Disconnect {
                after: std::time::Duration::from_secs(self.rate_grace),
            },
        };
        let byte_burst = self.rate_bytes.saturating_mul(2);
        Some(
            RateLimit::new(self.rate_packets, self.rate_bytes)
                .byte_burst(byte_burst)
                .on_excess(on_excess),
        )
    }

    /// A byte burst smaller than the largest packet would refuse that packet forever.
    fn check_rate_bytes_fit_a_packet(&self) -> Result<(), ConfigError> {
        let burst = u64::from(self.rate_bytes) * 2;
        if self.rate_packets == 0 || burst >= u64::from(self.max_packet_size) {
            Ok(())
        } else {
            Err(ConfigError {
                flag: "--rate-bytes",
                reason: format!(
                    "{} allows bursts of {burst} bytes, less than --max-packet-size {}",
                    self.rate_bytes, self.max_packet_size
                ),
            })
        }
    }
}

/// What happens to a client that sends faster than `--rate-packets`/`--rate-bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RatePolicy {
    /// Stop reading from it until it is back under its rate (nothing is lost).
    Throttle,
    /// Discard the excess packets.
    Drop,
    /// Discard the excess and close the client after `--rate-grace` seconds of it.
    Disconnect,
}

/// `--ws-addr`: an address, or `off` / nothing for no browser port.
fn parse_ws_addr(s: &str) -> Result<Option<ListenAddr>, String> {
    let s = s.trim();
    if s.is_empty() || s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|e: crate::ParseListenAddrError| e.to_string())
}

/// Resolves the address of `flag`, logging what a host name resolved to.
pub(crate) fn resolve(flag: &'static str, addr: &ListenAddr) -> Result<SocketAddr, ConfigError> {
    let all = addr.resolve().map_err(|e| ConfigError {
        flag,
        reason: format!("cannot resolve {addr}: {e}"),
    })?;
    let Some(&first) = all.first() else {
        return Err(ConfigError {
            flag,
            reason: format!("{addr} resolves to no address"),
        });
    };
    if let ListenAddr::Host { .. } = addr {
        log::info!("{flag} {addr} resolves to {all:?}; using {first}");
    }
    Ok(first)
}

/// A setting the server cannot run with, named by its flag.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{flag}: {reason}")]
pub struct ConfigError {
    /// The flag, like `--max-sessions`.
    pub flag: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}

/// The values one flag accepts.
#[derive(Clone, Copy)]
struct Bounds<T> {
    flag: &'static str,
    min: T,
    max: T,
}

// One place for each flag's bounds: the parsers below and `validate` both use them.
const THREADS: Bounds<u32> = Bounds {
    flag: "--threads",
    min: 1,
    max: 1024,
};
const MAX_SESSIONS: Bounds<usize> = Bounds {
    flag: "--max-sessions",
    min: 1,
    max: 10_000_000,
};
/// A minute: a longer flush interval is a stalled room, not a setting.
const TICK_MS: Bounds<u64> = Bounds {
    flag: "--tick-ms",
    min: 0,
    max: 60_000,
};
/// The largest frame must fit, or a newcomer to a big room would be cut off.
const MAX_SEND_QUEUE: Bounds<usize> = Bounds {
    flag: "--max-send-queue",
    min: 65_536,
    max: 1 << 40,
};
/// Thirty days; beyond that the deadline arithmetic is the only thing the value affects.
const IDLE_TIMEOUT: Bounds<u64> = Bounds {
    flag: "--idle-timeout",
    min: 0,
    max: 30 * 86_400,
};
/// Up to a million packets a second: more is no limit at all (use 0 for that).
const RATE_PACKETS: Bounds<u32> = Bounds {
    flag: "--rate-packets",
    min: 0,
    max: 1_000_000,
};
/// At least 32 KiB/s, so the default bursts let the largest packet through.
const RATE_BYTES: Bounds<u32> = Bounds {
    flag: "--rate-bytes",
    min: 32 * 1024,
    max: 1 << 30,
};
const RATE_GRACE: Bounds<u64> = Bounds {
    flag: "--rate-grace",
    min: 1,
    max: 3600,
};
const MAX_IN_FLIGHT: Bounds<u32> = Bounds {
    flag: "--max-in-flight",
    min: 1,
    max: 1 << 20,
};
/// Under a second the heartbeats would flood Redis; over five minutes a dead process's
/// players would linger far too long.
const CLUSTER_TTL: Bounds<u64> = Bounds {
    flag: "--cluster-ttl",
    min: 1,
    max: 300,
};
const MAX_PACKET_SIZE: Bounds<u16> = Bounds {
    flag: "--max-packet-size",
    min: 4,
    max: u16::MAX,
};
/// A week: matches of several hours fit; beyond that a drain is an outage.
const DRAIN_TIMEOUT: Bounds<u64> = Bounds {
    flag: "--drain-timeout",
    min: 0,
    max: 7 * 86_400,
};

fn check<T: Copy + PartialOrd + Display>(value: T, bounds: Bounds<T>) -> Result<(), ConfigError> {
    if bounds.min <= value && value <= bounds.max {
        Ok(())
    } else {
        Err(ConfigError {
            flag: bounds.flag,
            reason: format!("{value} is not in {}..={}", bounds.min, bounds.max),
        })
    }
}

/// A Redis URL the client accepts (redis://HOST:PORT, with an optional /DB).
fn parse_cluster_url(s: &str) -> Result<String, String> {
    let s = s.trim();
    if !s.starts_with("redis://") {
        return Err(format!("`{s}` is not a redis://HOST:PORT URL"));
    }
    redis::Client::open(s).map_err(|e| format!("`{s}`: {e}"))?;
    Ok(s.to_owned())
}

/// Parses a flag's value and checks its bounds; clap adds the flag's name to the message.
fn parse_within<T: Copy + FromStr + PartialOrd + Display>(
    s: &str,
    bounds: Bounds<T>,
) -> Result<T, String> {
    let value = s
        .trim()
        .parse()
        .map_err(|_| format!("not a whole number in {}..={}", bounds.min, bounds.max))?;
    check(value, bounds).map_err(|e| e.reason)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_port_has_a_default_and_an_off_switch() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            config: ServerConfig,
        }
        let parse = |args: &[&str]| Cli::try_parse_from([&["game-server"], args].concat());
        let default = parse(&[]).unwrap().config;
        assert_eq!(
            default.ws_addr.as_ref().map(ToString::to_string),
            Some("127.0.0.1:7780".to_owned())
        );
        assert_eq!(
            ServerConfig {
                ws_addr: None,
                ..default
            },
            ServerConfig::default(),
            "in code, the browser port is off until set"
        );
        for off in ["off", "OFF", ""] {
            assert_eq!(parse(&["--ws-addr", off]).unwrap().config.ws_addr, None);
        }
        let on = parse(&["--ws-addr", "localhost:9000"]).unwrap().config;
        assert_eq!(on.ws_addr.unwrap().to_string(), "localhost:9000");
        let bad = parse(&["--ws-addr", "nowhere"]).err().unwrap().to_string();
        assert!(bad.contains("--ws-addr"), "{bad}");
    }

    #[test]
    fn defaults_are_valid_and_bounds_name_the_flag() {
        ServerConfig::default().validate().unwrap();
        let bad = ServerConfig {
            max_sessions: 0,
            ..Default::default()
        };
        let e = bad.validate().unwrap_err();
        assert_eq!(e.flag, "--max-sessions");
        assert_eq!(e.to_string(), "--max-sessions: 0 is not in 1..=10000000");
        let bad = ServerConfig {
            threads: Some(0),
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().flag, "--threads");
        assert_eq!(
            parse_within("1024", MAX_SEND_QUEUE).unwrap_err(),
            "1024 is not in 65536..=1099511627776"
        );
        assert!(parse_within("x", TICK_MS)
            .unwrap_err()
            .starts_with("not a whole number"));
        assert_eq!(parse_within(" 60 ", IDLE_TIMEOUT), Ok(60));
    }

    #[test]
    fn an_address_that_does_not_resolve_names_the_flag() {
        // An empty name fails in the local resolver, without a DNS query.
        let nowhere = ListenAddr::Host {
            name: String::new(),
            port: 7777,
        };
        let e = resolve("--metrics-addr", &nowhere).unwrap_err();
        assert_eq!(e.flag, "--metrics-addr");
        assert!(
            e.to_string()
                .starts_with("--metrics-addr: cannot resolve :7777"),
            "{e}"
        );
        let local = resolve("--addr", &"localhost:7777".parse().unwrap()).unwrap();
        assert!(local.ip().is_loopback());
    }
}
