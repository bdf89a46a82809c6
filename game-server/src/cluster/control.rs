//! The control thread: everything the cluster asks of Redis besides publishing. It
//! seats players (an atomic script over every process's head counts), hands out blocks of
//! player ids, heartbeats this process's presence and tells the lobby who is alive, and
//! when Redis comes back after an outage writes this process's seats again.
//!
//! It keeps the authoritative count of this process's players per room: every seat, local
//! fallback seat and leave passes through it in order, so what it writes back to Redis
//! after an outage is exact.

use super::ids::{IdBlocks, BLOCK};
use super::link::Link;
use super::{keys, ClusterConfig, ClusterCounters, ClusterError, ProcessId};
use crate::lobby::{Lobby, RoomId};
use crate::player::PlayerId;
use log::{debug, error, info};
use redis::{Connection, RedisError, Script};
use server_core::WeakJobQueue;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a room opening in a cluster waits for the snapshots of the processes already
/// in it before letting newcomers in anyway.
pub(crate) const SYNC_TIMEOUT: Duration = Duration::from_secs(2);

/// What the lobby and the id blocks ask of the control thread.
#[derive(Debug)]
pub(crate) enum Command {
    /// Seat a player; answered with [`Lobby::cluster_seated`].
    Seat { player: PlayerId },
    /// A player was seated here while Redis was away.
    SeatedHere { room: RoomId },
    /// A player of this process left a room.
    Left { room: RoomId },
    /// The id blocks want a spare block.
    RefillIds,
    /// Deregister and end.
    Stop,
}

/// The answer to a seat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SeatAnswer {
    /// Seated in `room`, where `peers` (other live processes) have players.
    Room { room: RoomId, peers: Vec<ProcessId> },
    /// Redis is away: the lobby seats the player in a room open here, if one has space.
    Unreachable,
}

/// Why the cluster could not register at start.
pub(crate) enum StartError {
    Redis(RedisError),
    IdsExhausted,
}

impl From<RedisError> for StartError {
    fn from(e: RedisError) -> Self {
        Self::Redis(e)
    }
}

struct Scripts {
    heartbeat: Script,
    seat: Script,
    peers: Script,
}

/// The control thread's state.
pub(crate) struct Control {
    link: Link,
    me: ProcessId,
    ttl: Duration,
    capacity: usize,
    blocks: Arc<IdBlocks>,
    inbox: Receiver<Command>,
    counters: Arc<ClusterCounters>,
    scripts: Scripts,
    /// This process's players per room: what Redis should hold for it.
    seats: BTreeMap<RoomId, i64>,
    /// The other processes alive at the last heartbeat.
    peers: BTreeSet<ProcessId>,
    /// When the connection last came back after an outage: for a while, processes missing
    /// from the presence set may just not have reconnected yet.
    back_at: Option<Instant>,
    /// A spare id block is wanted but was put off (Redis just came back).
    refill_wanted: bool,
    ids_exhausted: bool,
}

impl Control {
    pub(crate) fn new(
        link: Link,
        me: ProcessId,
        config: &ClusterConfig,
        blocks: Arc<IdBlocks>,
        inbox: Receiver<Command>,
        counters: Arc<ClusterCounters>,
    ) -> Self {
        Self {
            link,
            me,
            ttl: config.ttl,
            capacity: config.room_capacity,
            blocks,
            inbox,
            counters,
            scripts: Scripts {
                heartbeat: Script::new(include_str!("scripts/heartbeat.lua")),
                seat: Script::new(include_str!("scripts/seat.lua")),
                peers: Script::new(include_str!("scripts/peers.lua")),
            },
            seats: BTreeMap::new(),
            peers: BTreeSet::new(),
            back_at: None,
            refill_wanted: false,
            ids_exhausted: false,
        }
    }

    /// At start, synchronously: registers this process, takes two blocks of ids and
    /// returns the processes with players in room 1.
    pub(crate) fn start(&mut self) -> Result<Vec<ProcessId>, StartError> {
        let Some(con) = self.link.get() else {
            return Err(StartError::Redis(RedisError::from(std::io::Error::other(
                "not connected",
            ))));
        };
        let _: String = redis::cmd("PING").query(con)?;
        let live = heartbeat(&self.scripts, con, self.me, self.ttl, 0, 1)?;
        self.peers = live;
        self.counters
            .peers
            .store(self.peers.len() as u64, Ordering::Relaxed);
        for _ in 0..2 {
            let Some((first, end)) = take_block(con)? else {
                return Err(StartError::IdsExhausted);
            };
            self.blocks.add(first, end);
        }
        let peers: Vec<String> = self
            .scripts
            .peers
            .key(keys::PROCESSES)
            .key(keys::seats(RoomId(1)))
            .arg(self.me.key())
            .invoke(con)?;
        Ok(peers
            .iter()
            .filter_map(|p| ProcessId::from_key(p))
            .collect())
    }

