//! The open-file limit: every session is a descriptor, and the common default soft limit of
//! 1,024 would refuse the thousand-and-somethingth player without a word at start.
//!
//! [`raise_open_file_limit`] lifts the soft limit to the hard one, as Go's runtime and many
//! servers do at start; [`open_file_shortfall`] says at start when even that cannot hold
//! `--max-sessions`.

use crate::ServerConfig;
use log::{info, warn};
use std::fmt;
use std::io;

/// Descriptors kept aside beside one per session: listeners, one poll and one waker per I/O
/// thread, the metrics endpoint's listener, stdio and log files, the resolver.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// The process's open-file limit (`RLIMIT_NOFILE`) before and after
/// [`raise_open_file_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileLimit {
    /// Soft limit found at start.
    pub old_soft: u64,
    /// Soft limit now: what `accept` runs into.
    pub soft: u64,
    /// Hard limit: the most an unprivileged process may raise the soft limit to.
    pub hard: u64,
}

impl fmt::Display for OpenFileLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "open-file limit: soft {} -> {} (hard {})",
            self.old_soft, self.soft, self.hard
        )
    }
}

/// Raises the soft open-file limit of this process to its hard limit (Linux).
///
/// # Errors
/// `Unsupported` on other systems, or the error of `getrlimit`/`setrlimit`.
///
/// # Examples
/// ```
/// match game_server::ops::raise_open_file_limit() {
///     Ok(limit) => assert!(limit.soft >= limit.old_soft),
///     Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::Unsupported),
/// }
/// ```
pub fn raise_open_file_limit() -> io::Result<OpenFileLimit> {
    #[cfg(target_os = "linux")]
    {
        linux::raise()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the open-file limit is only raised on Linux",
        ))
    }
}

/// At start: raises the soft open-file limit ([`raise_open_file_limit`]), logs the result
/// at info, and logs a warning ([`open_file_shortfall`]) if it cannot hold
/// `config.max_sessions`. The binary calls this before [`start`](crate::start).
pub fn prepare_open_file_limit(config: &ServerConfig) {
    let limit = match raise_open_file_limit() {
        Ok(limit) => limit,
        Err(e) if e.kind() == io::ErrorKind::Unsupported => return,
        Err(e) => {
            warn!("cannot raise the open-file limit: {e}");
            return;
        }
    };
    info!("{limit}");
    let endpoint = match config.metrics_addr {
        Some(_) => super::ENDPOINT_CONNECTIONS as u64 + 1,
        None => 0,
    };
    let needed = descriptors_needed(config.max_sessions, endpoint);
    if let Some(warning) = open_file_shortfall(&limit, needed, config.max_sessions) {
        warn!("{warning}");
    }
}

/// Descriptors a server with `max_sessions` sessions needs: one per session plus
/// [`RESERVED_DESCRIPTORS`] plus `extra` (the metrics endpoint's connections).
#[must_use]
pub fn descriptors_needed(max_sessions: usize, extra: u64) -> u64 {
    (max_sessions as u64)
        .saturating_add(RESERVED_DESCRIPTORS)
        .saturating_add(extra)
}

/// When `limit` cannot hold `needed` descriptors: a warning that names both numbers and
/// how to raise the limit. `None` when it can.
#[must_use]
pub fn open_file_shortfall(
    limit: &OpenFileLimit,
    needed: u64,
    max_sessions: usize,
) -> Option<String> {
    (limit.soft < needed).then(|| {
        let players = limit.soft.saturating_sub(needed - max_sessions as u64);
        format!(
            "the open-file limit ({}) is below what --max-sessions {max_sessions} needs \
             ({needed}: one per session plus {} for listeners, event loops and logs); \
             players past about {players} will be refused. Raise the hard limit before \
             starting: `ulimit -n {needed}` in the shell, `LimitNOFILE={needed}` in a \
             systemd unit, `--ulimit nofile={needed}` for docker run",
            limit.soft,
            needed - max_sessions as u64,
        )
    })
}

#[cfg(target_os = "linux")]
mod linux {
    use super::OpenFileLimit;
    use std::io;

    pub(super) fn raise() -> io::Result<OpenFileLimit> {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one `rlimit` through a valid, exclusive pointer.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let old_soft = limit.rlim_cur;
        // An unlimited hard limit still stops at the kernel's fs.nr_open.
        let target = if limit.rlim_max == libc::RLIM_INFINITY {
            nr_open().unwrap_or(1 << 20)
        } else {
            limit.rlim_max
        };
        if target > old_soft {
            let raised = libc::rlimit {
                rlim_cur: target,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: setrlimit reads one `rlimit` through a valid pointer.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
                return Err(io::Error::last_os_error());
            }
            limit.rlim_cur = target;
        }
        Ok(OpenFileLimit {
            old_soft,
            soft: limit.rlim_cur,
            hard: limit.rlim_max,
        })
    }

    /// The kernel's ceiling on any process's descriptors.
    fn nr_open() -> Option<u64> {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shortfall_names_both_numbers_and_the_fix() {
        let limit = OpenFileLimit {
            old_soft: 1024,
            soft: 1024,
            hard: 1024,
        };
        let needed = descriptors_needed(10_000, 0);
        assert_eq!(needed, 10_064);
        let warning = open_file_shortfall(&limit, needed, 10_000).expect("a warning");
        for part in [
            "(1024)",
            "--max-sessions 10000",
            "(10064:",
            "about 960",
            "ulimit -n 10064",
            "LimitNOFILE=10064",
        ] {
            assert!(warning.contains(part), "{part:?} missing: {warning}");
        }
        let enough = OpenFileLimit {
            soft: 20_000,
            ..limit
        };
        assert_eq!(open_file_shortfall(&enough, needed, 10_000), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn raising_reaches_the_hard_limit_and_is_idempotent() {
        let first = raise_open_file_limit().unwrap();
        assert!(first.soft >= first.old_soft);
        let again = raise_open_file_limit().unwrap();
        assert_eq!(again.old_soft, first.soft);
        assert_eq!(again.soft, first.soft);
    }
}
