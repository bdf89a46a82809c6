//! Rooms that span several processes over Redis (`--cluster redis://HOST:PORT`).
//!
//! Every process that points at the same Redis shares its rooms: a room id names the same
//! room everywhere, player ids come from one Redis counter, and what a player does reaches
//! the room's members on every process. docs/scaling.md draws the whole design; in short:
//!
//! ```text
//!  room (JobQueue) --flush: own frames--> bounded queue --> publisher thread --PUBLISH--> Redis
//!  room (JobQueue) <--job: decoded batch-- subscriber thread <--message on gs:room:<id>-- Redis
//!  lobby (JobQueue) <--seat answers, live peers-- control thread --scripts, heartbeat--> Redis
//! ```
//!
//! * Rooms never wait for Redis: a flush hands its frames to [`RoomBus::publish`], which
//!   queues them without blocking (a full queue or a lost Redis drops them, counted). One
//!   message per room per flush, whatever the number of packets in it.
//! * The receiving side learns who is in the room, and where, from the frames themselves
//!   (`S_BroadcastEnterGame`, `S_BroadcastMove`, `S_BroadcastLeaveGame`); a room that opens,
//!   or comes back after Redis was lost, asks for snapshots of the others' players
//!   ([`wire`]).
//! * Presence is a sorted set of processes scored with a deadline, refreshed by a heartbeat
//!   every third of `--cluster-ttl`; a process whose deadline passes is gone, and every
//!   other process announces its players' leave to its own members.
//! * The single-process server has none of this: no threads, no queue, and rooms without a
//!   bus skip it with one branch per flush.

mod control;
mod ids;
mod link;
mod log_limit;
mod publisher;
pub(crate) mod remote;
mod seats;
mod subscriber;
pub(crate) mod wire;

pub(crate) use control::{SeatAnswer, SYNC_TIMEOUT};
pub(crate) use ids::PlayerIds;
pub(crate) use seats::ClusterSeats;
pub(crate) use subscriber::RouteBook;

use crate::lobby::{Lobby, RoomId};
use crate::player::PlayerId;
use bytes::Bytes;
use control::{Command, Control};
use ids::IdBlocks;
use link::{Health, Link};
use log::info;
use publisher::Publisher;
use server_core::WeakJobQueue;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use thiserror::Error;
use wire::Position;

/// Longest wait for Redis at start, per connection; an unreachable Redis fails the start
/// well within 5 s.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);

/// A process in the cluster: random, so a restarted Redis cannot hand the same id twice.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ProcessId(pub(crate) u64);

impl ProcessId {
    /// A fresh random id (never 0).
    fn random() -> Self {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        Self(hasher.finish().max(1))
    }

    /// The id as Redis keeps it (16 hex digits).
    pub(crate) fn key(self) -> String {
        format!("{:016x}", self.0)
    }

    /// Reads [`key`](Self::key) back.
    pub(crate) fn from_key(key: &str) -> Option<Self> {
        u64::from_str_radix(key, 16).ok().map(Self)
    }
}

impl fmt::Debug for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Redis key names; docs/scaling.md lists them with what they hold.
pub(crate) mod keys {
    /// Sorted set: process id -> deadline (ms, Redis clock) of its presence.
    pub(crate) const PROCESSES: &str = "gs:processes";
    /// Counter: the last player id handed out (in blocks).
    pub(crate) const PLAYER_IDS: &str = "gs:player_ids";
    /// Counter: the last room id opened.
    pub(crate) const ROOM_IDS: &str = "gs:room_ids";
    /// Sorted set: the rooms, scored by id.
    pub(crate) const ROOMS: &str = "gs:rooms";
    /// Prefix of a room's hash: process id -> players of that process in the room.
    pub(crate) const SEATS_PREFIX: &str = "gs:seats:";
    /// Prefix of a room's pub/sub channel.
    pub(crate) const CHANNEL_PREFIX: &str = "gs:room:";

    pub(crate) fn channel(room: crate::lobby::RoomId) -> String {
        format!("{CHANNEL_PREFIX}{}", room.0)
    }

    pub(crate) fn seats(room: crate::lobby::RoomId) -> String {
        format!("{SEATS_PREFIX}{}", room.0)
    }
}

