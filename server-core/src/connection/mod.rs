//! The per-connection state machine, free of I/O: bytes and `now` in, frames, bytes to
//! write and decisions out. The event loop owns the socket and calls in; nothing here
//! knows about mio, threads or handlers, so all of it is tested with plain byte slices.
//!
//! ```text
//!   socket bytes ──► read_space / received ──► next_frame ──► Frame(len) ──► on_packet
//!                                               │
//!                                               ├─ Incomplete (need more bytes)
//!                                               ├─ Refused (rate limit: throttle or drop)
//!                                               └─ Err(reason) (bad bytes: close)
//!
//!   Session::send ──► queue ──► write_to(writer) ──► Flushed { bytes, packets, .. }
//!                      │
//!                      └─ over the soft cap: reads pause; still over after the stall
//!                         timeout: stalled() says close; over the hard cap: close now
//! ```
//!
//! Reading pauses (and TCP flow control slows the peer) while any of these holds: the rate
//! limiter is throttling, the session has too much unfinished work in flight (the event
//! loop tracks [`InFlight`](crate::InFlight) guards), or its own send backlog is above the
//! cap. Each cause is a bit in [`Blocked`]; reading resumes when the last one clears.
//!
//! A transport (`crate::transport`) sits between the socket bytes and the frame stream:
//! TCP is the identity; WebSocket (`websocket.rs` here, the codec in
//! `transport/websocket/`) adds a handshake phase before [`Phase::Open`], decodes the raw
//! bytes of [`received`](Connection::received) into the game stream in place, answers
//! pings and closes, and seals the packets of one flush into one binary message. What it
//! asks of the event loop comes back as an [`Input`].

mod rate_limit;
mod recv_buffer;
mod send_queue;
#[cfg(feature = "websocket")]
mod websocket;

pub(crate) use rate_limit::Episode;
pub use rate_limit::{Excess, RateLimit};

use crate::frame::check_frame;
use crate::session::DisconnectReason;
use crate::transport::TransportState;
use bytes::Bytes;
use rate_limit::{Admission, Limiter};
use recv_buffer::RecvBuffer;
pub(crate) use send_queue::Flushed;
#[cfg(feature = "websocket")]
pub(crate) use send_queue::OpenMessage;
use send_queue::SendQueue;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// What limits a connection: the service's sizes and the listener's rate limit.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_packet_size: usize,
    pub(crate) recv_buffer_initial: usize,
    /// Most a receive buffer grows to: the max packet size, plus what a transport needs
    /// (a WebSocket's undecoded tail, or its handshake head).
    pub(crate) recv_buffer_max: usize,
    /// Soft cap: above it reads pause, and staying above it for `send_stall_timeout` closes.
    pub(crate) max_send_queue: usize,
    /// Hard cap: a push past it closes at once (the memory bound).
    pub(crate) hard_send_queue: usize,
    pub(crate) send_stall_timeout: Duration,
    pub(crate) rate_limit: Option<RateLimit>,
}

impl Limits {
    /// The hard cap is four soft caps: room for a burst (one large batch) on top of a full
    /// backlog, while the memory one session can pin stays bounded.
    pub(crate) fn hard_cap(max_send_queue: usize) -> usize {
        max_send_queue.saturating_mul(4)
    }
}

/// Where a connection is in its life.
#[derive(Debug)]
pub(crate) enum Phase {
    /// Outgoing connect in flight.
    Connecting,
    /// Connected, the transport's handshake (a WebSocket upgrade) in progress: no hooks
    /// have run yet.
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    Handshaking,
    Open,
    /// Flushing what is queued, then closing with this reason; no more reads. Boxed: every
    /// connection carries a `Phase`, few ever close this way.
    Closing(Box<DisconnectReason>),
}

/// Why reading is paused: one bit per cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Blocked(u8);

impl Blocked {
    /// The rate limiter refused a packet; a timer lifts this when the buckets refill.
    pub(crate) const THROTTLED: Self = Self(1);
    /// Too many [`InFlight`](crate::InFlight) guards are alive.
    pub(crate) const IN_FLIGHT: Self = Self(2);
    /// The session's own send backlog is above the soft cap.
    pub(crate) const SEND_BACKLOG: Self = Self(4);
}

/// The next step of the read path.
#[derive(Debug, PartialEq)]
pub(crate) enum Next {
    /// A whole frame of `len` bytes is at the front: see [`Connection::frame`]. If an
    /// episode of rate-limit excess ended with it, that episode comes along (for the log).
    Frame { len: usize, ended: Option<Episode> },
    /// Need more bytes.
    Incomplete,
    /// Reading is paused (see [`Blocked`]); frames stay buffered.
    Blocked,
    /// Over the rate limit. Throttled: the frame stays buffered and reading pauses until
    /// `resume_at`. Dropped: the frame was discarded. `started` marks the first refusal of
    /// an episode, which is logged once.
    Refused {
        resume_at: Option<Instant>,
        started: bool,
        episode: Episode,
    },
}

