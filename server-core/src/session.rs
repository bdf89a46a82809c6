//! The session contract: the handler trait game code implements, the cloneable handle it
//! uses to send and disconnect, and the reasons a session ends.

use crate::event_loop::{Command, LoopShared};
use crate::frame::FrameError;
use bytes::Bytes;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use thiserror::Error;

/// What a handler returns to have its session closed: any error, logged as the reason.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// The course's `Session`/`PacketSession` hooks. One handler per connection, created by the
/// factory given to [`Service::listen`](crate::Service::listen) or
/// [`Service::connect`](crate::Service::connect).
///
/// Every method runs on the I/O thread that owns the session, one call at a time, so the
/// handler needs no locks for its own fields. Long work belongs in a
/// [`JobQueue`](crate::JobQueue), not here: while a hook runs, that thread's other sessions wait.
///
/// # Examples
/// ```
/// use server_core::{HandlerError, Session, SessionHandler};
///
/// /// Sends every packet back unchanged.
/// struct Echo;
///
/// impl SessionHandler for Echo {
///     fn on_packet(&mut self, session: &Session, frame: &[u8]) -> Result<(), HandlerError> {
///         session.send(bytes::Bytes::copy_from_slice(frame));
///         Ok(())
///     }
/// }
/// ```
pub trait SessionHandler: Send + 'static {
    /// The connection is established (accepted, or an outgoing connect completed).
    fn on_connected(&mut self, session: &Session) {
        let _ = session;
    }

    /// One whole frame arrived: `frame` is `[u16 size][u16 id][body]`, header included.
    ///
    /// Frames of one session arrive in order, each exactly once. The slice points into the
    /// receive buffer; copy what must outlive the call.
    ///
    /// # Errors
    /// Returning an error closes the session with [`DisconnectReason::Handler`] and logs it:
    /// the way to reject a malformed or unexpected packet.
    fn on_packet(&mut self, session: &Session, frame: &[u8]) -> Result<(), HandlerError>;

    /// `bytes` of queued packets were written to the socket.
    fn on_send(&mut self, session: &Session, bytes: usize) {
        let _ = (session, bytes);
    }

    /// The session is closed; no hook is called after this one. Sends are dropped from now on.
    fn on_disconnected(&mut self, session: &Session, reason: &DisconnectReason) {
        let _ = (session, reason);
    }

    /// An outgoing connection could not be established (refused, timed out, ...). Called
    /// instead of `on_connected`; no other hook follows.
    fn on_connect_failed(&mut self, error: &io::Error) {
        let _ = error;
    }
}

/// Why a session ended, passed to [`SessionHandler::on_disconnected`] and logged.
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
    /// More than the configured maximum was queued for sending: the peer reads too slowly.
    #[error("send queue overflow: {queued} bytes queued, adding {adding} would pass the {limit}-byte limit")]
    SendQueueOverflow {
        /// Bytes already queued.
        queued: usize,
        /// Size of the packet that did not fit.
        adding: usize,
        /// The configured cap.
        limit: usize,
    },
    /// Nothing was received for the configured idle timeout.
    #[error("idle for more than {0:?}")]
    IdleTimeout(std::time::Duration),
    /// [`Session::disconnect`] was called.
    #[error("disconnected locally")]
    Local,
    /// The service is shutting down.
    #[error("service shutting down")]
    Shutdown,
    /// A socket error.
    #[error("i/o error: {0}")]
    Io(#[source] io::Error),
}

/// A session's identity, unique for the life of the process (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub(crate) u64);

impl SessionId {
    /// The raw number, for logs and maps.
    #[must_use]
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A cheap, cloneable, `Send + Sync` handle to one connection, usable from any thread or job.
///
/// Sends are queued and written by the session's I/O thread: everything queued for a
/// session during one loop iteration goes out in a single `writev`. A handle outliving its
/// session is harmless: sends are dropped and [`is_connected`](Self::is_connected) says false.
///
/// # Examples
/// ```no_run
/// # fn demo(session: server_core::Session) {
/// let for_later = session.clone();
/// std::thread::spawn(move || for_later.send(bytes::Bytes::from_static(&[4, 0, 1, 0])));
/// # }
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionShared>,
}

struct SessionShared {
    id: SessionId,
    /// Slab key on the owning loop; paired with `id` so a reused slot never gets our packets.
    key: usize,
    peer_addr: SocketAddr,
    local_addr: Option<SocketAddr>,
    /// The loop that owns the socket; every command for this session goes there.
    owner: Arc<LoopShared>,
    /// Set once the session is closed or closing, so sends stop early.
    closed: AtomicBool,
}

impl Session {
    pub(crate) fn new(
        id: SessionId,
        key: usize,
        peer_addr: SocketAddr,
        local_addr: Option<SocketAddr>,
        owner: Arc<LoopShared>,
    ) -> Self {
        Self {
            inner: Arc::new(SessionShared {
                id,
                key,
                peer_addr,
                local_addr,
                owner,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// This session's process-unique id.
    #[must_use]
    pub fn id(&self) -> SessionId {
        self.inner.id
    }

    /// The remote address.
    #[must_use]
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.peer_addr
    }

    /// The local address of the socket, if the OS reported one.
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr
    }

    /// Whether the session is still open (neither closed nor asked to disconnect).
    #[must_use]
    pub fn is_connected(&self) -> bool {
        !self.inner.closed.load(Ordering::Acquire)
    }

    /// Queues a whole frame (or any bytes) for sending. Never blocks.
    ///
    /// Packets from one thread to one session go out in the order sent. Broadcasting the same
    /// `Bytes` to many sessions shares one allocation (a reference-count bump each).
    /// If the session's queue would pass its cap, the session is closed with
    /// [`DisconnectReason::SendQueueOverflow`]. Sends to a closed session are dropped.
    pub fn send(&self, packet: Bytes) {
        if !self.is_connected() {
            return;
        }
        self.inner.owner.submit(Command::Send {
            key: self.inner.key,
            id: self.inner.id,
            packet,
        });
    }

    /// Closes the session after what is already queued has been written (bounded by the
    /// service's linger time). Idempotent.
    pub fn disconnect(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.owner.submit(Command::Disconnect {
            key: self.inner.key,
            id: self.inner.id,
        });
    }

    pub(crate) fn mark_closed(&self) {
        self.inner.closed.store(true, Ordering::Release);
    }
}

impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}

impl Eq for Session {}

impl std::hash::Hash for Session {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.id.hash(state);
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.inner.id)
            .field("peer_addr", &self.inner.peer_addr)
            .field("connected", &self.is_connected())
            .finish()
    }
}