/// What a room hands to the cluster, and how it learns about the rest of it. The rooms of
/// a single process have none; unit tests use a fake that records what was published.
pub(crate) trait RoomBus: Send + Sync {
    /// This process.
    fn process(&self) -> ProcessId;
    /// Queues a message for the room's channel. Never blocks: when the queue is full or
    /// Redis is away the message is dropped and counted.
    fn publish(&self, message: Outgoing);
    /// Counters the rooms keep up to date.
    fn counters(&self) -> &ClusterCounters;
    /// How long a process that is no longer registered may stay silent in a room before
    /// its players are announced as gone (the presence TTL).
    fn peer_timeout(&self) -> Duration;
}

/// A message from a room, before the publisher gives it a header.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outgoing {
    pub(crate) room: RoomId,
    /// The room's sequence number for this message (1, 2, ... per room and process).
    pub(crate) seq: u64,
    pub(crate) body: OutBody,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OutBody {
    /// The frames the room's own players caused in one flush.
    Frames(Vec<Bytes>),
    /// The room's own players and their positions.
    Snapshot {
        players: Vec<(PlayerId, Position)>,
        reply_wanted: bool,
    },
}

/// The cluster's counters, shared by its threads and the rooms.
#[derive(Debug, Default)]
pub(crate) struct ClusterCounters {
    published: AtomicU64,
    published_bytes: AtomicU64,
    received: AtomicU64,
    received_bytes: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_redis_down: AtomicU64,
    dropped_room_busy: AtomicU64,
    rejected: AtomicU64,
    gaps: AtomicU64,
    redis_outages: AtomicU64,
    redis_up: AtomicU64,
    peers: AtomicU64,
    seat_fallbacks: AtomicU64,
    pub(crate) remote_players: AtomicUsize,
}

