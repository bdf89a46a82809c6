//! Bytes between sockets and connections: the read path (socket -> connection (and its
//! transport) -> frames -> `on_packet`) and the write path (queued packets -> one `writev`
//! per session per iteration), and the end of a closing connection: flushed, then closed,
//! or (a transport whose peer may still be sending) half-closed and drained first.

use super::event_loop::{EventLoop, TimerKind};
use crate::connection::{Blocked, Input, Next};
use crate::guard;
use crate::session::{DisconnectReason, Hook, SessionId};
use bytes::Bytes;
use log::{info, warn};
use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Reads per readiness event before the session yields to the others (it is revisited next
/// iteration), so one fast sender cannot starve its loop.
const READS_PER_EVENT: usize = 16;

/// When a read pass may stop.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadUntil {
    /// At a read that returns fewer bytes than asked: the receive queue was drained and any
    /// later data raises a new edge-triggered event (what tokio does on Linux).
    ShortRead,
    /// Only at `WouldBlock` or EOF: the event also reported the peer's FIN (which raises
    /// no further event), or this is a revisit whose edge may already have passed.
    WouldBlock,
}

impl EventLoop {
    pub(super) fn read(&mut self, key: usize, until: ReadUntil) {
        if self.sessions.get(key).is_some_and(|e| e.conn.is_draining()) {
            self.drain_input(key);
            return;
        }
        for _ in 0..READS_PER_EVENT {
            let Some(entry) = self.sessions.get_mut(key) else {
                return;
            };
            // Not reading for a session that is closing (even if the handler's disconnect()
            // is still on its way as a command), nor one whose reading is paused: the
            // pause's end schedules a read.
            if !entry.conn.wants_read() || !entry.session.is_connected() {
                return;
            }
            let space = entry.conn.read_space(&mut self.spare_recv);
            let asked = space.len();
            if asked == 0 {
                return; // a max-size frame is buffered and not yet delivered
            }
            self.iteration.read_calls += 1;
            match entry.stream.read(space) {
                Ok(0) => {
                    let reason = entry.conn.end_of_input();
                    self.close(key, reason);
                    return;
                }
                Ok(n) => {
                    let input = entry.conn.received(n, &entry.limits, self.now);
                    self.iteration.bytes_in += n as u64;
                    if !self.on_input(key, input) {
                        return;
                    }
                    if n < asked && until == ReadUntil::ShortRead {
                        // The socket had less than we asked for, so it is empty now; new
                        // data raises a new edge. Skips the read that would only say
                        // WouldBlock (half of all reads under chat load).
                        self.release_recv(key);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    entry.conn.release_recv(&mut self.spare_recv);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(key, DisconnectReason::Io(e));
                    return;
                }
            }
        }
        if let Some(entry) = self.sessions.get(key) {
            self.still_readable.push((key, entry.session.id()));
        }
    }

    /// Acts on what the connection's transport made of the bytes read; returns whether the
    /// session may read on.
    pub(super) fn on_input(&mut self, key: usize, input: Input) -> bool {
        match input {
            Input::Frames => self.deliver_frames(key),
            Input::Queued { went_over } => {
                if went_over {
                    self.went_over_cap(key);
                }
                self.mark_dirty(key);
                self.deliver_frames(key)
            }
            Input::Closing => {
                self.closing_by_transport(key);
                false
            }
            Input::Close(reason) => {
                self.close(key, reason);
                false
            }
            #[cfg(feature = "websocket")]
            Input::Request(decided) => self.handshake_request(key, decided),
            #[cfg(feature = "websocket")]
            Input::Upgraded => self.upgraded(key),
            #[cfg(feature = "websocket")]
            Input::Refused(why) => {
                self.fail_connect(key, io::Error::other(why));
                false
            }
        }
    }

    /// The transport started closing on its own (the peer's close, a protocol error, a
    /// handshake answered): the game frames that came before are delivered, then the
    /// session takes no more sends; what is queued is flushed within the linger time.
    pub(super) fn closing_by_transport(&mut self, key: usize) {
        self.deliver_frames(key);
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        entry.session.mark_closed();
        let id = entry.session.id();
        self.timers.push(
            self.now + self.config.linger,
            TimerKind::LingerExpired { key, id },
        );
        self.mark_dirty(key);
    }

    /// Reads and discards until the peer closes (see `Connection::start_draining`); the
    /// linger timer bounds how long.
    fn drain_input(&mut self, key: usize) {
        let mut scratch = [0u8; 4096];
        for _ in 0..READS_PER_EVENT {
            let Some(entry) = self.sessions.get_mut(key) else {
                return;
            };
            self.iteration.read_calls += 1;
            match entry.stream.read(&mut scratch) {
                Ok(n) if n > 0 => self.iteration.bytes_in += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // End of input, or a reset: the peer is done.
                Ok(_) | Err(_) => {
                    self.close_with_pending_reason(key);
                    return;
                }
            }
        }
        // Out of budget: the session is revisited next iteration.
        if let Some(entry) = self.sessions.get(key) {
            self.still_readable.push((key, entry.session.id()));
        }
    }

    fn release_recv(&mut self, key: usize) {
        if let Some(entry) = self.sessions.get_mut(key) {
            entry.conn.release_recv(&mut self.spare_recv);
        }
    }

    /// Sessions whose read pass was cut short, or whose reading just resumed.
    pub(super) fn continue_reads(&mut self) {
        let pending = std::mem::take(&mut self.still_readable);
        for (key, id) in pending {
            if self.session_matches(key, id) {
                // Deliver what a pause left buffered, then read on to `WouldBlock`: the
                // socket's edge may have passed while we were not reading.
                if self.deliver_frames(key) {
                    self.read(key, ReadUntil::WouldBlock);
                }
            }
        }
    }

    /// Hands every complete frame in the buffer to the handler, in order, as the rate
    /// limit and the in-flight limit allow. Returns whether the session may read on.
    fn deliver_frames(&mut self, key: usize) -> bool {
        loop {
            let Some(entry) = self.sessions.get_mut(key) else {
                return false;
            };
            let id = entry.session.id();
            let next = match entry.conn.next_frame(&entry.limits, self.now) {
                Ok(next) => next,
                Err(reason) => {
                    self.close(key, reason);
                    return false;
                }
            };
            match next {
                Next::Incomplete | Next::Blocked => return true,
                Next::Refused {
                    resume_at,
                    started,
                    episode: _,
                } => {
                    self.iteration.rate_limited += 1;
                    if started {
                        self.shared
                            .stats
                            .rate_limit_episodes
                            .fetch_add(1, Ordering::Relaxed);
                        let action = if resume_at.is_some() {
                            "throttling it"
                        } else {
                            "dropping the excess"
                        };
                        warn!(
                            "session {id} ({}) is over its rate limit: {action}",
                            entry.session.peer_addr()
                        );
                    }
                    if let Some(at) = resume_at {
                        self.timers.push(at, TimerKind::Unthrottle { key, id });
                        return true;
                    }
                }
                Next::Frame { len, ended } => {
                    if let Some(episode) = ended {
                        info!(
                            "session {id} ({}) is back under its rate limit: {} packets held back or dropped over {:?}",
                            entry.session.peer_addr(),
                            episode.refused,
                            episode.last_refusal.saturating_duration_since(episode.started)
                        );
                    }
                    let frame = entry.conn.frame(len);
                    let Some(handler) = entry.handler.as_mut() else {
                        return false; // not upgraded: no frames yet
                    };
                    let session = &entry.session;
                    let result = guard::catch(|| handler.on_packet(session, frame));
                    entry.conn.consume(len);
                    self.iteration.packets_in += 1;
                    match result {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            self.close(key, DisconnectReason::Handler(e));
                            return false;
                        }
                        Err(message) => {
                            self.hook_panicked(key, Hook::OnPacket, message);
                            return false;
                        }
                    }
                    let Some(entry) = self.sessions.get_mut(key) else {
                        return false;
                    };
                    if !entry.session.is_connected() {
                        return false; // the handler called disconnect(): deliver nothing more
                    }
                    if entry.session.over_in_flight_limit() {
                        entry.conn.block(Blocked::IN_FLIGHT);
                        self.shared
                            .stats
                            .read_pauses
                            .fetch_add(1, Ordering::Relaxed);
                        return true;
                    }
                }
            }
        }
    }