    /// Other processes registered at the last heartbeat.
    pub(crate) fn peers(&self) -> usize {
        self.peers.len()
    }

    /// Starts the thread; it answers to `lobby`.
    pub(crate) fn spawn(self, lobby: WeakJobQueue<Lobby>) -> Result<JoinHandle<()>, ClusterError> {
        std::thread::Builder::new()
            .name("cluster-control".into())
            .spawn(move || self.run(&lobby))
            .map_err(|source| ClusterError::Thread {
                name: "control",
                source,
            })
    }

    fn run(mut self, lobby: &WeakJobQueue<Lobby>) {
        let every = self.ttl / 3;
        let mut next_heartbeat = Instant::now() + every;
        loop {
            let wait = next_heartbeat.saturating_duration_since(Instant::now());
            match self.inbox.recv_timeout(wait) {
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(command) => self.handle(command, lobby),
                Err(RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() >= next_heartbeat {
                self.heartbeat(lobby);
                next_heartbeat = Instant::now() + every;
            }
        }
        self.deregister();
    }

    /// Whether Redis is reachable, after writing this process's seats again if the
    /// connection just came back. Then `self.link.get()` is the connection.
    fn connected(&mut self) -> bool {
        if self.link.get().is_none() {
            return false;
        }
        if self.link.take_came_back() {
            self.back_at = Some(Instant::now());
            if let Err(e) = self.write_seats() {
                self.link.failed(&e);
                return false;
            }
        }
        self.link.is_up()
    }

    /// Runs `op` with the connection and the scripts (once more on a fresh connection if
    /// a stale one fails); `None` while Redis is away or when the command failed (logged).
    fn with_redis<T>(
        &mut self,
        mut op: impl FnMut(&mut Connection, &Scripts) -> Result<T, RedisError>,
    ) -> Option<T> {
        if !self.connected() {
            return None;
        }
        let scripts = &self.scripts;
        match self.link.run(|con| op(con, scripts))? {
            Ok(value) => Some(value),
            Err(e) => {
                if !(e.is_io_error() || e.is_connection_dropped()) {
                    error!("cluster: a Redis command failed: {e}");
                }
                None
            }
        }
    }

    fn handle(&mut self, command: Command, lobby: &WeakJobQueue<Lobby>) {
        match command {
            Command::Seat { player } => {
                let answer = self.seat();
                if let Some(lobby) = lobby.upgrade() {
                    lobby.push(move |lobby| lobby.cluster_seated(player, answer));
                }
            }
            Command::SeatedHere { room } => {
                *self.seats.entry(room).or_default() += 1;
                self.counters.seat_fallbacks.fetch_add(1, Ordering::Relaxed);
            }
            Command::Left { room } => {
                let n = self.seats.entry(room).or_default();
                *n = (*n - 1).max(0);
                let me = self.me.key();
                // While Redis is away the count is written back when it returns.
                self.with_redis(|con, _| {
                    redis::cmd("HINCRBY")
                        .arg(keys::seats(room))
                        .arg(&me)
                        .arg(-1)
                        .exec(con)
                });
            }
            Command::RefillIds => self.refill_ids(),
            Command::Stop => {}
        }
    }

    /// Runs the seat script.
    fn seat(&mut self) -> SeatAnswer {
        let (me, capacity) = (self.me.key(), self.capacity);
        let reply: Option<Vec<String>> = self.with_redis(|con, scripts| {
            scripts
                .seat
                .key(keys::PROCESSES)
                .key(keys::ROOMS)
                .key(keys::ROOM_IDS)
                .arg(&me)
                .arg(capacity)
                .arg(keys::SEATS_PREFIX)
                .invoke(con)
        });
        let Some(reply) = reply else {
            return SeatAnswer::Unreachable;
        };
        let room = reply.first().and_then(|r| r.parse::<u32>().ok());
        let Some(room) = room.map(RoomId) else {
            error!("cluster: the seat script answered {reply:?}");
            return SeatAnswer::Unreachable;
        };
        *self.seats.entry(room).or_default() += 1;
        let peers = reply[1..]
            .iter()
            .filter_map(|p| ProcessId::from_key(p))
            .collect();
        SeatAnswer::Room { room, peers }
    }

    fn in_grace(&self) -> bool {
        self.back_at.is_some_and(|t| t.elapsed() < self.ttl * 2)
    }

    fn refill_ids(&mut self) {
        if self.ids_exhausted || !self.blocks.wants_spare() {
            return;
        }
        // Just after an outage, Redis may have lost the counter: wait until every live
        // process has heartbeated its floor into it.
        if self.in_grace() {
            self.refill_wanted = true;
            return;
        }
        match self.with_redis(|con, _| take_block(con)) {
            Some(Some((first, end))) => self.blocks.add(first, end),
            Some(None) => {
                self.ids_exhausted = true;
                error!("cluster: player ids are used up (the counter passed i32::MAX); new players are turned away");
            }
            None => self.blocks.refill_failed(),
        }
    }

    fn heartbeat(&mut self, lobby: &WeakJobQueue<Lobby>) {
        let highest_room = self.seats.keys().next_back().map_or(1, |r| r.0);
        let highest_player = self.blocks.highest();
        let (me, ttl) = (self.me, self.ttl);
        let Some(live) = self.with_redis(|con, scripts| {
            heartbeat(scripts, con, me, ttl, highest_player, highest_room)
        }) else {
            return;
        };
        for gone in self.peers.difference(&live) {
            info!("cluster: process {gone} is gone");
        }
        for new in live.difference(&self.peers) {
            info!("cluster: process {new} joined");
        }
        self.peers = live;
        self.counters
            .peers
            .store(self.peers.len() as u64, Ordering::Relaxed);
        let grace = self.in_grace();
        if !grace && std::mem::take(&mut self.refill_wanted) {
            self.refill_ids();
        }
        let live: Arc<HashSet<ProcessId>> = Arc::new(self.peers.iter().copied().collect());
        if let Some(lobby) = lobby.upgrade() {
            lobby.push(move |lobby| lobby.cluster_peers(&live, grace));
        }
    }

    /// Writes this process's head counts again (Redis came back, perhaps without data).
    fn write_seats(&mut self) -> Result<(), RedisError> {
        let Some(con) = self.link.get() else {
            return Ok(());
        };
        let mut pipe = redis::pipe();
        for (&room, &n) in &self.seats {
            if n > 0 {
                pipe.cmd("HSET")
                    .arg(keys::seats(room))
                    .arg(self.me.key())
                    .arg(n)
                    .ignore();
                pipe.cmd("ZADD")
                    .arg(keys::ROOMS)
                    .arg("NX")
                    .arg(room.0)
                    .arg(room.0)
                    .ignore();
            } else {
                pipe.cmd("HDEL")
                    .arg(keys::seats(room))
                    .arg(self.me.key())
                    .ignore();
            }
        }
        if !self.seats.is_empty() {
            pipe.exec(con)?;
        }
        let live = heartbeat(
            &self.scripts,
            con,
            self.me,
            self.ttl,
            self.blocks.highest(),
            self.seats.keys().next_back().map_or(1, |r| r.0),
        )?;
        debug!(
            "cluster: re-registered; {} other processes alive",
            live.len()
        );
        self.seats.retain(|_, n| *n > 0);
        Ok(())
    }

    /// Leaves Redis: the presence entry and this process's head counts.
    pub(crate) fn deregister(&mut self) {
        if let Some(con) = self.link.get() {
            let mut pipe = redis::pipe();
            pipe.cmd("ZREM")
                .arg(keys::PROCESSES)
                .arg(self.me.key())
                .ignore();
            for &room in self.seats.keys() {
                pipe.cmd("HDEL")
                    .arg(keys::seats(room))
                    .arg(self.me.key())
                    .ignore();
            }
            if let Err(e) = pipe.exec(con) {
                debug!("cluster: could not deregister: {e}");
            }
        }
        self.link.close();
    }
}

/// Runs the heartbeat script; returns the other live processes.
fn heartbeat(
    scripts: &Scripts,
    con: &mut Connection,
    me: ProcessId,
    ttl: Duration,
    highest_player: i64,
    highest_room: u32,
) -> Result<BTreeSet<ProcessId>, RedisError> {
    let live: Vec<String> = scripts
        .heartbeat
        .key(keys::PROCESSES)
        .key(keys::PLAYER_IDS)
        .key(keys::ROOM_IDS)
        .arg(me.key())
        .arg(ttl.as_millis() as u64)
        .arg(highest_player)
        .arg(highest_room)
        .invoke(con)?;
    Ok(live
        .iter()
        .filter_map(|p| ProcessId::from_key(p))
        .filter(|&p| p != me)
        .collect())
}

/// Takes a block of player ids: `Some((first, end))`, end exclusive, or `None` when the
/// counter is past what an `i32` id can hold.
fn take_block(con: &mut Connection) -> Result<Option<(i64, i64)>, RedisError> {
    let last: i64 = redis::cmd("INCRBY")
        .arg(keys::PLAYER_IDS)
        .arg(BLOCK)
        .query(con)?;
    Ok((last <= i64::from(PlayerId::MAX)).then_some((last - BLOCK + 1, last + 1)))
}
