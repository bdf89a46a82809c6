//! One Redis connection that comes back, after redis-rs's `aio::ConnectionManager` but
//! blocking: while Redis is away, [`Link::get`] answers `None` at once (callers drop or
//! fall back instead of waiting) and tries again only after a backoff that doubles up to
//! [`MAX_BACKOFF`]. The outage is logged once for all the process's connections, when the
//! first of them loses Redis, and its end when the last one is back.

use super::{ClusterCounters, CONNECT_TIMEOUT};
use log::{error, info};
use redis::{Client, Connection, RedisError};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// First wait before reconnecting.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Longest a command may take before the connection counts as lost.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether Redis is reachable, over every connection of the process; logs outages once.
///
/// An outage starts when a connection made since the last outage fails, and ends when
/// every connection that failed is back. A connection older than the last outage that
/// fails afterwards (it had nothing to do while Redis was away) is part of that outage,
/// not a new one.
pub(crate) struct Health {
    addr: String,
    state: Mutex<HealthState>,
    counters: Arc<ClusterCounters>,
}

#[derive(Default)]
struct HealthState {
    /// Outages so far; a connection remembers the number current when it was made.
    epoch: u64,
    /// Connections down now.
    links_down: usize,
    /// When the current outage began (`None`: no outage now).
    down_since: Option<Instant>,
}

impl Health {
    pub(crate) fn new(addr: String, counters: Arc<ClusterCounters>) -> Self {
        Self {
            addr,
            state: Mutex::new(HealthState::default()),
            counters,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The outage number a connection made now belongs to.
    fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// A connection made during outage number `epoch` failed.
    fn lost(&self, link: &str, error: &RedisError, epoch: u64) {
        let mut s = self.lock();
        s.links_down += 1;
        if s.down_since.is_some() || epoch < s.epoch {
            return;
        }
        s.epoch += 1;
        s.down_since = Some(Instant::now());
        self.counters.redis_up.store(0, Ordering::Relaxed);
        self.counters.redis_outages.fetch_add(1, Ordering::Relaxed);
        error!(
            "cluster: lost Redis at {} ({link} connection: {error}); local play goes on, \
             traffic with other processes is dropped and counted until it is back; \
             reconnecting with backoff",
            self.addr
        );
    }

    fn back(&self) {
        let mut s = self.lock();
        s.links_down = s.links_down.saturating_sub(1);
        if s.links_down > 0 {
            return;
        }
        if let Some(since) = s.down_since.take() {
            self.counters.redis_up.store(1, Ordering::Relaxed);
            info!(
                "cluster: Redis at {} is back after {:.1} s; resynchronising presence and rooms",
                self.addr,
                since.elapsed().as_secs_f64()
            );
        }
    }
}

/// A connection with reconnect and backoff.
pub(crate) struct Link {
    name: &'static str,
    client: Client,
    con: Option<Connection>,
    health: Arc<Health>,
    /// No attempt before this.
    retry_at: Instant,
    backoff: Duration,
    /// Set when the connection came back and the caller has not been told yet.
    came_back: bool,
    /// The outage number current when the connection was made.
    epoch: u64,
}

impl Link {
    /// Connects once, for the start: an error here fails the start.
    pub(crate) fn connect(
        name: &'static str,
        client: Client,
        health: Arc<Health>,
    ) -> Result<Self, RedisError> {
        let con = open(&client)?;
        let epoch = health.epoch();
        Ok(Self {
            name,
            client,
            con: Some(con),
            health,
            retry_at: Instant::now(),
            backoff: FIRST_BACKOFF,
            came_back: false,
            epoch,
        })
    }

    /// The connection, reconnecting first if it was lost and the backoff has passed;
    /// `None` while Redis is away.
    pub(crate) fn get(&mut self) -> Option<&mut Connection> {
        if self.con.is_none() && Instant::now() >= self.retry_at {
            match open(&self.client) {
                Ok(con) => {
                    self.con = Some(con);
                    self.epoch = self.health.epoch();
                    self.backoff = FIRST_BACKOFF;
                    self.came_back = true;
                    self.health.back();
                }
                Err(_) => {
                    self.retry_at = Instant::now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        self.con.as_mut()
    }

    /// Runs `op` on the connection. If it fails on a connection made before Redis went
    /// away and came back (the first use after an outage finds it dead), it is run once
    /// more on a fresh connection; a second failure counts as an outage. `None` while
    /// Redis is away.
    pub(crate) fn run<T>(
        &mut self,
        mut op: impl FnMut(&mut Connection) -> Result<T, RedisError>,
    ) -> Option<Result<T, RedisError>> {
        let first = op(self.get()?);
        match first {
            Err(e) if e.is_io_error() || e.is_connection_dropped() => {
                self.failed(&e);
                // Straight away, whatever the backoff: Redis may well be back already.
                self.retry_at = Instant::now();
                let second = op(self.get()?);
                if let Err(e) = &second {
                    self.failed(e);
                }
                Some(second)
            }
            Err(e) => Some(Err(e)),
            ok => Some(ok),
        }
    }

    /// Whether the connection came back since the last call (the caller resynchronises).
    pub(crate) fn take_came_back(&mut self) -> bool {
        std::mem::take(&mut self.came_back)
    }

    pub(crate) fn is_up(&self) -> bool {
        self.con.is_some()
    }

    /// Time until the next attempt (zero when connected or due).
    pub(crate) fn retry_in(&self) -> Duration {
        self.retry_at.saturating_duration_since(Instant::now())
    }

    /// A command failed: the connection is dropped and the outage noted.
    pub(crate) fn failed(&mut self, error: &RedisError) {
        if self.con.take().is_some() {
            self.health.lost(self.name, error, self.epoch);
            self.retry_at = Instant::now() + self.backoff;
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Closes the connection for good (at stop), without reporting an outage.
    pub(crate) fn close(&mut self) {
        self.con = None;
    }
}

fn open(client: &Client) -> Result<Connection, RedisError> {
    let con = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    con.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    con.set_write_timeout(Some(COMMAND_TIMEOUT))?;
    Ok(con)
}
