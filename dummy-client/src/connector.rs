//! The connector thread: opens every session, all at once or paced at `--connect-rate`, on
//! its own thread so the progress line keeps printing while it works, and never with more
//! than [`MAX_IN_FLIGHT`] handshakes outstanding.

use crate::session::{ClientSession, Shared, Slot};
use crate::{Target, MAX_IN_FLIGHT};
use server_core::{ConnectError, ServiceHandle};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Everything the connector thread needs.
pub(crate) struct Connector {
    pub(crate) handle: ServiceHandle,
    pub(crate) shared: Arc<Shared>,
    pub(crate) slots: Vec<Arc<Slot>>,
    /// Handed to every session, which reports on it when it joined (for the scheduler).
    pub(crate) ready: Sender<usize>,
    /// The servers, TCP ports or WebSocket URLs; each slot connects to the one its `server`
    /// index names.
    pub(crate) targets: Vec<Target>,
    /// New connections per second; `None` = as fast as the in-flight limit allows.
    pub(crate) rate: Option<f64>,
}

impl Connector {
    pub(crate) fn spawn(self) -> JoinHandle<()> {
        std::thread::Builder::new()
            .name("dummy-connector".into())
            .spawn(move || self.run())
            .expect("spawn the connector thread")
    }

    /// Opens the sessions in order; returns early once the run is closing.
    fn run(&self) {
        let begin = Instant::now();
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some(rate) = self.rate {
                let due = begin + Duration::from_secs_f64(i as f64 / rate);
                if !self.wait_until(due) {
                    return;
                }
            }
            if !self.wait_for_a_free_handshake() || self.shared.is_closing() {
                return;
            }
            self.open(slot);
        }
    }

    /// Sleeps until `due`; false if the run started closing meanwhile.
    fn wait_until(&self, due: Instant) -> bool {
        while Instant::now() < due {
            if self.shared.is_closing() {
                return false;
            }
            let left = due.saturating_duration_since(Instant::now());
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
        true
    }

    /// Waits while [`MAX_IN_FLIGHT`] handshakes are outstanding, whatever the rate; false
    /// if the run started closing meanwhile.
    fn wait_for_a_free_handshake(&self) -> bool {
        while self
            .shared
            .initiated()
            .saturating_sub(self.shared.resolved())
            >= MAX_IN_FLIGHT
        {
            if self.shared.is_closing() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Starts one session's connect; a failure to start counts as a failed connect.
    fn open(&self, slot: &Arc<Slot>) {
        let handler = ClientSession::new(
            Arc::clone(slot),
            Arc::clone(&self.shared),
            self.ready.clone(),
        );
        self.shared.note_initiated();
        let started = match &self.targets[slot.server] {
            Target::Tcp(addr) => self.handle.connect(*addr, handler),
            Target::WebSocket(url) => self.handle.connect_ws(url, handler),
        };
        match started {
            Ok(()) => {}
            Err(ConnectError::Socket { source, .. }) => self.shared.connect_failed(&source),
            Err(e) => self
                .shared
                .connect_failed(&std::io::Error::other(e.to_string())),
        }
    }
}