    // ---- writing ---------------------------------------------------------------------

    pub(super) fn enqueue(&mut self, key: usize, id: SessionId, packet: Bytes) {
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        if entry.session.id() != id {
            return; // the slot was reused: that session is gone
        }
        let before = entry.session.queued_bytes();
        let result = entry.conn.queue(packet, &entry.limits, self.now);
        let after = entry.conn.queued_bytes();
        entry.session.publish_queued(after);
        self.account_queue(before, after);
        match result {
            Ok(went_over) => {
                if went_over {
                    self.went_over_cap(key);
                }
                self.mark_dirty(key);
            }
            Err(reason) => self.close(key, reason),
        }
    }

    /// A session's backlog just went over the soft cap: reading paused; judge it after the
    /// stall timeout.
    fn went_over_cap(&mut self, key: usize) {
        let Some(entry) = self.sessions.get(key) else {
            return;
        };
        let (id, stall) = (entry.session.id(), entry.limits.send_stall_timeout);
        self.shared
            .stats
            .read_pauses
            .fetch_add(1, Ordering::Relaxed);
        self.timers
            .push(self.now + stall, TimerKind::StallCheck { key, id });
    }

    /// Keeps the loop's total of queued bytes in step with one session's change.
    pub(super) fn account_queue(&mut self, before: usize, after: usize) {
        self.queued_bytes = (self.queued_bytes + after).saturating_sub(before);
    }

