//! Why a session ended, and the same reasons as plain labels for counters.

use super::{HandlerError, Hook};
use crate::frame::FrameError;
use std::io;
use std::time::Duration;
use thiserror::Error;

/// Why a session ended, passed to [`SessionHandler::on_disconnected`](crate::SessionHandler::on_disconnected)
/// and logged.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The peer closed the connection between frames.
    #[error("closed by peer")]
    PeerClosed,
    /// The peer closed the connection in the middle of a frame.
    #[error("closed by peer with {buffered} bytes of an incomplete frame buffered")]
    PeerClosedMidFrame {
        /// Bytes of the unfinished frame.
        buffered: usize,
    },
    /// The peer sent a frame header that can never be valid.
    #[error("bad frame: {0}")]
    Framing(#[from] FrameError),
    /// The handler rejected a packet.
    #[error("handler error: {0}")]
    Handler(HandlerError),
    /// A hook of this session's handler panicked (the panic is contained; see
    /// [`SessionHandler`](crate::SessionHandler)).
    #[error("{hook} panicked: {message}")]
    Panicked {
        /// Which hook.
        hook: Hook,
        /// The panic's message (`"(non-string panic payload)"` if it had none).
        message: String,
    },
    /// The send backlog stayed above the soft cap
    /// ([`ServiceBuilder::max_send_queue`](crate::ServiceBuilder::max_send_queue)) for the
    /// stall timeout: the peer reads too slowly.
    #[error("slow reader: send backlog of {queued} bytes stayed above the {limit}-byte limit for {stalled:?}")]
    SlowReader {
        /// Bytes queued when the session was closed.
        queued: usize,
        /// The soft cap.
        limit: usize,
        /// How long the backlog had been above it.
        stalled: Duration,
    },
    /// One more packet would have passed the hard cap (four times the soft cap): closed at
    /// once to bound memory.
    #[error("send queue overflow: {queued} bytes queued, adding {adding} would pass the {limit}-byte hard limit")]
    SendQueueOverflow {
        /// Bytes already queued.
        queued: usize,
        /// Size of the packet that did not fit.
        adding: usize,
        /// The hard cap.
        limit: usize,
    },
    /// The peer kept sending faster than its [`RateLimit`](crate::RateLimit) allows, under
    /// [`Excess::Disconnect`](crate::Excess::Disconnect).
    #[error("rate limited: {refused} packets over the limit in {over:?}")]
    RateLimited {
        /// Packets refused in this episode of excess.
        refused: u64,
        /// How long the excess lasted.
        over: Duration,
    },
    /// Nothing was received for the configured idle timeout.
    #[error("idle for more than {0:?}")]
    IdleTimeout(Duration),
    /// [`Session::disconnect`](crate::Session::disconnect) was called.
    #[error("disconnected locally")]
    Local,
    /// The service is shutting down.
    #[error("service shutting down")]
    Shutdown,
    /// The I/O thread that owned the session stopped because of a fault inside
    /// server-core itself; the socket is closed and the thread's other work moved on.
    #[error("its I/O thread stopped after an internal fault")]
    LoopDied,
    /// A socket error.
    #[error("i/o error: {0}")]
    Io(#[source] io::Error),
    /// The peer broke the WebSocket protocol (an unmasked or text frame, reserved bits, a
    /// message over the size limit, ...); a close frame with `code` was sent.
    #[error("websocket protocol error, closed with code {code}: {reason}")]
    WebSocket {
        /// The close code sent (RFC 6455 section 7.4.1: 1002 protocol error, 1003
        /// unaccepted data, 1007 bad UTF-8, 1009 too big).
        code: u16,
        /// What the peer did.
        reason: String,
    },
    /// The peer closed the WebSocket with a close frame (answered with one).
    #[error("closed by peer with a websocket close frame ({})", close_text(*.code, .reason))]
    WebSocketClosed {
        /// The peer's close code; `None` when its close frame carried none.
        code: Option<u16>,
        /// The peer's reason text (possibly empty).
        reason: String,
    },
    /// The WebSocket upgrade was refused, or did not complete in time, and answered with
    /// this HTTP status; no handler was made.
    #[error("websocket handshake refused with HTTP {status}: {reason}")]
    Handshake {
        /// The HTTP status sent (400, 405, 408, 426, 431, or 500 when the factory
        /// panicked).
        status: u16,
        /// Why.
        reason: String,
    },
    /// A plain HTTP request on a WebSocket port was answered by the `http` hook (a page, a
    /// 404); no handler was made.
    #[error("plain HTTP request for {path} answered {status}")]
    HttpServed {
        /// The status sent.
        status: u16,
        /// The path asked for.
        path: String,
    },
}

fn close_text(code: Option<u16>, reason: &str) -> String {
    match (code, reason) {
        (None, _) => "no code".to_owned(),
        (Some(code), "") => format!("code {code}"),
        (Some(code), reason) => format!("code {code}: {reason}"),
    }
}

impl DisconnectReason {
    /// The reason's kind, for counting ([`ServiceStats::disconnects`](crate::ServiceStats::disconnects)).
    #[must_use]
    pub fn kind(&self) -> DisconnectKind {
        match self {
            DisconnectReason::PeerClosed => DisconnectKind::PeerClosed,
            DisconnectReason::PeerClosedMidFrame { .. } => DisconnectKind::PeerClosedMidFrame,
            DisconnectReason::Framing(_) => DisconnectKind::Framing,
            DisconnectReason::Handler(_) => DisconnectKind::Handler,
            DisconnectReason::Panicked { .. } => DisconnectKind::Panicked,
            DisconnectReason::SlowReader { .. } => DisconnectKind::SlowReader,
            DisconnectReason::SendQueueOverflow { .. } => DisconnectKind::SendQueueOverflow,
            DisconnectReason::RateLimited { .. } => DisconnectKind::RateLimited,
            DisconnectReason::IdleTimeout(_) => DisconnectKind::IdleTimeout,
            DisconnectReason::Local => DisconnectKind::Local,
            DisconnectReason::Shutdown => DisconnectKind::Shutdown,
            DisconnectReason::LoopDied => DisconnectKind::LoopDied,
            DisconnectReason::Io(_) => DisconnectKind::Io,
            DisconnectReason::WebSocket { .. } => DisconnectKind::WebSocket,
            // The peer ended the session the proper way: the same kind as a TCP close.
            DisconnectReason::WebSocketClosed { .. } => DisconnectKind::PeerClosed,
            DisconnectReason::Handshake { .. } => DisconnectKind::Handshake,
            DisconnectReason::HttpServed { .. } => DisconnectKind::HttpServed,
        }
    }
}

/// The kind of a [`DisconnectReason`], without its details: a label for metrics.
///
/// # Examples
/// ```
/// use server_core::{DisconnectKind, DisconnectReason};
///
/// assert_eq!(DisconnectReason::PeerClosed.kind(), DisconnectKind::PeerClosed);
/// assert_eq!(DisconnectKind::PeerClosed.as_str(), "peer_closed");
/// assert_eq!(DisconnectKind::ALL.len(), 16);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DisconnectKind {
    /// [`DisconnectReason::PeerClosed`].
    PeerClosed,
    /// [`DisconnectReason::PeerClosedMidFrame`].
    PeerClosedMidFrame,
    /// [`DisconnectReason::Framing`].
    Framing,
    /// [`DisconnectReason::Handler`].
    Handler,
    /// [`DisconnectReason::Panicked`].
    Panicked,
    /// [`DisconnectReason::SlowReader`].
    SlowReader,
    /// [`DisconnectReason::SendQueueOverflow`].
    SendQueueOverflow,
    /// [`DisconnectReason::RateLimited`].
    RateLimited,
    /// [`DisconnectReason::IdleTimeout`].
    IdleTimeout,
    /// [`DisconnectReason::Local`].
    Local,
    /// [`DisconnectReason::Shutdown`].
    Shutdown,
    /// [`DisconnectReason::LoopDied`].
    LoopDied,
    /// [`DisconnectReason::Io`].
    Io,
    /// [`DisconnectReason::WebSocket`].
    WebSocket,
    /// [`DisconnectReason::Handshake`].
    Handshake,
    /// [`DisconnectReason::HttpServed`].
    HttpServed,
}

