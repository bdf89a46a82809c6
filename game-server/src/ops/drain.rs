//! A graceful drain: stop taking players, let those connected play on until they leave or
//! a deadline passes, then shut down. [`GameServer::drain`](crate::GameServer::drain)
//! and the binary's SIGTERM handling both go through here.

use log::info;
use server_core::Listener;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often a wait for the last players checks whether they are gone.
const POLL: Duration = Duration::from_millis(20);

/// What a drain did, from [`GameServer::drain`](crate::GameServer::drain) (and logged
/// when the server shuts down after a drain).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Players connected when the drain began.
    pub players_at_start: usize,
    /// Of those, players that left on their own before the shutdown.
    pub left: usize,
    /// Players still connected at the shutdown, closed with reason `Shutdown`.
    pub cut: usize,
    /// Time from the start of the drain to the shutdown.
    pub waited: Duration,
}

/// The drain state of a server.
#[derive(Debug, Default)]
pub(crate) struct Drain {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    NotBegun,
    /// Since when, and how many players were connected then.
    Draining { since: Instant, players: usize },
    /// Reported; the server shuts down.
    Over,
}

impl Drain {
    /// Closes `listeners` (no new session from this moment on) and notes the players
    /// connected. Idempotent: later calls change nothing.
    pub(crate) fn begin(&self, listeners: &[&Listener]) {
        let mut state = self.lock();
        if !matches!(*state, State::NotBegun) {
            return;
        }
        for listener in listeners {
            listener.close();
        }
        let players = connected(listeners);
        *state = State::Draining {
            since: Instant::now(),
            players,
        };
        info!("draining: accepting no new players; {players} connected play on until they leave");
    }

    /// Whether [`begin`](Self::begin) was called.
    pub(crate) fn has_begun(&self) -> bool {
        !matches!(*self.lock(), State::NotBegun)
    }

    /// Waits up to `timeout` for every session of `listeners` to end; true if none is
    /// left.
    pub(crate) fn wait(listeners: &[&Listener], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if connected(listeners) == 0 {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(left.min(POLL));
        }
    }

    /// Ends the drain before the shutdown closes what is left: counts who left and who is
    /// about to be cut, and logs it. `None` if no drain had begun (or it already ended).
    pub(crate) fn end(&self, listeners: &[&Listener]) -> Option<DrainReport> {
        let mut state = self.lock();
        let State::Draining {
            since,
            players: players_at_start,
        } = *state
        else {
            return None;
        };
        *state = State::Over;
        drop(state);
        let cut = connected(listeners);
        let report = DrainReport {
            players_at_start,
            left: players_at_start.saturating_sub(cut),
            cut,
            waited: since.elapsed(),
        };
        info!(
            "drain over after {:.1} s: {} of {} players left on their own, {} cut",
            report.waited.as_secs_f64(),
            report.left,
            report.players_at_start,
            report.cut
        );
        Some(report)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sessions open now on `listeners`.
fn connected(listeners: &[&Listener]) -> usize {
    listeners.iter().map(|l| l.active_sessions()).sum()
}
