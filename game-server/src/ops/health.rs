//! What `/healthz` and `/readyz` answer, decided from plain numbers so each rule is
//! unit-tested without a server.

use std::time::Duration;

/// How long an I/O thread may work without waiting for events before `/healthz` reports
/// it stuck.
///
/// A healthy loop goes back to `epoll_wait` within milliseconds: server-core hands a long
/// JobQueue run to a task list after 2 ms, and even an iteration that accepts a burst of
/// thousands of players takes milliseconds. A loop busy for 10 s has frozen every player
/// on it for 10 s, so some hook, job or task is blocking the thread (a lock, a blocking
/// call, an endless loop). The limit is far above any one-off stall (a debug build, a
/// host pausing the process for a moment), because failing liveness restarts the process
/// and so cuts every player on it: with a probe every 10 s and three failures before a
/// restart, a thread stuck for good is replaced within about 40 s.
pub const LOOP_BUSY_LIMIT: Duration = Duration::from_secs(10);

/// One I/O thread as health sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LoopHealth {
    pub(crate) index: usize,
    pub(crate) alive: bool,
    pub(crate) busy_for: Duration,
}

impl From<&server_core::LoopStatus> for LoopHealth {
    fn from(status: &server_core::LoopStatus) -> Self {
        Self {
            index: status.index,
            alive: status.alive,
            busy_for: status.busy_for,
        }
    }
}

/// Why the service is unhealthy (every dead or stuck loop, in a short line), or `None`.
pub(crate) fn unhealthy(loops: &[LoopHealth], busy_limit: Duration) -> Option<String> {
    let problems: Vec<String> = loops
        .iter()
        .filter_map(|l| {
            if !l.alive {
                Some(format!("I/O thread {} is dead", l.index))
            } else if l.busy_for > busy_limit {
                Some(format!(
                    "I/O thread {} busy for {:.1} s",
                    l.index,
                    l.busy_for.as_secs_f64()
                ))
            } else {
                None
            }
        })
        .collect();
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// The state readiness is decided from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Readiness {
    /// The service is shutting down.
    pub(crate) stopping: bool,
    /// The game listener no longer accepts (a drain).
    pub(crate) draining: bool,
    /// [`unhealthy`]'s answer.
    pub(crate) unhealthy: Option<String>,
    /// Players connected now, and the most the listener takes.
    pub(crate) players: usize,
    pub(crate) max_players: usize,
}

/// `Ok(())` when a new player would be accepted and served, else why not.
pub(crate) fn ready(state: &Readiness) -> Result<(), String> {
    if state.stopping {
        Err("stopping".to_owned())
    } else if state.draining {
        Err("draining".to_owned())
    } else if let Some(reason) = &state.unhealthy {
        Err(format!("unhealthy: {reason}"))
    } else if state.players >= state.max_players {
        Err("full".to_owned())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(index: usize, busy_ms: u64) -> LoopHealth {
        LoopHealth {
            index,
            alive: true,
            busy_for: Duration::from_millis(busy_ms),
        }
    }

    #[test]
    fn a_dead_or_stuck_loop_is_unhealthy() {
        let limit = LOOP_BUSY_LIMIT;
        assert_eq!(unhealthy(&[running(0, 0), running(1, 3)], limit), None);
        assert_eq!(
            unhealthy(&[running(0, 10_000)], limit),
            None,
            "at the limit"
        );
        assert_eq!(
            unhealthy(&[running(0, 12_345), running(1, 0)], limit).as_deref(),
            Some("I/O thread 0 busy for 12.3 s")
        );
        let dead = LoopHealth {
            alive: false,
            ..running(1, 0)
        };
        assert_eq!(
            unhealthy(&[running(0, 60_000), dead], limit).as_deref(),
            Some("I/O thread 0 busy for 60.0 s; I/O thread 1 is dead")
        );
    }

    #[test]
    fn readiness_says_why_not() {
        let open = Readiness {
            players: 1,
            max_players: 2,
            ..Readiness::default()
        };
        assert_eq!(ready(&open), Ok(()));
        let full = Readiness {
            players: 2,
            ..open.clone()
        };
        assert_eq!(ready(&full).unwrap_err(), "full");
        let sick = Readiness {
            unhealthy: Some("I/O thread 1 is dead".into()),
            ..full.clone()
        };
        assert_eq!(ready(&sick).unwrap_err(), "unhealthy: I/O thread 1 is dead");
        let draining = Readiness {
            draining: true,
            ..sick.clone()
        };
        assert_eq!(ready(&draining).unwrap_err(), "draining");
        let stopping = Readiness {
            stopping: true,
            ..draining
        };
        assert_eq!(ready(&stopping).unwrap_err(), "stopping");
    }
}