    pub(super) fn mark_dirty(&mut self, key: usize) {
        if let Some(entry) = self.sessions.get_mut(key) {
            if !entry.dirty {
                entry.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    pub(super) fn flush_dirty(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let calls_before = self.iteration.write_calls;
        let started = Instant::now();
        let dirty = std::mem::take(&mut self.dirty);
        for &key in &dirty {
            self.flush(key);
        }
        let calls = self.iteration.write_calls - calls_before;
        if calls > 0 {
            self.shared.record_write_cost(started.elapsed(), calls);
        }
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    fn flush(&mut self, key: usize) {
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        entry.dirty = false;
        if matches!(entry.conn.phase(), crate::connection::Phase::Connecting)
            || !entry.conn.has_output()
        {
            return;
        }
        let before = entry.session.queued_bytes();
        let written = entry.conn.write_to(&mut entry.stream, &entry.limits);
        let after = entry.conn.queued_bytes();
        entry.session.publish_queued(after);
        let id = entry.session.id();
        self.account_queue(before, after);
        let written = match written {
            Ok(written) => written,
            Err(e) => {
                self.close(key, DisconnectReason::Io(e));
                return;
            }
        };
        let flushed = written.flushed;
        self.iteration.write_calls += flushed.calls as u64;
        self.iteration.bytes_out += flushed.bytes as u64;
        self.iteration.packets_out += flushed.packets as u64;
        if written.resume_reading {
            self.still_readable.push((key, id));
        }
        if flushed.bytes > 0
            && !self.run_hook(key, Hook::OnSend, |h, s| h.on_send(s, flushed.bytes))
        {
            return;
        }
        let closing_and_drained = self.sessions.get(key).is_some_and(|e| {
            !e.conn.has_output() && matches!(e.conn.phase(), crate::connection::Phase::Closing(_))
        });
        if closing_and_drained {
            self.finish_closing(key);
        }
    }

    /// Everything a closing session queued is written: close, or first shut the write
    /// side and drain what the peer still sends (see `Connection::start_draining`).
    fn finish_closing(&mut self, key: usize) {
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        if !entry.conn.start_draining() {
            self.close_with_pending_reason(key);
            return;
        }
        if entry.stream.shutdown(std::net::Shutdown::Write).is_err() {
            self.close_with_pending_reason(key);
            return;
        }
        // Input may be waiting already, and its edge has passed.
        self.drain_input(key);
    }
}
