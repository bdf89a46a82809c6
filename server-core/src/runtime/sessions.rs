//! A session's life on its loop: adoption (accepted or outgoing), the connect, a
//! transport's handshake (`handshake.rs`), the hooks (every one through the guard: a panic
//! closes only that session, with [`DisconnectReason::Panicked`]), pauses and resumes, and
//! the close.

use super::event_loop::{EventLoop, Readiness, TimerKind};
use super::io::ReadUntil;
use super::mailbox::HandlerCall;
use crate::connection::{Blocked, Connection, Limits, Phase};
use crate::guard;
use crate::listener::ListenerShared;
use crate::session::{
    DisconnectKind, DisconnectReason, Hook, Route, Session, SessionHandler, SessionId, SessionParts,
};
use crate::transport::TransportState;
use log::{debug, error, info, warn};
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::any::TypeId;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A connected (or connecting) socket on its way to the loop that will own it.
pub(crate) struct Adoption {
    pub(crate) stream: TcpStream,
    pub(crate) peer_addr: SocketAddr,
    /// `None` for a WebSocket port's connection: the factory runs once the upgrade is
    /// accepted.
    pub(crate) handler: Option<Box<dyn SessionHandler>>,
    /// How the connection starts: plain TCP, or a WebSocket handshake.
    pub(crate) transport: TransportState,
    pub(crate) limits: Arc<Limits>,
    pub(crate) max_in_flight: u32,
    pub(crate) handler_type: Option<(TypeId, &'static str)>,
    /// The listener that accepted it (its session count is released on close); `None` for
    /// outgoing connections.
    pub(crate) listener: Option<Arc<ListenerShared>>,
    /// Outgoing and not yet established.
    pub(crate) connecting: bool,
}

/// One session on its loop: the socket, the handle, the user's handler and the
/// connection state machine.
pub(super) struct SessionEntry {
    pub(super) stream: TcpStream,
    pub(super) session: Session,
    /// `Some` from `on_connected` on (and for an outgoing connection from the start): a
    /// session without a handler has run no hook and runs none at its close.
    pub(super) handler: Option<Box<dyn SessionHandler>>,
    pub(super) conn: Connection,
    pub(super) limits: Arc<Limits>,
    /// Already in the loop's `dirty` list this iteration.
    pub(super) dirty: bool,
    pub(super) listener: Option<Arc<ListenerShared>>,
}

impl EventLoop {
    pub(super) fn session_matches(&self, key: usize, id: SessionId) -> bool {
        self.sessions.get(key).is_some_and(|e| e.session.id() == id)
    }

    pub(super) fn session_event(&mut self, key: usize, readiness: Readiness) {
        let Some(entry) = self.sessions.get(key) else {
            return; // a session closed earlier in this iteration
        };
        if matches!(entry.conn.phase(), Phase::Connecting) && !self.finish_connect(key) {
            return;
        }
        if readiness.writable {
            self.mark_dirty(key);
        }
        if readiness.closed {
            self.read(key, ReadUntil::WouldBlock);
        } else if readiness.readable {
            self.read(key, ReadUntil::ShortRead);
        }
    }

    pub(super) fn adopt(&mut self, adoption: Adoption) {
        if self.shutdown_deadline.is_some() {
            self.refuse_adoption(adoption, "the service is shutting down");
            return;
        }
        let key = self.sessions.vacant_key();
        let mut adoption = adoption;
        if let Err(e) = self.poll.registry().register(
            &mut adoption.stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            error!(
                "failed to register session from {}: {e}",
                adoption.peer_addr
            );
            self.refuse_adoption(adoption, "registering the socket failed");
            return;
        }
        let Adoption {
            stream,
            peer_addr,
            handler,
            transport,
            limits,
            max_in_flight,
            handler_type,
            listener,
            connecting,
        } = adoption;
        let id = SessionId::next();
        let session = Session::new(SessionParts {
            id,
            peer_addr,
            local_addr: stream.local_addr().ok(),
            route: Route::Loop {
                key,
                owner: Arc::clone(&self.shared),
            },
            max_in_flight,
            handler_type,
            transport: transport.kind(),
        });
        let conn = Connection::with_transport(&limits, Phase::Connecting, self.now, transport);
        self.sessions.insert(SessionEntry {
            stream,
            session,
            handler,
            conn,
            limits,
            dirty: false,
            listener,
        });
        self.shared.stats.sessions.fetch_add(1, Ordering::Relaxed);
        if connecting {
            self.timers.push(
                self.now + self.config.connect_timeout,
                TimerKind::ConnectTimeout { key, id },
            );
        } else {
            self.established(key);
        }
    }