impl DisconnectKind {
    /// Every kind, in declaration order.
    pub const ALL: [DisconnectKind; 16] = [
        DisconnectKind::PeerClosed,
        DisconnectKind::PeerClosedMidFrame,
        DisconnectKind::Framing,
        DisconnectKind::Handler,
        DisconnectKind::Panicked,
        DisconnectKind::SlowReader,
        DisconnectKind::SendQueueOverflow,
        DisconnectKind::RateLimited,
        DisconnectKind::IdleTimeout,
        DisconnectKind::Local,
        DisconnectKind::Shutdown,
        DisconnectKind::LoopDied,
        DisconnectKind::Io,
        DisconnectKind::WebSocket,
        DisconnectKind::Handshake,
        DisconnectKind::HttpServed,
    ];

    /// A snake_case label: `peer_closed`, `slow_reader`, ...
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectKind::PeerClosed => "peer_closed",
            DisconnectKind::PeerClosedMidFrame => "peer_closed_mid_frame",
            DisconnectKind::Framing => "framing",
            DisconnectKind::Handler => "handler",
            DisconnectKind::Panicked => "panicked",
            DisconnectKind::SlowReader => "slow_reader",
            DisconnectKind::SendQueueOverflow => "send_queue_overflow",
            DisconnectKind::RateLimited => "rate_limited",
            DisconnectKind::IdleTimeout => "idle_timeout",
            DisconnectKind::Local => "local",
            DisconnectKind::Shutdown => "shutdown",
            DisconnectKind::LoopDied => "loop_died",
            DisconnectKind::Io => "io",
            DisconnectKind::WebSocket => "websocket",
            DisconnectKind::Handshake => "handshake",
            DisconnectKind::HttpServed => "http_served",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}
