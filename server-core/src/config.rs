//! Service and listener settings: every default lives here, once, and every value is
//! checked when the service (or listener) is built, never silently clamped.

use crate::connection::RateLimit;
use crate::frame::{HEADER_SIZE, MAX_FRAME_SIZE};
use std::time::Duration;
use thiserror::Error;

/// The defaults of [`ServiceBuilder`](crate::ServiceBuilder) and
/// [`ListenOptions`](crate::ListenOptions), for binaries that expose them as flags.
///
/// # Examples
/// ```
/// assert_eq!(server_core::defaults::MAX_SESSIONS, 10_000);
/// ```
pub mod defaults {
    use std::time::Duration;

    /// Open sessions per listener.
    pub const MAX_SESSIONS: usize = 10_000;
    /// Length of each listener's accept queue.
    pub const LISTEN_BACKLOG: u32 = 4096;
    /// Largest incoming frame, header included: all a `u16` size field can say.
    pub const MAX_PACKET_SIZE: usize = crate::frame::MAX_FRAME_SIZE;
    /// Bytes a session may have queued for sending before it counts as a slow reader.
    pub const MAX_SEND_QUEUE: usize = 4 * 1024 * 1024;
    /// How long a session's send backlog may stay above [`MAX_SEND_QUEUE`] before the
    /// session is judged too slow and closed.
    pub const SEND_STALL_TIMEOUT: Duration = Duration::from_secs(2);
    /// First allocation of a receive buffer (or the max packet size, if smaller).
    pub const RECV_BUFFER_INITIAL: usize = 4096;
    /// TCP keepalive idle time.
    pub const KEEPALIVE: Duration = Duration::from_secs(60);
    /// Outgoing connect timeout.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Time a closing session (or the service at shutdown) may spend flushing.
    pub const LINGER: Duration = Duration::from_secs(2);
    /// Time one thread runs a JobQueue before handing the rest to an I/O thread.
    pub const JOB_BUDGET: Duration = Duration::from_millis(2);
    /// Pause after `accept` fails for lack of descriptors.
    pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
    /// Inbound packets per second a session may sustain.
    pub const PACKETS_PER_SEC: u32 = 1_000;
    /// Packets a session may send in a burst above the sustained rate.
    pub const PACKET_BURST: u32 = 1_000;
    /// Inbound bytes per second a session may sustain (1 MiB/s).
    pub const BYTES_PER_SEC: u32 = 1024 * 1024;
    /// Bytes a session may send in a burst above the sustained rate (2 MiB).
    pub const BYTE_BURST: u32 = 2 * 1024 * 1024;
    /// How long a session may keep exceeding its rate before the `Disconnect` policy
    /// closes it.
    pub const RATE_LIMIT_GRACE: Duration = Duration::from_secs(2);
    /// Unfinished pieces of work a session may have caused (live
    /// [`InFlight`](crate::InFlight) guards) before reading from it pauses.
    pub const MAX_IN_FLIGHT: u32 = 256;
}

/// A setting that makes no sense, reported by [`ServiceBuilder::build`](crate::ServiceBuilder::build)
/// or [`Service::listen_with`](crate::Service::listen_with).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid setting `{setting}` = {value}: {reason}")]
pub struct ConfigError {
    /// The setter's name, e.g. `max_packet_size`.
    pub setting: &'static str,
    /// The value given, as text.
    pub value: String,
    /// What a valid value looks like.
    pub reason: &'static str,
}

impl ConfigError {
    fn new(setting: &'static str, value: impl std::fmt::Debug, reason: &'static str) -> Self {
        Self {
            setting,
            value: format!("{value:?}"),
            reason,
        }
    }
}

/// Settings shared by every session of a [`Service`](crate::Service). Built with
/// [`ServiceBuilder`](crate::ServiceBuilder); the defaults are in [`defaults`].
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) threads: usize,
    pub(crate) listen_backlog: u32,
    pub(crate) max_packet_size: usize,
    pub(crate) max_send_queue: usize,
    pub(crate) send_stall_timeout: Duration,
    /// `None`: [`defaults::RECV_BUFFER_INITIAL`], or `max_packet_size` if smaller.
    pub(crate) recv_buffer_initial: Option<usize>,
    pub(crate) nodelay: bool,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) connect_timeout: Duration,
    pub(crate) linger: Duration,
    pub(crate) job_budget: Duration,
    pub(crate) accept_backoff: Duration,
    /// What `listen` uses when no [`ListenOptions`](crate::ListenOptions) are given.
    pub(crate) listen: ListenConfig,
}

/// Per-listener settings (see [`ListenOptions`](crate::ListenOptions)).
#[derive(Debug, Clone)]
pub(crate) struct ListenConfig {
    pub(crate) max_sessions: usize,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) max_in_flight: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            listen_backlog: defaults::LISTEN_BACKLOG,
            max_packet_size: defaults::MAX_PACKET_SIZE,
            max_send_queue: defaults::MAX_SEND_QUEUE,
            send_stall_timeout: defaults::SEND_STALL_TIMEOUT,
            recv_buffer_initial: None,
            nodelay: true,
            keepalive: Some(defaults::KEEPALIVE),
            idle_timeout: None,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            linger: defaults::LINGER,
            job_budget: defaults::JOB_BUDGET,
            accept_backoff: defaults::ACCEPT_BACKOFF,
            listen: ListenConfig::default(),
        }
    }
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            max_sessions: defaults::MAX_SESSIONS,
            rate_limit: Some(RateLimit::default()),
            max_in_flight: defaults::MAX_IN_FLIGHT,
        }
    }
}

