//! The subscriber thread: one Redis connection in subscribe mode, one channel per room
//! open in this process. It checks each message ([`wire::decode`]), skips this process's
//! own, and hands the rest to the room's queue as a job, so a room reads the cluster the
//! way it reads its players: one job at a time, never waiting.
//!
//! The lobby opens and closes routes through the [`RouteBook`]; the thread applies them
//! between two reads (it reads with a short timeout for that). When Redis is lost it
//! reconnects with backoff, subscribes again to every room and asks each room to
//! resynchronise.

use super::link::Link;
use super::log_limit::LogLimit;
use super::wire;
use super::{keys, ClusterCounters, ProcessId};
use crate::lobby::RoomId;
use crate::room::GameRoom;
use log::warn;
use redis::{Connection, RedisError};
use server_core::WeakJobQueue;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a read waits before the thread looks at route changes and its stop flag.
const POLL: Duration = Duration::from_millis(25);
/// A quiet connection is checked with a PING this often (a dead one shows as an error).
const PING_EVERY: Duration = Duration::from_secs(1);
/// Jobs a room may have waiting before its messages are dropped (and counted): a room
/// that cannot keep up must not make its queue grow without bound. The skipped sequence
/// numbers make it ask for snapshots once it catches up.
pub(crate) const MAX_ROOM_BACKLOG: usize = 4096;

/// Rooms opened and closed by the lobby, waiting for the subscriber thread.
#[derive(Default)]
pub(crate) struct RouteBook {
    changes: Mutex<Vec<RouteChange>>,
}

enum RouteChange {
    Open {
        room: RoomId,
        queue: WeakJobQueue<GameRoom>,
        awaiting: Vec<ProcessId>,
    },
    Close(RoomId),
}

impl RouteBook {
    /// Subscribes to `room`; once subscribed the room is told with the processes whose
    /// snapshots it waits for ([`GameRoom::cluster_subscribed`]).
    pub(crate) fn open(
        &self,
        room: RoomId,
        queue: WeakJobQueue<GameRoom>,
        awaiting: Vec<ProcessId>,
    ) {
        self.lock().push(RouteChange::Open {
            room,
            queue,
            awaiting,
        });
    }

    /// Unsubscribes from `room`.
    pub(crate) fn close(&self, room: RoomId) {
        self.lock().push(RouteChange::Close(room));
    }

    fn take(&self) -> Vec<RouteChange> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RouteChange>> {
        self.changes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Stops the subscriber thread.
pub(crate) struct Stopper {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Stopper {
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.thread.join();
    }
}

/// Starts the subscriber thread.
pub(crate) fn start(
    link: Link,
    me: ProcessId,
    book: Arc<RouteBook>,
    counters: Arc<ClusterCounters>,
) -> std::io::Result<Stopper> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut worker = Worker {
        link,
        routes: Routes {
            me,
            book,
            counters,
            stop: Arc::clone(&stop),
            rooms: HashMap::new(),
            bad: LogLimit::new(Duration::from_secs(10)),
        },
    };
    let thread = std::thread::Builder::new()
        .name("cluster-subscribe".into())
        .spawn(move || worker.run())?;
    Ok(Stopper { stop, thread })
}

struct Worker {
    link: Link,
    routes: Routes,
}

/// Everything but the connection, so a subscription can borrow both.
struct Routes {
    me: ProcessId,
    book: Arc<RouteBook>,
    counters: Arc<ClusterCounters>,
    stop: Arc<AtomicBool>,
    rooms: HashMap<RoomId, WeakJobQueue<GameRoom>>,
    /// Bad messages are logged at most every 10 s.
    bad: LogLimit,
}

impl Worker {
    fn run(&mut self) {
        while !self.routes.stopping() {
            if self.link.get().is_none() {
                // Redis is away: rooms open without waiting for it.
                self.routes.apply_offline();
                std::thread::sleep(self.link.retry_in().clamp(Duration::from_millis(1), POLL));
                continue;
            }
            let came_back = self.link.take_came_back();
            let Some(con) = self.link.get() else {
                continue;
            };
            if let Err(e) = self.routes.serve(con, came_back) {
                self.link.failed(&e);
            }
        }
        self.link.close();
    }
}

impl Routes {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Reads the room channels until stopped (`Ok`) or the connection fails (`Err`).
    fn serve(&mut self, con: &mut Connection, came_back: bool) -> Result<(), RedisError> {
        con.set_read_timeout(Some(POLL))?;
        let mut pubsub = con.as_pubsub();
        if !self.rooms.is_empty() {
            let channels: Vec<String> = self.rooms.keys().map(|&r| keys::channel(r)).collect();
            pubsub.subscribe(channels)?;
        }
        if came_back {
            for queue in self.rooms.values().filter_map(WeakJobQueue::upgrade) {
                queue.push(GameRoom::cluster_resync);
            }
        }
        let mut last_traffic = Instant::now();
        while !self.stopping() {
            for change in self.book.take() {
                match change {
                    RouteChange::Open {
                        room,
                        queue,
                        awaiting,
                    } => {
                        // Known before subscribing: if that fails, the reconnect
                        // subscribes it with the others and asks it to resynchronise.
                        self.rooms.insert(room, queue.clone());
                        pubsub.subscribe(keys::channel(room))?;
                        if let Some(q) = queue.upgrade() {
                            q.push(move |r| r.cluster_subscribed(&awaiting));
                        }
                    }
                    RouteChange::Close(room) => {
                        pubsub.unsubscribe(keys::channel(room))?;
                        self.rooms.remove(&room);
                    }
                }
            }
            match pubsub.get_message() {
                Ok(msg) => {
                    last_traffic = Instant::now();
                    self.handle(msg.get_payload_bytes());
                }
                Err(e) if e.is_timeout() => {
                    if last_traffic.elapsed() >= PING_EVERY {
                        pubsub.ping::<redis::Value>()?;
                        last_traffic = Instant::now();
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Route changes while Redis is away: open rooms are ready at once, with nobody to
    /// wait for; they resynchronise when Redis is back.
    fn apply_offline(&mut self) {
        for change in self.book.take() {
            match change {
                RouteChange::Open { room, queue, .. } => {
                    if let Some(q) = queue.upgrade() {
                        q.push(|r| r.cluster_subscribed(&[]));
                    }
                    self.rooms.insert(room, queue);
                }
                RouteChange::Close(room) => {
                    self.rooms.remove(&room);
                }
            }
        }
    }

    /// One message from a room channel.
    fn handle(&mut self, payload: &[u8]) {
        self.counters
            .received_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        let header = match wire::peek(payload) {
            Ok((header, _)) if header.origin == self.me => return,
            Ok((header, _)) => header,
            Err(e) => return self.reject(&e),
        };
        let Some(queue) = self.rooms.get(&header.room).and_then(WeakJobQueue::upgrade) else {
            return; // a room closed here: its last messages are not needed
        };
        if queue.pending_jobs() >= MAX_ROOM_BACKLOG {
            self.counters
                .dropped_room_busy
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        match wire::decode(payload) {
            Ok(message) => {
                self.counters.received.fetch_add(1, Ordering::Relaxed);
                queue.push(move |room| room.cluster_receive(message));
            }
            Err(e) => self.reject(&e),
        }
    }

    fn reject(&mut self, error: &wire::WireError) {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        if let Some(left_out) = self.bad.allow(Instant::now()) {
            let more = if left_out > 0 {
                format!(" ({left_out} more since the last report)")
            } else {
                String::new()
            };
            warn!("cluster: skipped a message on a room channel: {error}{more}");
        }
    }
}