    /// The TCP connection is up: the session opens now, or its transport's handshake
    /// starts (bounded by the handshake timeout).
    fn established(&mut self, key: usize) {
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        if entry.conn.established(self.now) {
            self.opened(key);
            return;
        }
        #[cfg(feature = "websocket")]
        if let Some(timeout) = entry.conn.handshake_timeout() {
            let id = entry.session.id();
            self.timers
                .push(self.now + timeout, TimerKind::HandshakeTimeout { key, id });
        }
        if entry.conn.has_output() {
            self.mark_dirty(key); // a client's upgrade request
        }
    }

    /// An adoption this loop cannot take: its slot goes back, and an outgoing connect
    /// hears why.
    pub(super) fn refuse_adoption(&mut self, adoption: Adoption, why: &str) {
        if let Some(listener) = &adoption.listener {
            listener.release_slot();
        }
        if let (true, Some(mut handler)) = (adoption.connecting, adoption.handler) {
            let error = io::Error::other(why.to_owned());
            self.guard_sessionless(Hook::OnConnectFailed, adoption.peer_addr, || {
                handler.on_connect_failed(&error);
            });
            self.guard_sessionless(Hook::Drop, adoption.peer_addr, move || drop(handler));
        }
    }

    /// The session became usable: start its idle clock and tell the handler.
    pub(super) fn opened(&mut self, key: usize) {
        self.arm_idle_sweep();
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        entry.conn.open(self.now);
        debug!(
            "session {} connected ({})",
            entry.session.id(),
            entry.session.peer_addr()
        );
        if self.run_hook(key, Hook::OnConnected, |h, s| h.on_connected(s))
            && self.sessions.get(key).is_some_and(|e| e.conn.has_output())
        {
            self.mark_dirty(key);
        }
    }

    /// Checks an outgoing connect; returns whether the session is now connected (open, or
    /// in its transport's handshake).
    fn finish_connect(&mut self, key: usize) -> bool {
        let Some(entry) = self.sessions.get_mut(key) else {
            return false;
        };
        let error = match entry.stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match entry.stream.peer_addr() {
                Ok(_) => None,
                Err(e)
                    if e.kind() == io::ErrorKind::NotConnected
                        || e.raw_os_error() == Some(libc::EINPROGRESS) =>
                {
                    return false; // still in progress: a spurious event
                }
                Err(e) => Some(e),
            },
        };
        match error {
            None => {
                self.established(key);
                self.sessions.contains(key)
            }
            Some(e) => {
                self.fail_connect(key, e);
                false
            }
        }
    }

    pub(super) fn connect_timed_out(&mut self, key: usize, id: SessionId) {
        let connecting = self
            .sessions
            .get(key)
            .is_some_and(|e| e.session.id() == id && matches!(e.conn.phase(), Phase::Connecting));
        if connecting {
            self.fail_connect(key, io::ErrorKind::TimedOut.into());
        }
    }

    pub(super) fn fail_connect(&mut self, key: usize, error: io::Error) {
        let Some(mut entry) = self.sessions.try_remove(key) else {
            return;
        };
        entry.session.mark_closed();
        let _ = self.poll.registry().deregister(&mut entry.stream);
        self.account_queue(entry.session.queued_bytes(), 0);
        self.shared.stats.sessions.fetch_sub(1, Ordering::Relaxed);
        let peer = entry.session.peer_addr();
        debug!("connect to {peer} failed: {error}");
        let Some(mut handler) = entry.handler else {
            return;
        };
        self.guard_sessionless(Hook::OnConnectFailed, peer, || {
            handler.on_connect_failed(&error);
        });
        self.guard_sessionless(Hook::Drop, peer, move || drop(handler));
    }

