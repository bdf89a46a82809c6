//! Listening sockets on a loop: accept until `WouldBlock`, enforce the listener's session
//! limit, run the factory through the guard, spread sessions over the live loops, back off
//! when descriptors run out, and close on request.

use super::event_loop::{EventLoop, TimerKind, LISTENER_BASE};
use super::mailbox::Command;
use super::sessions::Adoption;
use super::socket::{configure_socket, is_resource_exhaustion};
use crate::guard;
use crate::listener::ListenerShared;
use crate::session::Hook;
use crate::transport::TransportState;
use log::{debug, error, info, warn};
use mio::net::TcpListener;
use mio::{Interest, Token};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Consecutive accept errors (other than running out of descriptors) before backing off.
const ACCEPT_ERRORS_BEFORE_BACKOFF: usize = 16;

/// A listening socket owned by a loop.
pub(crate) struct ListenerEntry {
    pub(crate) socket: TcpListener,
    pub(crate) shared: Arc<ListenerShared>,
    /// Accepting is paused (descriptors exhausted) until a timer resumes it.
    pub(crate) paused: bool,
}

impl EventLoop {
    pub(super) fn accept(&mut self, listener_key: usize) {
        let mut errors = 0;
        loop {
            let Some(entry) = self.listeners.get_mut(listener_key) else {
                return;
            };
            if entry.shared.is_closed() {
                let shared = Arc::clone(&entry.shared);
                self.close_listener(&shared);
                return;
            }
            if entry.paused {
                return;
            }
            match entry.socket.accept() {
                Ok((stream, peer_addr)) => {
                    let shared = Arc::clone(&entry.shared);
                    if !shared.try_acquire_slot() {
                        self.shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                        warn!(
                            "listener {}: session limit {} reached, refusing {peer_addr}",
                            shared.local_addr, shared.max_sessions
                        );
                        drop(stream);
                        continue;
                    }
                    configure_socket(&stream, &self.config);
                    let transport = shared.transport();
                    // A WebSocket port makes the handler once the upgrade is accepted: a
                    // page load or a refused handshake never makes one.
                    let handler = if matches!(transport, TransportState::Tcp) {
                        match guard::catch(|| (shared.factory)()) {
                            Ok(handler) => Some(handler),
                            Err(message) => {
                                self.shared
                                    .stats
                                    .hook_panics
                                    .fetch_add(1, Ordering::Relaxed);
                                error!(
                                    "listener {}: {} panicked ({message}); refusing {peer_addr}",
                                    shared.local_addr,
                                    Hook::Factory
                                );
                                shared.release_slot();
                                continue;
                            }
                        }
                    } else {
                        None
                    };
                    self.shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    let adoption = Adoption {
                        stream,
                        peer_addr,
                        handler,
                        transport,
                        limits: Arc::clone(&shared.limits),
                        max_in_flight: shared.max_in_flight,
                        handler_type: Some(shared.handler_type),
                        listener: Some(shared),
                        connecting: false,
                    };
                    self.place(adoption);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    errors += 1;
                    if is_resource_exhaustion(&e) || errors >= ACCEPT_ERRORS_BEFORE_BACKOFF {
                        // Out of descriptors: the pending connection stays in the backlog and
                        // the socket stays readable, so retrying now would spin. Wait instead.
                        error!(
                            "listener {}: accept failed ({e}); pausing accepts for {:?}",
                            entry.shared.local_addr, self.config.accept_backoff
                        );
                        entry.paused = true;
                        self.timers.push(
                            self.now + self.config.accept_backoff,
                            TimerKind::ResumeAccept(listener_key),
                        );
                        return;
                    }
                    debug!("listener {}: accept error: {e}", entry.shared.local_addr);
                }
            }
        }
    }

    /// Hands an accepted connection to the next live loop, round robin (this one included).
    fn place(&mut self, adoption: Adoption) {
        let loops = self.peers.len();
        for _ in 0..loops {
            let target = self.next_target % loops;
            self.next_target = self.next_target.wrapping_add(1);
            if target == self.shared.index {
                self.adopt(adoption);
                return;
            }
            if self.peers[target].is_alive() {
                self.peers[target].submit(Command::Adopt(Box::new(adoption)));
                return;
            }
        }
        self.adopt(adoption);
    }

    pub(super) fn resume_accept(&mut self, listener_key: usize) {
        if let Some(entry) = self.listeners.get_mut(listener_key) {
            entry.paused = false;
            self.accept(listener_key);
        }
    }

    pub(super) fn add_listener(&mut self, mut entry: ListenerEntry) {
        if self.shutdown_deadline.is_some() || entry.shared.is_closed() {
            return;
        }
        let vacant = self.listeners.vacant_entry();
        let token = Token(LISTENER_BASE + vacant.key());
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut entry.socket, token, Interest::READABLE)
        {
            error!(
                "failed to register listener {}: {e}",
                entry.shared.local_addr
            );
            return;
        }
        entry.shared.set_owner(self.shared.index);
        info!(
            "listening on {} (I/O thread {})",
            entry.shared.local_addr, self.shared.index
        );
        let key = vacant.key();
        vacant.insert(entry);
        // Connections may have queued between bind and registration.
        self.accept(key);
    }

    pub(super) fn close_listener(&mut self, shared: &Arc<ListenerShared>) {
        let found = self
            .listeners
            .iter()
            .find(|(_, entry)| Arc::ptr_eq(&entry.shared, shared))
            .map(|(key, _)| key);
        if let Some(key) = found {
            let mut entry = self.listeners.remove(key);
            let _ = self.poll.registry().deregister(&mut entry.socket);
            info!(
                "stopped listening on {} ({} sessions from it still open)",
                shared.local_addr,
                shared.active_count()
            );
        }
    }
}
