//! # game-server
//!
//! The showcase of `server-core`: the GameRoom of the course's final chapter, where players
//! enter, see each other, move and chat, speaking the protocol of the course's Unity client
//! (`PDL.xml`, compiled to Rust by `packet-gen` at build time; see [`packets`]).
//!
//! * every connection is a [`Player`] with a process-unique id (1, 2, 3, ...);
//! * the [`Lobby`] seats it in a [`GameRoom`] (one room, or
//!   rooms of `room_capacity` players);
//! * the room and the lobby are [`server_core::JobQueue`]s: their state is changed only by
//!   their jobs, one at a time, so there is no lock around game state;
//! * broadcasts are encoded once and shared by every recipient; with a tick they are
//!   gathered and flushed as one send per member per tick.
//!
//! The network, threads and buffers are server-core's; this crate holds only the handlers
//! and the rooms.
//!
//! # Examples
//! Run a server on a free port, as the tests do:
//! ```no_run
//! let server = game_server::start(game_server::ServerConfig {
//!     addr: "127.0.0.1:0".parse()?,
//!     ..Default::default()
//! })?;
//! println!("listening on {}", server.local_addr());
//! server.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod config;
mod listen_addr;
pub mod lobby;
pub mod ops;
pub mod packets;
pub mod player;
pub mod room;

use lobby::Lobby;
use log::info;
use player::Player;
use server_core::{JobQueue, Listener, Service, ServiceStats};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

pub use config::{ConfigError, ServerConfig, DEFAULT_TICK_MS};
pub use listen_addr::{ListenAddr, ParseListenAddrError};
pub use lobby::RoomId;
pub use player::{PlayerError, PlayerId};
pub use room::{GameRoom, MAX_PLAYERS_PER_LIST};

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum Error {
    /// server-core could not start its I/O threads.
    #[error(transparent)]
    Build(#[from] server_core::BuildError),
    /// The address could not be listened on.
    #[error(transparent)]
    Listen(#[from] server_core::ListenError),
    /// A setting is out of bounds or an address does not resolve.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Counters of a running server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GameStats {
    /// server-core's counters: sessions, packets and bytes in and out.
    pub service: ServiceStats,
    /// Rooms open now.
    pub rooms: usize,
    /// Players in a room now (connected players that have not left).
    pub players: usize,
}

/// A running game server; dropping it shuts it down.
pub struct GameServer {
    service: Service,
    listener: Listener,
    lobby: JobQueue<Lobby>,
    rooms: Arc<AtomicUsize>,
    players: Arc<AtomicUsize>,
    threads: usize,
    stopped: AtomicBool,
}

/// Starts a game server: server-core's I/O threads, the lobby with its first room, and a
/// listener on `config.addr` (port 0 picks a free port; see [`GameServer::local_addr`]).
///
/// # Errors
/// [`Error::Config`] if a setting is out of bounds ([`ServerConfig::validate`]) or
/// `config.addr` does not resolve, [`Error::Build`] if the I/O threads cannot start,
/// [`Error::Listen`] if the address cannot be bound.
pub fn start(config: ServerConfig) -> Result<GameServer, Error> {
    config.validate()?;
    let addr = config::resolve("--addr", &config.addr)?;
    let mut builder = Service::builder()
        .max_sessions(config.max_sessions)
        .max_send_queue(config.max_send_queue)
        .max_packet_size(usize::from(config.max_packet_size))
        .idle_timeout((config.idle_timeout > 0).then(|| Duration::from_secs(config.idle_timeout)));
    if let Some(threads) = config.threads {
        builder = builder.threads(threads as usize);
    }
    let service = builder.build()?;
    let handle = service.handle();

    let rooms = Arc::new(AtomicUsize::new(0));
    let players = Arc::new(AtomicUsize::new(0));
    let tick = (config.tick_ms > 0).then(|| Duration::from_millis(config.tick_ms));
    let lobby = JobQueue::new(
        &handle,
        Lobby::new(
            handle.clone(),
            config.room_capacity,
            tick,
            Arc::clone(&rooms),
            Arc::clone(&players),
        ),
    );
    let me = lobby.clone();
    lobby.push(move |l| l.open_first_room(&me));

    let next_id = Arc::new(AtomicI32::new(1));
    let factory_lobby = lobby.clone();
    let listener = service.listen(addr, move || {
        Player::new(factory_lobby.clone(), Arc::clone(&next_id))
    })?;
    info!(
        "game-server listening on {} with {} I/O threads (room capacity {}, tick {})",
        listener.local_addr(),
        handle.threads(),
        match config.room_capacity {
            0 => "unlimited".to_owned(),
            n => n.to_string(),
        },
        match tick {
            None => "off".to_owned(),
            Some(t) => format!("{} ms", t.as_millis()),
        },
    );
    Ok(GameServer {
        threads: handle.threads(),
        service,
        listener,
        lobby,
        rooms,
        players,
        stopped: AtomicBool::new(false),
    })
}

impl GameServer {
    /// The address the server listens on (with the real port when started on port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Number of I/O threads.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Counters: server-core's, plus rooms and players.
    #[must_use]
    pub fn stats(&self) -> GameStats {
        GameStats {
            service: self.service.stats(),
            rooms: self.rooms.load(Ordering::Relaxed),
            players: self.players.load(Ordering::Relaxed),
        }
    }

    /// Connections refused so far because `max_sessions` were open.
    #[must_use]
    pub fn refused_sessions(&self) -> u64 {
        self.listener.refused_sessions()
    }

    /// Stops accepting, lets every session flush what is queued (up to 2 s), closes them all
    /// and joins the I/O threads, then frees the rooms. Idempotent.
    pub fn shutdown(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        self.service.shutdown();
        self.lobby.push(Lobby::close);
    }
}

impl Drop for GameServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for GameServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GameServer")
            .field("local_addr", &self.local_addr())
            .field("stats", &self.stats())
            .finish()
    }
}
