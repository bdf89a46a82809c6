//! The numbers of a running server, read in one place: [`GameServer::stats`], the stats
//! line of the binary and `/metrics` all take them from [`StatsSource::snapshot`], so they
//! cannot disagree.
//!
//! [`GameServer::stats`]: crate::GameServer::stats

use server_core::{Listener, ServiceHandle, ServiceStats};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counters of a running server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GameStats {
    /// server-core's counters: sessions, packets and bytes in and out.
    pub service: ServiceStats,
    /// Connections refused so far because `max_sessions` were open.
    pub sessions_refused: u64,
    /// Rooms open now.
    pub rooms: usize,
    /// Players in a room now (connected players that have not left).
    pub players: usize,
}

/// Handles to every counter of a server, cheap to clone into the metrics endpoint.
#[derive(Clone)]
pub(crate) struct StatsSource {
    pub(crate) service: ServiceHandle,
    /// The game listener: its refusals.
    pub(crate) listener: Listener,
    /// Open rooms, kept by the lobby.
    pub(crate) rooms: Arc<AtomicUsize>,
    /// Players in rooms, kept by the rooms.
    pub(crate) players: Arc<AtomicUsize>,
}

impl StatsSource {
    /// Every counter, now.
    pub(crate) fn snapshot(&self) -> GameStats {
        GameStats {
            service: self.service.stats(),
            sessions_refused: self.listener.refused_sessions(),
            rooms: self.rooms.load(Ordering::Relaxed),
            players: self.players.load(Ordering::Relaxed),
        }
    }
}