/// Adds `n` to a counter.
fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl ClusterCounters {
    pub(crate) fn gap(&self) {
        add(&self.gaps, 1);
    }

    /// A room's remote players went from `before` to `after`.
    pub(crate) fn remote_players_changed(&self, before: usize, after: usize) {
        if after > before {
            self.remote_players
                .fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.remote_players
                .fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> ClusterStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClusterStats {
            published: get(&self.published),
            published_bytes: get(&self.published_bytes),
            received: get(&self.received),
            received_bytes: get(&self.received_bytes),
            dropped_queue_full: get(&self.dropped_queue_full),
            dropped_redis_down: get(&self.dropped_redis_down),
            dropped_room_busy: get(&self.dropped_room_busy),
            rejected: get(&self.rejected),
            gaps: get(&self.gaps),
            redis_outages: get(&self.redis_outages),
            redis_up: get(&self.redis_up) == 1,
            peers: get(&self.peers),
            seat_fallbacks: get(&self.seat_fallbacks),
            remote_players: self.remote_players.load(Ordering::Relaxed) as u64,
        }
    }
}

/// The cluster's numbers, read at once (see [`GameServer::cluster_stats`]).
///
/// [`GameServer::cluster_stats`]: crate::GameServer::cluster_stats
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStats {
    /// Messages published (a room's flush, several merged when they queued up, or a
    /// snapshot).
    pub published: u64,
    /// Bytes of those messages, headers included.
    pub published_bytes: u64,
    /// Messages from other processes handed to a room.
    pub received: u64,
    /// Bytes of the messages read from Redis, this process's own echoes included.
    pub received_bytes: u64,
    /// Messages dropped because the publish queue was full.
    pub dropped_queue_full: u64,
    /// Messages dropped because Redis was unreachable.
    pub dropped_redis_down: u64,
    /// Messages from other processes dropped because their room had too many jobs waiting.
    pub dropped_room_busy: u64,
    /// Messages refused as malformed or of another format version.
    pub rejected: u64,
    /// Times a room saw another process's sequence numbers skip (and asked for snapshots).
    pub gaps: u64,
    /// Times Redis was lost (all connections back counts as the end of one).
    pub redis_outages: u64,
    /// Every connection to Redis is up now.
    pub redis_up: bool,
    /// Other processes registered at the last heartbeat.
    pub peers: u64,
    /// Players seated without Redis (while it was away), in a room open here.
    pub seat_fallbacks: u64,
    /// Players of other processes in this process's rooms now.
    pub remote_players: u64,
}

/// Why the cluster could not start.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// Redis did not answer at start.
    #[error("cannot reach Redis at {addr}: {source}")]
    Unreachable {
        /// Host and port from the URL.
        addr: String,
        /// What the client saw.
        #[source]
        source: redis::RedisError,
    },
    /// The cluster's player ids are used up (the counter passed `i32::MAX`).
    #[error("Redis at {addr} hands out no more player ids (the counter passed i32::MAX)")]
    IdsExhausted {
        /// Host and port from the URL.
        addr: String,
    },
    /// A thread could not be started.
    #[error("cannot start the cluster's {name} thread: {source}")]
    Thread {
        /// Which thread.
        name: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Settings of the cluster (from `--cluster` and `--cluster-ttl`).
#[derive(Debug, Clone)]
pub(crate) struct ClusterConfig {
    pub(crate) url: String,
    /// Presence TTL: a process that stops heartbeating is gone after this long.
    pub(crate) ttl: Duration,
    /// `--room-capacity`, applied cluster-wide.
    pub(crate) room_capacity: usize,
}

/// The bus the rooms of a clustered process publish through.
struct Bus {
    me: ProcessId,
    publisher: Publisher,
    counters: Arc<ClusterCounters>,
    ttl: Duration,
}

impl RoomBus for Bus {
    fn process(&self) -> ProcessId {
        self.me
    }

    fn publish(&self, message: Outgoing) {
        self.publisher.queue(message);
    }

    fn counters(&self) -> &ClusterCounters {
        &self.counters
    }

    fn peer_timeout(&self) -> Duration {
        self.ttl
    }
}

/// What the lobby needs from the cluster: the bus for its rooms, the subscriber's route
/// book, and the control thread for seats.
#[derive(Clone)]
pub(crate) struct LobbyLink {
    pub(crate) bus: Arc<dyn RoomBus>,
    pub(crate) routes: Arc<RouteBook>,
    control: Sender<Command>,
    /// Other processes with players in room 1 at start: the first room's sync waits for
    /// their snapshots.
    pub(crate) room_one_peers: Vec<ProcessId>,
}

impl LobbyLink {
    /// Asks for a seat for `player`; the answer comes as [`Lobby::cluster_seated`].
    pub(crate) fn ask_seat(&self, player: PlayerId) {
        let _ = self.control.send(Command::Seat { player });
    }

    /// A player was seated here without Redis: counted, so the resync writes it.
    pub(crate) fn seated_here(&self, room: RoomId) {
        let _ = self.control.send(Command::SeatedHere { room });
    }

    /// A player of this process left `room`.
    pub(crate) fn left(&self, room: RoomId) {
        let _ = self.control.send(Command::Left { room });
    }
}

/// A running cluster membership: its three threads and the handles to them.
pub(crate) struct Cluster {
    me: ProcessId,
    addr: String,
    counters: Arc<ClusterCounters>,
    link: LobbyLink,
    ids: Arc<PlayerIds>,
    /// The control thread, which starts once the lobby exists.
    control: Mutex<ControlThread>,
    publisher_stop: Mutex<Option<publisher::Stopper>>,
    subscriber_stop: Mutex<Option<subscriber::Stopper>>,
}

enum ControlThread {
    Ready(Box<Control>),
    Running(std::thread::JoinHandle<()>),
    Stopped,
}

impl Cluster {
    /// Connects to Redis (three connections), registers this process, takes its first
    /// player ids and learns who holds the first room. Nothing runs until [`run`](Self::run).
    ///
    /// # Errors
    /// [`ClusterError::Unreachable`] when Redis does not answer within
    /// [`CONNECT_TIMEOUT`] or a first command fails.
    pub(crate) fn connect(config: ClusterConfig) -> Result<Self, ClusterError> {
        let client = redis::Client::open(config.url.as_str()).map_err(|source| {
            ClusterError::Unreachable {
                addr: config.url.clone(),
                source,
            }
        })?;
        let addr = client.get_connection_info().addr().to_string();
        let me = ProcessId::random();
        let counters = Arc::new(ClusterCounters::default());
        let health = Arc::new(Health::new(addr.clone(), Arc::clone(&counters)));
        let unreachable = |source| ClusterError::Unreachable {
            addr: addr.clone(),
            source,
        };
        let control_link =
            Link::connect("control", client.clone(), Arc::clone(&health)).map_err(unreachable)?;
        let publish_link =
            Link::connect("publisher", client.clone(), Arc::clone(&health)).map_err(unreachable)?;
        let subscribe_link =
            Link::connect("subscriber", client, Arc::clone(&health)).map_err(unreachable)?;
        counters.redis_up.store(1, Ordering::Relaxed);

        let (commands, inbox) = mpsc::channel();
        let blocks = Arc::new(IdBlocks::new(commands.clone()));
        let mut control = Control::new(
            control_link,
            me,
            &config,
            Arc::clone(&blocks),
            inbox,
            Arc::clone(&counters),
        );
        let room_one_peers = control.start().map_err(|e| match e {
            control::StartError::Redis(source) => unreachable(source),
            control::StartError::IdsExhausted => ClusterError::IdsExhausted { addr: addr.clone() },
        })?;

        let thread = |name| move |source| ClusterError::Thread { name, source };
        let (publisher, publisher_stop) =
            Publisher::new(publish_link, me, Arc::clone(&counters)).map_err(thread("publisher"))?;
        let routes = Arc::new(RouteBook::default());
        let subscriber_stop = subscriber::start(
            subscribe_link,
            me,
            Arc::clone(&routes),
            Arc::clone(&counters),
        )
        .map_err(thread("subscriber"))?;
        let bus: Arc<dyn RoomBus> = Arc::new(Bus {
            me,
            publisher,
            counters: Arc::clone(&counters),
            ttl: config.ttl,
        });
        info!(
            "cluster: process {me} joined Redis at {addr} ({} other processes, presence TTL {} s)",
            control.peers(),
            config.ttl.as_secs()
        );
        Ok(Self {
            me,
            addr,
            counters,
            link: LobbyLink {
                bus,
                routes,
                control: commands,
                room_one_peers,
            },
            ids: Arc::new(PlayerIds::Cluster(blocks)),
            control: Mutex::new(ControlThread::Ready(Box::new(control))),
            publisher_stop: Mutex::new(Some(publisher_stop)),
            subscriber_stop: Mutex::new(Some(subscriber_stop)),
        })
    }

    /// The handles the lobby keeps.
    pub(crate) fn lobby_link(&self) -> LobbyLink {
        self.link.clone()
    }

    /// Where new players get their ids.
    pub(crate) fn player_ids(&self) -> Arc<PlayerIds> {
        Arc::clone(&self.ids)
    }

    /// Starts the control thread, which answers to `lobby`.
    ///
    /// # Errors
    /// [`ClusterError::Thread`] when the thread cannot be spawned.
    pub(crate) fn run(&self, lobby: WeakJobQueue<Lobby>) -> Result<(), ClusterError> {
        let mut control = lock(&self.control);
        match std::mem::replace(&mut *control, ControlThread::Stopped) {
            ControlThread::Ready(ready) => *control = ControlThread::Running(ready.spawn(lobby)?),
            other => *control = other,
        }
        Ok(())
    }

    /// The counters, now.
    pub(crate) fn stats(&self) -> ClusterStats {
        self.counters.snapshot()
    }

    /// The counters themselves, for the stats snapshot.
    pub(crate) fn counters(&self) -> Arc<ClusterCounters> {
        Arc::clone(&self.counters)
    }

    /// Leaves the cluster: publishes what is queued, deregisters this process (its
    /// players leave everywhere at the others' next heartbeat) and stops the threads.
    /// Idempotent.
    pub(crate) fn stop(&self) {
        if let Some(stop) = lock(&self.publisher_stop).take() {
            stop.stop();
        }
        match std::mem::replace(&mut *lock(&self.control), ControlThread::Stopped) {
            ControlThread::Running(thread) => {
                let _ = self.link.control.send(Command::Stop);
                let _ = thread.join();
            }
            // The start failed after joining: leave all the same.
            ControlThread::Ready(mut control) => control.deregister(),
            ControlThread::Stopped => {}
        }
        if let Some(stop) = lock(&self.subscriber_stop).take() {
            stop.stop();
            info!("cluster: process {} left Redis at {}", self.me, self.addr);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
pub(crate) mod testing {
    //! A bus without Redis for unit tests: it records what rooms publish.
    use super::*;

    pub(crate) struct FakeBus {
        pub(crate) me: ProcessId,
        pub(crate) sent: Mutex<Vec<Outgoing>>,
        pub(crate) counters: ClusterCounters,
    }

    impl FakeBus {
        pub(crate) fn new(me: u64) -> Arc<Self> {
            Arc::new(Self {
                me: ProcessId(me),
                sent: Mutex::new(Vec::new()),
                counters: ClusterCounters::default(),
            })
        }

        pub(crate) fn take(&self) -> Vec<Outgoing> {
            std::mem::take(&mut lock(&self.sent))
        }
    }

    impl RoomBus for FakeBus {
        fn process(&self) -> ProcessId {
            self.me
        }
        fn publish(&self, message: Outgoing) {
            lock(&self.sent).push(message);
        }
        fn counters(&self) -> &ClusterCounters {
            &self.counters
        }
        fn peer_timeout(&self) -> Duration {
            Duration::from_secs(5)
        }
    }
}