    /// Starts closing: flush first if anything is queued (bounded by the linger time).
    pub(super) fn begin_close(&mut self, key: usize, reason: DisconnectReason) {
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        entry.session.mark_closed();
        #[cfg(feature = "websocket")]
        entry.conn.queue_close_for(&reason);
        match entry.conn.phase() {
            Phase::Closing(_) => {}
            Phase::Connecting => {
                self.fail_connect(key, io::Error::other(reason.to_string()));
            }
            // Nothing was said yet: a refused connection needs no goodbye.
            Phase::Handshaking => self.close(key, reason),
            Phase::Open if !entry.conn.has_output() => self.close(key, reason),
            Phase::Open => {
                let id = entry.session.id();
                entry.conn.begin_closing(reason);
                self.timers.push(
                    self.now + self.config.linger,
                    TimerKind::LingerExpired { key, id },
                );
                self.mark_dirty(key);
            }
        }
    }

    pub(super) fn linger_expired(&mut self, key: usize, id: SessionId) {
        let closing = self
            .sessions
            .get(key)
            .is_some_and(|e| e.session.id() == id && matches!(e.conn.phase(), Phase::Closing(_)));
        if closing {
            self.close_with_pending_reason(key);
        }
    }

    pub(super) fn close_with_pending_reason(&mut self, key: usize) {
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        let reason = entry
            .conn
            .take_closing_reason()
            .unwrap_or(DisconnectReason::Local);
        self.close(key, reason);
    }

    /// Closes at once: the socket, its queues and its slot are released before the handler
    /// hears about it. A client still in its WebSocket handshake fails its connect instead.
    pub(super) fn close(&mut self, key: usize, reason: DisconnectReason) {
        #[cfg(feature = "websocket")]
        if self
            .sessions
            .get(key)
            .is_some_and(|e| e.conn.is_client_handshake())
        {
            self.fail_connect(key, io::Error::other(reason.to_string()));
            return;
        }
        let Some(mut entry) = self.sessions.try_remove(key) else {
            return;
        };
        entry.session.mark_closed();
        #[cfg(feature = "websocket")]
        if let Some(words) = entry.conn.last_words(&reason) {
            // Best effort, one non-blocking write: the close frame a WebSocket peer is owed.
            let _ = std::io::Write::write(&mut entry.stream, &words);
        }
        let _ = self.poll.registry().deregister(&mut entry.stream);
        if let Some(listener) = &entry.listener {
            listener.release_slot();
        }
        self.account_queue(entry.session.queued_bytes(), 0);
        entry.session.publish_queued(0);
        let stats = &self.shared.stats;
        stats.sessions.fetch_sub(1, Ordering::Relaxed);
        stats.count_disconnect(reason.kind());
        let id = entry.session.id();
        let peer = entry.session.peer_addr();
        match reason.kind() {
            DisconnectKind::Panicked => error!("session {id} ({peer}) closed: {reason}"),
            // Silent, like an idle session: a browser's unused spare connection looks so.
            DisconnectKind::Handshake
                if matches!(reason, DisconnectReason::Handshake { status: 408, .. }) =>
            {
                info!("session {id} ({peer}) closed: {reason}")
            }
            // The peer broke the rules or could not keep up: worth an operator's attention.
            DisconnectKind::Framing
            | DisconnectKind::PeerClosedMidFrame
            | DisconnectKind::Handler
            | DisconnectKind::SlowReader
            | DisconnectKind::SendQueueOverflow
            | DisconnectKind::RateLimited
            | DisconnectKind::WebSocket
            | DisconnectKind::Handshake => warn!("session {id} ({peer}) closed: {reason}"),
            DisconnectKind::IdleTimeout => info!("session {id} ({peer}) closed: {reason}"),
            // Ordinary ends of a connection, resets included.
            _ => debug!("session {id} ({peer}) closed: {reason}"),
        }
        let SessionEntry {
            stream,
            session,
            handler,
            conn,
            ..
        } = entry;
        drop((stream, conn));
        let Some(mut handler) = handler else {
            return; // no hook ran (a WebSocket handshake that never upgraded)
        };
        if let Err(message) = guard::catch(|| handler.on_disconnected(&session, &reason)) {
            self.report_late_panic(id, peer, Hook::OnDisconnected, &message);
        }
        if let Err(message) = guard::catch(move || drop(handler)) {
            self.report_late_panic(id, peer, Hook::Drop, &message);
        }
    }

