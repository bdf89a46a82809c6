//! [`Session`]: the cloneable handle game code uses to send, disconnect and reach the
//! handler, from any thread or job.

use super::in_flight::InFlightCount;
use super::SessionHandler;
use crate::runtime::{Command, HandlerCall, LoopShared};
use crate::testing::DetachedState;
use crate::transport::Transport;
use bytes::Bytes;
use log::error;
use std::any::{Any, TypeId};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use thiserror::Error;

/// A session's identity, unique for the life of the process (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub(crate) u64);

impl SessionId {
    /// The raw number, for logs and maps.
    #[must_use]
    pub fn get(self) -> u64 {
        self.0
    }

    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why [`Session::with_handler`] could not queue the call.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HandlerCallError {
    /// The session is closed (or closing): its handler takes no more calls.
    #[error("session {0} is closed")]
    Closed(SessionId),
    /// The session's handler is not of the type asked for.
    #[error("session {id}'s handler is not a {asked}")]
    WrongHandler {
        /// The session.
        id: SessionId,
        /// The type asked for.
        asked: &'static str,
    },
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
    peer_addr: SocketAddr,
    local_addr: Option<SocketAddr>,
    /// Where commands for this session go.
    route: Route,
    /// Set once the session is closed or closing, so sends stop early.
    closed: AtomicBool,
    /// Bytes in the send queue, published by the owning loop (for handlers' own
    /// backpressure decisions).
    queued: AtomicUsize,
    /// Live [`InFlight`] guards, and how many are allowed before reading pauses.
    in_flight: InFlightCount,
    /// The handler's concrete type, so a `with_handler` for the wrong type fails at once.
    handler_type: Option<(TypeId, &'static str)>,
    transport: Transport,
}

pub(crate) enum Route {
    /// A real connection: its slab key on the owning loop, paired with the id so a reused
    /// slot never gets our commands.
    Loop { key: usize, owner: Arc<LoopShared> },
    /// A session without a socket, for tests (see [`DetachedSession`](crate::testing::DetachedSession)).
    Detached(Arc<DetachedState>),
}

/// What a [`Session`] is made from.
pub(crate) struct SessionParts {
    pub(crate) id: SessionId,
    pub(crate) peer_addr: SocketAddr,
    pub(crate) local_addr: Option<SocketAddr>,
    pub(crate) route: Route,
    pub(crate) max_in_flight: u32,
    pub(crate) handler_type: Option<(TypeId, &'static str)>,
    pub(crate) transport: Transport,
}

impl Session {
    pub(crate) fn new(parts: SessionParts) -> Self {
        Self {
            inner: Arc::new(SessionShared {
                id: parts.id,
                peer_addr: parts.peer_addr,
                local_addr: parts.local_addr,
                route: parts.route,
                closed: AtomicBool::new(false),
                queued: AtomicUsize::new(0),
                in_flight: InFlightCount::new(parts.max_in_flight),
                handler_type: parts.handler_type,
                transport: parts.transport,
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

    /// How this session reaches its peer: plain TCP or WebSocket. The same handler serves
    /// both; this is for the rare handler that cares (a log line, a metric label).
    ///
    /// # Examples
    /// ```
    /// let probe = server_core::testing::DetachedSession::new();
    /// assert_eq!(probe.session().transport(), server_core::Transport::Tcp);
    /// ```
    #[must_use]
    pub fn transport(&self) -> Transport {
        self.inner.transport
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

    /// Bytes queued for this session and not yet written to its socket, as of the owning
    /// I/O thread's last update (packets sent from other threads a moment ago may not be
    /// counted yet). Lets a handler make its own backpressure decision (skip a position
    /// update for a lagging player, say) well before the send cap judges the session.
    ///
    /// # Examples
    /// ```
    /// let probe = server_core::testing::DetachedSession::new();
    /// assert_eq!(probe.session().queued_bytes(), 0);
    /// ```
    #[must_use]
    pub fn queued_bytes(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }

    /// Queues a whole frame (or several concatenated) for sending. Never blocks.
    ///
    /// Packets from one thread to one session go out in the order sent. Broadcasting the same
    /// `Bytes` to many sessions shares one allocation (a reference-count bump each).
    /// A session whose backlog stays above its cap is closed as a slow reader (see
    /// [`ServiceBuilder::max_send_queue`](crate::ServiceBuilder::max_send_queue)). Sends to
    /// a closed session are dropped: its handler's
    /// [`on_disconnected`](SessionHandler::on_disconnected) has been or will be called.
    pub fn send(&self, packet: Bytes) {
        if !self.is_connected() {
            return;
        }
        match &self.inner.route {
            Route::Loop { key, owner } => owner.submit(Command::Send {
                key: *key,
                id: self.inner.id,
                packet,
            }),
            Route::Detached(state) => state.record_send(packet),
        }
    }

    /// Closes the session after what is already queued has been written (bounded by the
    /// service's linger time). Idempotent.
    pub fn disconnect(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        match &self.inner.route {
            Route::Loop { key, owner } => owner.submit(Command::Disconnect {
                key: *key,
                id: self.inner.id,
            }),
            Route::Detached(state) => state.record_disconnect(),
        }
    }

    /// Runs `f` with this session's handler, on the session's own I/O thread, in order
    /// with its hooks: the way a [`JobQueue`](crate::JobQueue) job (a room) hands a result
    /// back to the player it concerns, without locks.
    ///
    /// Calls and sends made from one thread to one session are applied in the order made.
    /// `f` runs once, soon, unless the session closes first; then it is dropped without
    /// running and the handler's [`on_disconnected`](SessionHandler::on_disconnected) is
    /// the place to react. A panic in `f` is contained like a panic in a hook: the session
    /// is closed with [`DisconnectReason::Panicked`](crate::DisconnectReason::Panicked).
    ///
    /// # Errors
    /// [`HandlerCallError::Closed`] if the session is already closed;
    /// [`HandlerCallError::WrongHandler`] if its handler is not an `H`.
    ///
    /// # Examples
    /// ```
    /// use server_core::{HandlerError, Session, SessionHandler};
    ///
    /// #[derive(Default)]
    /// struct Player { room: Option<u32> }
    /// impl SessionHandler for Player {
    ///     fn on_packet(&mut self, _: &Session, _: &[u8]) -> Result<(), HandlerError> { Ok(()) }
    /// }
    ///
    /// // In a lobby job, once a room is chosen:
    /// # let probe = server_core::testing::DetachedSession::new();
    /// # let session = probe.session();
    /// session.with_handler(|player: &mut Player, _session| player.room = Some(7))?;
    /// # let mut player = Player::default();
    /// # probe.run_handler_calls(&mut player);
    /// # assert_eq!(player.room, Some(7));
    /// # Ok::<(), server_core::HandlerCallError>(())
    /// ```
    pub fn with_handler<H, F>(&self, f: F) -> Result<(), HandlerCallError>
    where
        H: SessionHandler,
        F: FnOnce(&mut H, &Session) + Send + 'static,
    {
        let id = self.inner.id;
        if !self.is_connected() {
            return Err(HandlerCallError::Closed(id));
        }
        if let Some((type_id, _)) = self.inner.handler_type {
            if type_id != TypeId::of::<H>() {
                return Err(HandlerCallError::WrongHandler {
                    id,
                    asked: std::any::type_name::<H>(),
                });
            }
        }
        let call: HandlerCall = Box::new(move |handler: &mut dyn SessionHandler, session| {
            let handler: &mut dyn Any = handler;
            match handler.downcast_mut::<H>() {
                Some(handler) => f(handler, session),
                None => error!(
                    "session {id}: with_handler for a {} reached another handler type; not run",
                    std::any::type_name::<H>()
                ),
            }
        });
        match &self.inner.route {
            Route::Loop { key, owner } => owner.submit(Command::WithHandler {
                key: *key,
                id,
                call,
            }),
            Route::Detached(state) => state.record_call(call),
        }
        Ok(())
    }

    /// A guard counting one piece of unfinished work this session caused (a job it pushed
    /// to its room, a broadcast waiting for the room's tick). Reading from the session
    /// pauses while more than the listener's
    /// [`max_in_flight`](crate::ListenOptions::max_in_flight) guards are alive, and resumes
    /// by itself when enough are dropped: a fast sender is slowed by TCP flow control
    /// instead of piling work up in memory. Drop the guard when the work is done (moving it
    /// into the job is the usual way).
    ///
    /// # Examples
    /// ```
    /// # let probe = server_core::testing::DetachedSession::new();
    /// # let session = probe.session();
    /// let guard = session.in_flight();
    /// assert_eq!(session.in_flight_count(), 1);
    /// drop(guard); // e.g. at the end of the room job it was moved into
    /// assert_eq!(session.in_flight_count(), 0);
    /// ```
    #[must_use = "the work counts as in flight while the guard lives"]
    pub fn in_flight(&self) -> InFlight {
        self.inner.in_flight.acquire();
        InFlight {
            session: self.clone(),
        }
    }

    /// Live [`InFlight`] guards of this session.
    #[must_use]
    pub fn in_flight_count(&self) -> u32 {
        self.inner.in_flight.get()
    }

    pub(crate) fn over_in_flight_limit(&self) -> bool {
        self.inner.in_flight.over_limit()
    }

    pub(crate) fn mark_closed(&self) {
        self.inner.closed.store(true, Ordering::Release);
    }

    pub(crate) fn publish_queued(&self, bytes: usize) {
        self.inner.queued.store(bytes, Ordering::Relaxed);
    }

    /// Releases one guard; on the drop that brings the count back to the limit, tells the
    /// owning loop it may read again.
    fn release_in_flight(&self) {
        if self.inner.in_flight.release() {
            if let Route::Loop { key, owner } = &self.inner.route {
                owner.submit(Command::ResumeReading {
                    key: *key,
                    id: self.inner.id,
                });
            }
        }
    }
}

/// One piece of unfinished work a session caused; see [`Session::in_flight`].
#[must_use = "the work counts as in flight while the guard lives"]
pub struct InFlight {
    session: Session,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.session.release_in_flight();
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight")
            .field("session", &self.session.id())
            .finish()
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
