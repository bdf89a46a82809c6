//! When the loop wakes up for its next timer.
//!
//! epoll's timeout counts whole milliseconds, so a timer due in 1.2 ms either fires up to a
//! millisecond late (timeout rounded up) or wakes the loop early and then late (rounded
//! down, then a second sleep of at least 1 ms). On Linux the loop therefore sleeps on a
//! `timerfd` registered with its poll, armed for the exact deadline (the kernel's
//! high-resolution timers, microsecond precision); it is re-armed only when the earliest
//! deadline changes, and disarmed when there is none, so an idle loop sleeps without
//! wake-ups. Elsewhere, or if the timerfd cannot be created, the timeout is rounded up to
//! whole milliseconds.

use mio::{Registry, Token};
use std::time::{Duration, Instant};

/// The timerfd's token, just below the waker's.
pub(super) const WAKE_TIMER: Token = Token(usize::MAX - 1);

/// The loop's wake-up timer; `timeout` says how long `poll` may sleep.
pub(super) struct WakeTimer {
    #[cfg(target_os = "linux")]
    fd: Option<linux::TimerFd>,
    /// The deadline the timerfd is armed for.
    #[cfg(target_os = "linux")]
    armed: Option<Instant>,
}

impl WakeTimer {
    /// A wake-up timer registered with `registry` (or, where that fails, none: timeouts are
    /// then rounded up to whole milliseconds).
    pub(super) fn new(registry: &Registry) -> Self {
        #[cfg(target_os = "linux")]
        {
            let fd = match linux::TimerFd::new(registry) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    log::warn!("no timerfd ({e}): timers fire to the millisecond");
                    None
                }
            };
            Self { fd, armed: None }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = registry;
            Self {}
        }
    }

    /// The `poll` timeout that wakes the loop at `deadline` (`None`: sleep until an
    /// event), arming the timerfd if there is one.
    pub(super) fn timeout(&mut self, deadline: Option<Instant>, now: Instant) -> Option<Duration> {
        let left = deadline.map(|d| d.saturating_duration_since(now));
        if left == Some(Duration::ZERO) {
            return left;
        }
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            if self.armed != deadline {
                // Disarmed (zero) when there is no deadline: a stale expiry would only be a
                // spurious wake-up, but an idle loop should not have even that.
                match fd.set(left.unwrap_or(Duration::ZERO)) {
                    Ok(()) => self.armed = deadline,
                    Err(e) => {
                        log::warn!("timerfd_settime failed ({e}): timers fire to the millisecond");
                        self.fd = None;
                        return left.map(round_up_to_millis);
                    }
                }
            }
            return None;
        }
        left.map(round_up_to_millis)
    }
}

/// Whole milliseconds, rounded up, so a sub-millisecond wait does not become a zero
/// timeout and a busy loop until the deadline. (mio rounds up as well; rounding here keeps
/// that explicit.)
fn round_up_to_millis(left: Duration) -> Duration {
    let millis = left.as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
}

#[cfg(target_os = "linux")]
mod linux {
    use super::WAKE_TIMER;
    use mio::unix::SourceFd;
    use mio::{Interest, Registry};
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::Duration;

    pub(super) struct TimerFd(OwnedFd);

    impl TimerFd {
        pub(super) fn new(registry: &Registry) -> io::Result<Self> {
            // SAFETY: timerfd_create takes no pointers; a non-negative result is a new file
            // descriptor that nothing else owns, so OwnedFd may take it.
            let fd = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: see above; `fd` is valid and ours alone.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            registry.register(
                &mut SourceFd(&fd.as_raw_fd()),
                WAKE_TIMER,
                Interest::READABLE,
            )?;
            Ok(Self(fd))
        }

        /// Arms the timer to expire once, `after` from now; zero disarms it. Arming also
        /// clears an earlier expiry that was never read, so the fd is never read at all.
        pub(super) fn set(&self, after: Duration) -> io::Result<()> {
            let value = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: libc::time_t::try_from(after.as_secs()).unwrap_or(libc::time_t::MAX),
                    tv_nsec: libc::c_long::from(
                        i32::try_from(after.subsec_nanos()).unwrap_or(999_999_999),
                    ),
                },
            };
            // SAFETY: `value` is a valid itimerspec that outlives the call; the old value is
            // not asked for (null is allowed).
            let rc = unsafe {
                libc::timerfd_settime(self.0.as_raw_fd(), 0, &value, std::ptr::null_mut())
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_up_to_the_next_millisecond() {
        assert_eq!(
            round_up_to_millis(Duration::from_micros(1)),
            Duration::from_millis(1)
        );
        assert_eq!(
            round_up_to_millis(Duration::from_millis(2)),
            Duration::from_millis(2)
        );
        assert_eq!(
            round_up_to_millis(Duration::from_micros(2001)),
            Duration::from_millis(3)
        );
    }

    #[test]
    fn a_due_deadline_means_do_not_sleep_and_none_means_sleep() {
        let poll = mio::Poll::new().unwrap();
        let mut timer = WakeTimer::new(poll.registry());
        let now = Instant::now();
        assert_eq!(timer.timeout(Some(now), now), Some(Duration::ZERO));
        assert_eq!(timer.timeout(None, now), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_timerfd_wakes_the_poll_at_the_deadline() {
        let mut poll = mio::Poll::new().unwrap();
        let mut timer = WakeTimer::new(poll.registry());
        let mut events = mio::Events::with_capacity(4);
        let start = Instant::now();
        let deadline = start + Duration::from_micros(1500);
        let timeout = timer.timeout(Some(deadline), start);
        assert_eq!(timeout, None, "the timerfd does the waking");
        // Bounded: a missed wake-up fails the test instead of hanging it.
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert!(events.iter().any(|e| e.token() == WAKE_TIMER));
        assert!(Instant::now() >= deadline);
        // Disarmed: nothing more arrives.
        assert_eq!(timer.timeout(None, Instant::now()), None);
        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .unwrap();
        assert!(events.is_empty());
    }
}
