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
//!   gathered and flushed as one send per member per tick;
//! * a second port (`ws_addr`, default 127.0.0.1:7780) serves browsers: a small web page
//!   that plays the demo, and the same game over WebSocket; browser and TCP players share
//!   the rooms.
//!
//! The network, threads and buffers are server-core's; this crate holds only the handlers,
//! the rooms and the page.
//!
//! # Examples
//! Run a server on free ports, as the tests do:
//! ```no_run
//! let server = game_server::start(game_server::ServerConfig {
//!     addr: "127.0.0.1:0".parse()?,
//!     ws_addr: Some("127.0.0.1:0".parse()?),
//!     ..Default::default()
//! })?;
//! println!("listening on {}", server.local_addr());
//! println!("play in a browser: http://{}/", server.ws_addr().unwrap());
//! server.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cluster;
mod config;
pub mod flush_policy;
mod listen_addr;
pub mod lobby;
pub mod ops;
pub mod packets;
pub mod player;
pub mod room;
mod stats;
mod web;

use lobby::Lobby;
use log::info;
use player::Player;
use server_core::{JobQueue, Listener, Service};
use stats::{RoomSizes, StatsSource};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use thiserror::Error;

pub use cluster::{ClusterError, ClusterStats};
pub use config::RatePolicy;
pub use config::{ConfigError, ServerConfig, DEFAULT_TICK_MS};
pub use listen_addr::{ListenAddr, ParseListenAddrError};
pub use lobby::RoomId;
pub use ops::DrainReport;
pub use player::{PlayerError, PlayerId};
pub use room::{GameRoom, MAX_PLAYERS_PER_LIST};
pub use stats::{GameStats, RoomSizeCounts, ROOM_SIZE_BOUNDS};

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
    /// Redis could not be joined (`--cluster`).
    #[error("--cluster: {0}")]
    Cluster(#[from] ClusterError),
    /// The metrics endpoint could not start (`--metrics-addr`).
    #[error("--metrics-addr: cannot serve on {addr}: {source}")]
    Metrics {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A running game server; dropping it shuts it down.
pub struct GameServer {
    service: Service,
    listener: Listener,
    /// The browser port (page and WebSocket), unless `--ws-addr off`.
    ws_listener: Option<Listener>,
    lobby: JobQueue<Lobby>,
    stats: StatsSource,
    /// The metrics, health and readiness endpoint, when `--metrics-addr` is set.
    ops: Mutex<Option<ops::Endpoint>>,
    /// Whether a graceful drain has begun, and with how many players.
    drain: ops::Drain,
    /// The cluster membership, when `--cluster` is set.
    cluster: Option<cluster::Cluster>,
    threads: usize,
    stopped: AtomicBool,
}

/// Starts a game server: server-core's I/O threads, the lobby with its first room, and a
/// listener on `config.addr`, and the browser port on `config.ws_addr` unless it is `None`
/// (port 0 picks a free port; see [`GameServer::local_addr`], [`GameServer::ws_addr`]).
///
/// # Errors
/// [`Error::Config`] if a setting is out of bounds ([`ServerConfig::validate`]) or
/// `config.addr` does not resolve, [`Error::Build`] if the I/O threads cannot start,
/// [`Error::Listen`] if an address cannot be bound, [`Error::Cluster`] if `--cluster` is
/// set and Redis does not answer.
pub fn start(config: ServerConfig) -> Result<GameServer, Error> {
    config.validate()?;
    let cluster = match &config.cluster {
        Some(url) => Some(cluster::Cluster::connect(cluster::ClusterConfig {
            url: url.clone(),
            ttl: Duration::from_secs(config.cluster_ttl),
            room_capacity: config.room_capacity,
        })?),
        None => None,
    };
    let addr = config::resolve("--addr", &config.addr)?;
    let ws_addr = match &config.ws_addr {
        Some(addr) => Some(config::resolve("--ws-addr", addr)?),
        None => None,
    };
    let metrics_addr = match &config.metrics_addr {
        Some(addr) => Some(config::resolve("--metrics-addr", addr)?),
        None => None,
    };
    let mut builder = Service::builder()
        .max_sessions(config.max_sessions)
        .max_send_queue(config.max_send_queue)
        .max_packet_size(usize::from(config.max_packet_size))
        .rate_limit(config.rate_limit())
        .max_in_flight(config.max_in_flight)
        .idle_timeout((config.idle_timeout > 0).then(|| Duration::from_secs(config.idle_timeout)));
    if let Some(threads) = config.threads {
        builder = builder.threads(threads as usize);
    }
    let service = builder.build()?;
    let handle = service.handle();

    let room_sizes = Arc::new(RoomSizes::default());
    let players = Arc::new(AtomicUsize::new(0));
    let tick = (config.tick_ms > 0).then(|| Duration::from_millis(config.tick_ms));
    let lobby = Lobby::start(
        &handle,
        config.room_capacity,
        tick,
        Arc::clone(&room_sizes),
        Arc::clone(&players),
        cluster.as_ref().map(cluster::Cluster::lobby_link),
    );
    let ids = match &cluster {
        Some(cluster) => {
            cluster.run(lobby.downgrade())?;
            cluster.player_ids()
        }
        None => Arc::new(cluster::PlayerIds::local()),
    };

    let factory_lobby = lobby.clone();
    // One factory for both ports: TCP and browser players share the lobby and its rooms.
    let new_player = move || Player::new(factory_lobby.clone(), Arc::clone(&ids));
    let listener = service.listen(addr, new_player.clone())?;
    let ws_listener = match ws_addr {
        Some(addr) => Some(service.listen_ws(addr, web::options(), new_player)?),
        None => None,
    };
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
    if let Some(ws) = &ws_listener {
        info!("{}", web::open_line(ws.local_addr()));
    }
    let stats = StatsSource {
        service: handle.clone(),
        listener: listener.clone(),
        room_sizes,
        players,
        cluster: cluster.as_ref().map(cluster::Cluster::counters),
    };
    let ops = match metrics_addr {
        Some(addr) => Some(
            ops::Endpoint::start(addr, stats.clone())
                .map_err(|source| Error::Metrics { addr, source })?,
        ),
        None => None,
    };
    Ok(GameServer {
        threads: handle.threads(),
        service,
        listener,
        ws_listener,
        lobby,
        stats,
        ops: Mutex::new(ops),
        drain: ops::Drain::default(),
        cluster,
        stopped: AtomicBool::new(false),
    })
}

impl GameServer {
    /// The address the server listens on (with the real port when started on port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// The address of the browser port (the web page on `/`, the game's WebSocket on `/ws`),
    /// unless `ws_addr` was off (with the real port when started on port 0).
    #[must_use]
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_listener.as_ref().map(Listener::local_addr)
    }

    /// The address of the metrics endpoint, when `metrics_addr` was set (with the real port
    /// when started on port 0).
    #[must_use]
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.lock_ops().as_ref().map(ops::Endpoint::local_addr)
    }

    /// Number of I/O threads.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Counters: server-core's, plus rooms and players.
    #[must_use]
    pub fn stats(&self) -> GameStats {
        self.stats.snapshot()
    }

    /// The cluster's counters, when started with `cluster` (see docs/scaling.md).
    #[must_use]
    pub fn cluster_stats(&self) -> Option<ClusterStats> {
        self.cluster.as_ref().map(cluster::Cluster::stats)
    }

    /// Connections refused so far because `max_sessions` were open.
    #[must_use]
    pub fn refused_sessions(&self) -> u64 {
        self.listener.refused_sessions()
    }

    /// Starts a graceful drain: from the moment this returns no new player is accepted
    /// (the game listener is closed, so connects are refused) and `/readyz` answers
    /// `503 draining`, while the players already connected play on. Follow it with
    /// [`wait_drained`](Self::wait_drained) and [`shutdown`](Self::shutdown), or use
    /// [`drain`](Self::drain) for all three. Idempotent; does nothing after a shutdown.
    pub fn begin_drain(&self) {
        if !self.stopped.load(Ordering::Acquire) {
            self.drain.begin(&self.game_listeners());
        }
    }

    /// Whether [`begin_drain`](Self::begin_drain) was called.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.drain.has_begun()
    }

    /// Waits up to `timeout` for every player to leave; returns true once none is
    /// connected (at once if none is), false if some still are at the timeout.
    pub fn wait_drained(&self, timeout: Duration) -> bool {
        ops::Drain::wait(&self.game_listeners(), timeout)
    }

    /// A whole graceful drain: [`begin_drain`](Self::begin_drain), then up to `timeout` for
    /// the players to leave on their own, then [`shutdown`](Self::shutdown), which closes
    /// those still connected with reason `Shutdown`. Returns (and logs) who left and who
    /// was cut; an empty report if the server had already shut down.
    ///
    /// # Examples
    /// ```no_run
    /// # let server = game_server::start(game_server::ServerConfig::default())?;
    /// let report = server.drain(std::time::Duration::from_secs(30));
    /// println!("{} players left, {} were cut", report.left, report.cut);
    /// # Ok::<(), game_server::Error>(())
    /// ```
    pub fn drain(&self, timeout: Duration) -> DrainReport {
        self.begin_drain();
        self.wait_drained(timeout);
        self.stop().unwrap_or_default()
    }

    /// Stops I/O thread `index` as a fault inside server-core would, so a test can watch
    /// `/healthz` and the metrics react. Returns false if that thread is not running. Only
    /// with the `fault-injection` feature, meant for tests.
    #[cfg(feature = "fault-injection")]
    pub fn inject_loop_fault(&self, index: usize) -> bool {
        self.service.handle().inject_loop_fault(index)
    }

    /// Stops accepting, lets every session flush what is queued (up to 2 s), closes them all
    /// and joins the I/O threads, then frees the rooms and stops the metrics endpoint.
    /// After [`begin_drain`](Self::begin_drain) it first logs who left during the drain and
    /// who is cut now. Idempotent.
    pub fn shutdown(&self) {
        self.stop();
    }

    /// The shutdown, with the drain's report if one was running.
    fn stop(&self) -> Option<DrainReport> {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return None;
        }
        let report = self.drain.end(&self.game_listeners());
        self.service.shutdown();
        self.lobby.push(Lobby::close);
        if let Some(cluster) = &self.cluster {
            cluster.stop();
        }
        if let Some(mut endpoint) = self.lock_ops().take() {
            endpoint.stop();
        }
        report
    }

    /// The listeners players come through: closed by a drain, counted to see it end.
    fn game_listeners(&self) -> Vec<&Listener> {
        std::iter::once(&self.listener)
            .chain(self.ws_listener.as_ref())
            .collect()
    }

    fn lock_ops(&self) -> std::sync::MutexGuard<'_, Option<ops::Endpoint>> {
        self.ops.lock().unwrap_or_else(PoisonError::into_inner)
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