/// What the transport made of bytes received, for the event loop to act on.
#[derive(Debug)]
#[must_use]
#[cfg_attr(not(feature = "websocket"), allow(dead_code))]
pub(crate) enum Input {
    /// Game-stream bytes may be buffered: deliver frames, read on.
    Frames,
    /// The transport queued bytes of its own (a pong): flush. `went_over`: they took the
    /// backlog over the soft cap (as [`Connection::queue`] reports).
    Queued { went_over: bool },
    /// The transport began closing ([`Phase::Closing`], a close frame queued): flush and
    /// close; game frames decoded before it may still be delivered.
    Closing,
    /// Close at once (the hard send cap was passed).
    Close(DisconnectReason),
    /// A server handshake has a complete request head (or a refusal): the event loop
    /// decides (upgrade, answer the request, refuse).
    #[cfg(feature = "websocket")]
    Request(
        Result<
            crate::transport::websocket::handshake::Handshake,
            crate::transport::websocket::handshake::HandshakeError,
        >,
    ),
    /// A client handshake was accepted: the session is open (run `on_connected`, then
    /// [`Connection::decode_pending`]).
    #[cfg(feature = "websocket")]
    Upgraded,
    /// A client handshake was refused: the connect failed, for this reason.
    #[cfg(feature = "websocket")]
    Refused(String),
}

/// One connection's buffers, limits and state.
#[derive(Debug)]
pub(crate) struct Connection {
    recv: RecvBuffer,
    send: SendQueue,
    phase: Phase,
    /// The byte codec between the socket and the frame stream.
    transport: TransportState,
    /// Last time bytes arrived, for the idle timeout.
    last_recv: Instant,
    /// `None` when the listener has no rate limit.
    limiter: Option<Limiter>,
    /// Since when the send backlog has been above the soft cap.
    over_cap_since: Option<Instant>,
    blocked: Blocked,
}

impl Connection {
    /// A TCP connection.
    #[cfg(test)]
    pub(crate) fn new(limits: &Limits, phase: Phase, now: Instant) -> Self {
        Self::with_transport(limits, phase, now, TransportState::Tcp)
    }

    pub(crate) fn with_transport(
        limits: &Limits,
        phase: Phase,
        now: Instant,
        transport: TransportState,
    ) -> Self {
        let send = SendQueue::default();
        #[cfg(feature = "websocket")]
        let (send, transport) = websocket::with_pending_request(send, transport);
        Self {
            recv: RecvBuffer::new(limits.recv_buffer_initial, limits.recv_buffer_max),
            send,
            phase,
            transport,
            last_recv: now,
            limiter: limits.rate_limit.as_ref().map(|_| Limiter::new(now)),
            over_cap_since: None,
            blocked: Blocked::default(),
        }
    }

    pub(crate) fn phase(&self) -> &Phase {
        &self.phase
    }