impl Config {
    pub(crate) fn recv_buffer_initial(&self) -> usize {
        self.recv_buffer_initial
            .unwrap_or(defaults::RECV_BUFFER_INITIAL.min(self.max_packet_size))
    }

    /// Checks every value; the first bad one is the error.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.threads == 0 || self.threads > 1024 {
            return Err(ConfigError::new("threads", self.threads, "1 to 1024"));
        }
        if self.listen_backlog == 0 || i32::try_from(self.listen_backlog).is_err() {
            return Err(ConfigError::new(
                "listen_backlog",
                self.listen_backlog,
                "1 to 2^31-1 (the kernel caps it at net.core.somaxconn)",
            ));
        }
        if !(HEADER_SIZE..=MAX_FRAME_SIZE).contains(&self.max_packet_size) {
            return Err(ConfigError::new(
                "max_packet_size",
                self.max_packet_size,
                "4 (a bare header) to 65535 (all a u16 size field can say)",
            ));
        }
        if self.max_send_queue < self.max_packet_size {
            return Err(ConfigError::new(
                "max_send_queue",
                self.max_send_queue,
                "at least max_packet_size, so one largest packet fits",
            ));
        }
        if self.send_stall_timeout.is_zero() {
            return Err(ConfigError::new(
                "send_stall_timeout",
                self.send_stall_timeout,
                "more than zero",
            ));
        }
        if !(HEADER_SIZE..=self.max_packet_size).contains(&self.recv_buffer_initial()) {
            return Err(ConfigError::new(
                "recv_buffer_initial",
                self.recv_buffer_initial,
                "4 to max_packet_size",
            ));
        }
        if self.idle_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new(
                "idle_timeout",
                self.idle_timeout,
                "more than zero, or None for no timeout",
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::new(
                "connect_timeout",
                self.connect_timeout,
                "more than zero",
            ));
        }
        self.listen.validate(self.max_packet_size)
    }
}

impl ListenConfig {
    pub(crate) fn validate(&self, max_packet_size: usize) -> Result<(), ConfigError> {
        if self.max_sessions == 0 {
            return Err(ConfigError::new("max_sessions", 0, "at least 1"));
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError::new("max_in_flight", 0, "at least 1"));
        }
        if let Some(limit) = &self.rate_limit {
            limit.validate(max_packet_size)?;
        }
        Ok(())
    }
}

impl RateLimit {
    pub(crate) fn validate(&self, max_packet_size: usize) -> Result<(), ConfigError> {
        if self.packets_per_sec == 0 {
            return Err(ConfigError::new(
                "rate_limit.packets_per_sec",
                0,
                "at least 1 (or no rate limit at all)",
            ));
        }
        if self.bytes_per_sec == 0 {
            return Err(ConfigError::new(
                "rate_limit.bytes_per_sec",
                0,
                "at least 1 (or no rate limit at all)",
            ));
        }
        if self.packet_burst == 0 {
            return Err(ConfigError::new("rate_limit.packet_burst", 0, "at least 1"));
        }
        if (self.byte_burst as usize) < max_packet_size {
            return Err(ConfigError::new(
                "rate_limit.byte_burst",
                self.byte_burst,
                "at least max_packet_size, or the largest packet could never be admitted",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn bad_values_name_their_setting() {
        let cases: Vec<(Config, &str)> = vec![
            (
                Config {
                    threads: 0,
                    ..Config::default()
                },
                "threads",
            ),
            (
                Config {
                    max_packet_size: 3,
                    ..Config::default()
                },
                "max_packet_size",
            ),
            (
                Config {
                    max_packet_size: 70_000,
                    ..Config::default()
                },
                "max_packet_size",
            ),
            (
                Config {
                    max_send_queue: 100,
                    ..Config::default()
                },
                "max_send_queue",
            ),
            (
                Config {
                    recv_buffer_initial: Some(100_000),
                    ..Config::default()
                },
                "recv_buffer_initial",
            ),
            (
                Config {
                    idle_timeout: Some(Duration::ZERO),
                    ..Config::default()
                },
                "idle_timeout",
            ),
        ];
        for (config, setting) in cases {
            let error = config.validate().unwrap_err();
            assert_eq!(error.setting, setting);
            assert!(error.to_string().contains(setting), "{error}");
        }
    }

    #[test]
    fn the_default_first_buffer_follows_a_small_max_packet_size() {
        let config = Config {
            max_packet_size: 1024,
            ..Config::default()
        };
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.recv_buffer_initial(), 1024);
    }

    #[test]
    fn a_byte_burst_below_the_largest_packet_is_refused() {
        let limit = RateLimit::default().byte_burst(1000);
        let error = limit.validate(65_535).unwrap_err();
        assert_eq!(error.setting, "rate_limit.byte_burst");
    }
}