    /// Runs a hook of session `key` through the guard. A panic closes the session with
    /// [`DisconnectReason::Panicked`]. Returns whether the session is still there.
    pub(super) fn run_hook(
        &mut self,
        key: usize,
        hook: Hook,
        f: impl FnOnce(&mut dyn SessionHandler, &Session),
    ) -> bool {
        let Some(entry) = self.sessions.get_mut(key) else {
            return false;
        };
        let SessionEntry {
            handler, session, ..
        } = entry;
        let Some(handler) = handler else {
            return true; // no handler yet: nothing to run
        };
        match guard::catch(|| f(handler.as_mut(), session)) {
            Ok(()) => self.sessions.contains(key),
            Err(message) => {
                self.hook_panicked(key, hook, message);
                false
            }
        }
    }

    pub(super) fn hook_panicked(&mut self, key: usize, hook: Hook, message: String) {
        self.shared
            .stats
            .hook_panics
            .fetch_add(1, Ordering::Relaxed);
        if let Some(entry) = self.sessions.get_mut(key) {
            entry.conn.discard_output();
        }
        self.close(key, DisconnectReason::Panicked { hook, message });
    }

    /// A hook that runs after its session is gone panicked: nothing left to close.
    fn report_late_panic(&self, id: SessionId, peer: SocketAddr, hook: Hook, message: &str) {
        self.shared
            .stats
            .hook_panics
            .fetch_add(1, Ordering::Relaxed);
        error!("session {id} ({peer}): {hook} panicked: {message}");
    }

    /// A hook with no session (a failed connect) through the guard: a panic is logged.
    fn guard_sessionless(&self, hook: Hook, peer: SocketAddr, f: impl FnOnce()) {
        if let Err(message) = guard::catch(f) {
            self.shared
                .stats
                .hook_panics
                .fetch_add(1, Ordering::Relaxed);
            error!("connection to {peer}: {hook} panicked: {message}");
        }
    }

    pub(super) fn call_with_handler(&mut self, key: usize, id: SessionId, call: HandlerCall) {
        if !self.session_matches(key, id) {
            debug!("session {id} closed before a with_handler call reached it; not run");
            return;
        }
        self.run_hook(key, Hook::WithHandler, |handler, session| {
            call(handler, session)
        });
    }

    /// Enough [`InFlight`](crate::InFlight) guards were dropped.
    pub(super) fn resume_after_in_flight(&mut self, key: usize, id: SessionId) {
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        if entry.session.id() != id || entry.session.over_in_flight_limit() {
            return;
        }
        if entry.conn.unblock(Blocked::IN_FLIGHT) {
            self.still_readable.push((key, id));
        }
    }

    /// A throttled session's buckets have refilled.
    pub(super) fn unthrottle(&mut self, key: usize, id: SessionId) {
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        if entry.session.id() == id && entry.conn.unblock(Blocked::THROTTLED) {
            self.still_readable.push((key, id));
        }
    }

    /// A session's backlog went over the soft cap a stall timeout ago: if it is still over
    /// (it never drained below since), the peer reads too slowly.
    pub(super) fn check_stall(&mut self, key: usize, id: SessionId) {
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        if entry.session.id() != id {
            return;
        }
        if let Some(reason) = entry.conn.stalled(&entry.limits, self.now) {
            entry.conn.discard_output();
            self.close(key, reason);
        } else if let Some(since) = entry.conn.over_cap_since() {
            // It drained and went over again since: judge this episode on its own clock.
            let at = since + entry.limits.send_stall_timeout;
            self.timers.push(at, TimerKind::StallCheck { key, id });
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every open session costs one of these in its loop's slab: 5,000 idle sessions must
    /// stay within a few MiB. The transport seam added one pointer (the WebSocket state is
    /// boxed) and the receive buffer's cursors shrank to `u32` to pay for it and for the
    /// decoded cursor, so a TCP session is no larger than before the seam.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_session_entry_stays_small() {
        let size = std::mem::size_of::<super::SessionEntry>();
        assert!(size <= 256, "SessionEntry grew to {size} bytes");
    }
}
