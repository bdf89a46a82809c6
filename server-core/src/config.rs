//! Service settings, with the defaults a game server wants.

use crate::frame::{HEADER_SIZE, MAX_FRAME_SIZE};
use std::time::Duration;

/// Settings shared by every session of a [`Service`](crate::Service). Built with
/// [`ServiceBuilder`](crate::ServiceBuilder); the defaults are listed on each setter there.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) threads: usize,
    pub(crate) max_sessions: usize,
    pub(crate) listen_backlog: u32,
    pub(crate) max_packet_size: usize,
    pub(crate) max_send_queue: usize,
    pub(crate) recv_buffer_initial: usize,
    pub(crate) nodelay: bool,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) connect_timeout: Duration,
    pub(crate) linger: Duration,
    pub(crate) job_budget: Duration,
    pub(crate) accept_backoff: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_sessions: 10_000,
            listen_backlog: 4096,
            max_packet_size: MAX_FRAME_SIZE,
            max_send_queue: 4 * 1024 * 1024,
            recv_buffer_initial: 4096,
            nodelay: true,
            keepalive: Some(Duration::from_secs(60)),
            idle_timeout: None,
            connect_timeout: Duration::from_secs(10),
            linger: Duration::from_secs(2),
            job_budget: Duration::from_millis(2),
            accept_backoff: Duration::from_millis(100),
        }
    }
}

impl Config {
    /// Clamps values that would make no sense (zero threads, a max packet below the header).
    pub(crate) fn normalized(mut self) -> Self {
        self.threads = self.threads.max(1);
        self.max_packet_size = self.max_packet_size.clamp(HEADER_SIZE, MAX_FRAME_SIZE);
        self.max_send_queue = self.max_send_queue.max(1);
        self.recv_buffer_initial = self
            .recv_buffer_initial
            .clamp(HEADER_SIZE, self.max_packet_size);
        self
    }
}