    pub(crate) fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open)
    }

    /// The TCP connection is up (accepted, or an outgoing connect completed). Returns true
    /// when the session is open now; false when the transport's handshake comes first
    /// ([`Phase::Handshaking`]).
    pub(crate) fn established(&mut self, now: Instant) -> bool {
        match self.transport {
            TransportState::Tcp => {
                self.open(now);
                true
            }
            #[cfg(feature = "websocket")]
            TransportState::WebSocket(_) => {
                self.phase = Phase::Handshaking;
                self.last_recv = now;
                false
            }
        }
    }

    /// The session is usable: the idle clock starts now.
    pub(crate) fn open(&mut self, now: Instant) {
        self.phase = Phase::Open;
        self.last_recv = now;
    }

    /// Stops reading and keeps `reason` for when the queue is flushed.
    pub(crate) fn begin_closing(&mut self, reason: DisconnectReason) {
        self.phase = Phase::Closing(Box::new(reason));
    }

    /// The reason kept by [`begin_closing`](Self::begin_closing), if closing.
    pub(crate) fn take_closing_reason(&mut self) -> Option<DisconnectReason> {
        match std::mem::replace(&mut self.phase, Phase::Open) {
            Phase::Closing(reason) => Some(*reason),
            other => {
                self.phase = other;
                None
            }
        }
    }

    // ---- reading ---------------------------------------------------------------------

    /// Whether the event loop should read from the socket now.
    pub(crate) fn wants_read(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Handshaking) && self.blocked == Blocked::default()
    }

    pub(crate) fn is_blocked(&self) -> bool {
        self.blocked != Blocked::default()
    }

    pub(crate) fn block(&mut self, cause: Blocked) {
        self.blocked.0 |= cause.0;
    }

    /// Lifts one cause; returns whether reading may resume now (it was blocked and no
    /// other cause is left), in which case the loop must read: the socket's readiness edge
    /// may have passed while paused.
    pub(crate) fn unblock(&mut self, cause: Blocked) -> bool {
        let was = self.blocked;
        self.blocked.0 &= !cause.0;
        was != self.blocked && self.blocked == Blocked::default()
    }

    /// Space to read socket bytes into (lent from the loop's `spare` if this connection
    /// holds no buffer). Empty only when a frame of the max size is already buffered.
    pub(crate) fn read_space(&mut self, spare: &mut Vec<u8>) -> &mut [u8] {
        self.recv.take_spare(spare);
        self.recv.free_space()
    }

    /// `n` bytes were read into [`read_space`](Self::read_space) at `now`. Over TCP they
    /// are game stream at once; a transport decodes them first and may ask for more.
    #[cfg_attr(not(feature = "websocket"), allow(unused_variables))]
    pub(crate) fn received(&mut self, n: usize, limits: &Limits, now: Instant) -> Input {
        if n > 0 {
            self.last_recv = now;
        }
        match self.transport {
            TransportState::Tcp => {
                self.recv.commit(n);
                Input::Frames
            }
            #[cfg(feature = "websocket")]
            TransportState::WebSocket(_) => {
                self.recv.commit_raw(n);
                self.ws_received(limits, now)
            }
        }
    }

    /// After a read pass: a connection with nothing buffered gives its buffer back.
    pub(crate) fn release_recv(&mut self, spare: &mut Vec<u8>) {
        self.recv.release_if_empty(spare);
    }

    /// The next step of the read path (see [`Next`]).
    ///
    /// # Errors
    /// The reason to close: a frame header that can never be valid, or sustained excess
    /// under [`Excess::Disconnect`].
    pub(crate) fn next_frame(
        &mut self,
        limits: &Limits,
        now: Instant,
    ) -> Result<Next, DisconnectReason> {
        if self.is_blocked() {
            return Ok(Next::Blocked);
        }
        let len = match check_frame(self.recv.unread(), limits.max_packet_size) {
            Ok(Some(len)) => len,
            Ok(None) => return Ok(Next::Incomplete),
            Err(e) => return Err(DisconnectReason::Framing(e)),
        };
        let (Some(limiter), Some(limit)) = (self.limiter.as_mut(), limits.rate_limit.as_ref())
        else {
            return Ok(Next::Frame { len, ended: None });
        };
        match limiter.admit(limit, len, now) {
            Admission::Admit { ended } => Ok(Next::Frame { len, ended }),
            Admission::Refuse {
                wait,
                started,
                episode,
            } => match limit.on_excess {
                Excess::Throttle => {
                    self.block(Blocked::THROTTLED);
                    Ok(Next::Refused {
                        resume_at: Some(now + wait),
                        started,
                        episode,
                    })
                }
                Excess::Disconnect { after }
                    if now.saturating_duration_since(episode.started) >= after =>
                {
                    Err(DisconnectReason::RateLimited {
                        refused: episode.refused,
                        over: now.saturating_duration_since(episode.started),
                    })
                }
                Excess::Drop | Excess::Disconnect { .. } => {
                    self.recv.consume(len);
                    Ok(Next::Refused {
                        resume_at: None,
                        started,
                        episode,
                    })
                }
            },
        }
    }

    /// The frame [`next_frame`](Self::next_frame) found (`len` from `Next::Frame`).
    pub(crate) fn frame(&self, len: usize) -> &[u8] {
        &self.recv.unread()[..len]
    }

    /// The frame was handled.
    pub(crate) fn consume(&mut self, len: usize) {
        self.recv.consume(len);
    }

    /// The reason for a clean end of input from the peer.
    pub(crate) fn end_of_input(&self) -> DisconnectReason {
        match self.recv.buffered() {
            0 => DisconnectReason::PeerClosed,
            buffered => DisconnectReason::PeerClosedMidFrame { buffered },
        }
    }

    /// When the peer last sent bytes; `None` while reading is paused by us (a paused peer
    /// is not idle, we are just not listening).
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        (self.is_open() && !self.is_blocked()).then_some(self.last_recv)
    }

    // ---- writing ---------------------------------------------------------------------

    /// Queues `packet`. Returns `Ok(true)` when this push took the backlog over the soft
    /// cap (reads pause; the loop should check for a stall after the stall timeout).
    ///
    /// # Errors
    /// The hard cap would be passed: close now (the queue is cleared so its memory goes
    /// back at once).
    pub(crate) fn queue(
        &mut self,
        packet: Bytes,
        limits: &Limits,
        now: Instant,
    ) -> Result<bool, DisconnectReason> {
        let adding = packet.len();
        let pushed = match &mut self.transport {
            TransportState::Tcp => self.send.push(packet, limits.hard_send_queue),
            #[cfg(feature = "websocket")]
            TransportState::WebSocket(ws) => {
                if ws.close_queued || !matches!(self.phase, Phase::Open | Phase::Closing(_)) {
                    return Ok(false); // nothing may follow a close frame
                }
                self.send
                    .push_in_message(packet, limits.hard_send_queue, &mut ws.open)
            }
        };
        if let Err(overflow) = pushed {
            self.discard_output();
            return Err(DisconnectReason::SendQueueOverflow {
                queued: overflow.queued,
                adding,
                limit: limits.hard_send_queue,
            });
        }
        Ok(self.check_soft_cap(limits, now))
    }

    /// After a push: notes when the backlog first went over the soft cap (reads pause);
    /// true on that push.
    fn check_soft_cap(&mut self, limits: &Limits, now: Instant) -> bool {
        if self.send.queued_bytes() > limits.max_send_queue && self.over_cap_since.is_none() {
            self.over_cap_since = Some(now);
            self.block(Blocked::SEND_BACKLOG);
            return true;
        }
        false
    }

    pub(crate) fn has_output(&self) -> bool {
        !self.send.is_empty()
    }

    pub(crate) fn queued_bytes(&self) -> usize {
        self.send.queued_bytes()
    }

    /// Drops everything queued (the connection is going away).
    pub(crate) fn discard_output(&mut self) {
        self.send.clear();
        self.over_cap_since = None;
        #[cfg(feature = "websocket")]
        if let TransportState::WebSocket(ws) = &mut self.transport {
            ws.open = None;
        }
    }

    /// Writes what the writer takes. `resume_reading` in the result says a backlog pause
    /// just ended (the loop must read).
    ///
    /// # Errors
    /// The writer's error other than `WouldBlock`/`Interrupted`; what was not written stays.
    pub(crate) fn write_to(
        &mut self,
        out: &mut impl Write,
        limits: &Limits,
    ) -> io::Result<Written> {
        #[cfg(feature = "websocket")]
        self.seal_message();
        let flushed = self.send.write_to(out)?;
        #[cfg(feature = "websocket")]
        if let TransportState::WebSocket(ws) = &mut self.transport {
            ws.mid_message = !self.send.at_unit_boundary();
        }
        let queued = self.send.queued_bytes();
        if queued <= limits.max_send_queue {
            self.over_cap_since = None;
        }
        // Resume reading only once half the cap has drained, so a reader hovering at the
        // cap does not flap between paused and reading on every write.
        let resume_reading =
            queued <= limits.max_send_queue / 2 && self.unblock(Blocked::SEND_BACKLOG);
        Ok(Written {
            flushed,
            resume_reading,
        })
    }

    /// After the last bytes of a closing connection are written: whether to shut the write
    /// side down and read (discarding) until the peer closes, instead of closing at once.
    /// A WebSocket peer may still be sending (its close reply, the rest of an oversized
    /// request head); closing with those unread makes the kernel reset the connection,
    /// which can destroy our last bytes before the peer reads them. TCP closes at once.
    pub(crate) fn start_draining(&mut self) -> bool {
        match &mut self.transport {
            TransportState::Tcp => false,
            #[cfg(feature = "websocket")]
            TransportState::WebSocket(ws) => {
                let start = !ws.draining;
                ws.draining = true;
                self.recv.clear();
                start
            }
        }
    }

    pub(crate) fn is_draining(&self) -> bool {
        match &self.transport {
            TransportState::Tcp => false,
            #[cfg(feature = "websocket")]
            TransportState::WebSocket(ws) => ws.draining,
        }
    }

    /// Since when the backlog has been above the soft cap, if it is.
    pub(crate) fn over_cap_since(&self) -> Option<Instant> {
        self.over_cap_since
    }

    /// The reason to close if the backlog has stayed above the soft cap for the stall
    /// timeout: the peer really reads too slowly, as opposed to one large burst.
    pub(crate) fn stalled(&self, limits: &Limits, now: Instant) -> Option<DisconnectReason> {
        let since = self.over_cap_since?;
        let stalled = now.saturating_duration_since(since);
        (stalled >= limits.send_stall_timeout).then(|| DisconnectReason::SlowReader {
            queued: self.send.queued_bytes(),
            limit: limits.max_send_queue,
            stalled,
        })
    }
}

/// What one [`Connection::write_to`] did.
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) flushed: Flushed,
    pub(crate) resume_reading: bool,
}

#[cfg(test)]
mod tests;
