//! The accepting side: a listening socket, the session factory (the course's
//! `Func<Session>`), its limits, and the handle to stop it.

use crate::config::ListenConfig;
use crate::connection::{Limits, RateLimit};
use crate::runtime::{Command, LoopShared};
use crate::session::SessionHandler;
use crate::transport::TransportState;
use std::any::TypeId;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

pub(crate) type Factory = Box<dyn Fn() -> Box<dyn SessionHandler> + Send + Sync>;

/// Settings of one listener, for [`Service::listen_with`](crate::Service::listen_with).
/// [`Service::listen`](crate::Service::listen) uses the service's defaults (set on the
/// [`ServiceBuilder`](crate::ServiceBuilder)).
///
/// # Examples
/// ```
/// use server_core::{Excess, ListenOptions, RateLimit};
///
/// let public = ListenOptions::new()
///     .max_sessions(5_000)
///     .rate_limit(Some(RateLimit::new(200, 64 * 1024).on_excess(Excess::Drop)))
///     .max_in_flight(64);
/// let admin = ListenOptions::new().max_sessions(4).rate_limit(None);
/// # let _ = (public, admin);
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ListenOptions {
    pub(crate) config: ListenConfig,
}

impl ListenOptions {
    /// The defaults of [`defaults`](crate::defaults): 10,000 sessions, the default
    /// [`RateLimit`], 256 in-flight guards.
    pub fn new() -> Self {
        Self::default()
    }

    /// Open sessions allowed; connections past it are closed at once and logged.
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.config.max_sessions = max;
        self
    }

    /// Inbound limits per session (`None`: unlimited).
    pub fn rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.config.rate_limit = limit;
        self
    }

    /// Live [`InFlight`](crate::InFlight) guards a session may hold before reading from it
    /// pauses.
    pub fn max_in_flight(mut self, max: u32) -> Self {
        self.config.max_in_flight = max;
        self
    }
}

/// State shared by the loop that accepts and the loops that own the accepted sessions.
pub(crate) struct ListenerShared {
    pub(crate) local_addr: SocketAddr,
    pub(crate) factory: Factory,
    /// The factory's handler type, for [`Session::with_handler`](crate::Session::with_handler).
    pub(crate) handler_type: (TypeId, &'static str),
    pub(crate) max_sessions: usize,
    pub(crate) max_in_flight: u32,
    /// Limits of every session accepted here.
    pub(crate) limits: Arc<Limits>,
    /// A WebSocket port's settings: accepted connections start with the upgrade, and the
    /// factory runs only once it is accepted. `None` for TCP.
    #[cfg(feature = "websocket")]
    pub(crate) ws: Option<Arc<crate::transport::websocket::WsServer>>,
    /// Open sessions from this listener: taken at accept, given back at close.
    active: AtomicUsize,
    /// Connections refused because the limit was reached.
    refused: AtomicU64,
    /// [`Listener::close`] was called: accept nothing more.
    closed: AtomicBool,
    /// Index of the loop that owns the socket (changes if that loop dies).
    owner: AtomicUsize,
    /// Every loop of the service, to reach the owner.
    loops: Arc<[Arc<LoopShared>]>,
}

pub(crate) struct ListenerParts {
    pub(crate) local_addr: SocketAddr,
    pub(crate) factory: Factory,
    pub(crate) handler_type: (TypeId, &'static str),
    pub(crate) config: ListenConfig,
    pub(crate) limits: Arc<Limits>,
    pub(crate) owner: usize,
    pub(crate) loops: Arc<[Arc<LoopShared>]>,
    #[cfg(feature = "websocket")]
    pub(crate) ws: Option<Arc<crate::transport::websocket::WsServer>>,
}

impl ListenerShared {
    pub(crate) fn new(parts: ListenerParts) -> Self {
        Self {
            local_addr: parts.local_addr,
            factory: parts.factory,
            handler_type: parts.handler_type,
            max_sessions: parts.config.max_sessions,
            max_in_flight: parts.config.max_in_flight,
            limits: parts.limits,
            #[cfg(feature = "websocket")]
            ws: parts.ws,
            active: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            owner: AtomicUsize::new(parts.owner),
            loops: parts.loops,
        }
    }

    /// Takes a session slot if one is free. Only the accepting loop calls this, so the
    /// check-then-add cannot race with another taker; releases only make room.
    pub(crate) fn try_acquire_slot(&self) -> bool {
        if self.active.load(Ordering::Acquire) >= self.max_sessions {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.active.fetch_add(1, Ordering::AcqRel);
        true
    }

    pub(crate) fn release_slot(&self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn active_count(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn set_owner(&self, index: usize) {
        self.owner.store(index, Ordering::Release);
    }

    /// How connections accepted here start: plain TCP, or a WebSocket upgrade.
    pub(crate) fn transport(&self) -> TransportState {
        #[cfg(feature = "websocket")]
        if let Some(ws) = &self.ws {
            return TransportState::WebSocket(Box::new(
                crate::transport::websocket::WsTransport::server(Arc::clone(ws)),
            ));
        }
        TransportState::Tcp
    }
}

/// A handle to a listening socket started by [`Service::listen`](crate::Service::listen).
///
/// The socket accepts until [`close`](Self::close) or service shutdown; dropping this
/// handle does not close it.
///
/// # Examples
/// ```
/// use server_core::{HandlerError, Service, Session, SessionHandler};
///
/// struct Ignore;
/// impl SessionHandler for Ignore {
///     fn on_packet(&mut self, _: &Session, _: &[u8]) -> Result<(), HandlerError> { Ok(()) }
/// }
///
/// let service = Service::builder().threads(1).build()?;
/// let listener = service.listen("127.0.0.1:0".parse()?, || Ignore)?;
/// assert_ne!(listener.local_addr().port(), 0);
/// assert_eq!(listener.active_sessions(), 0);
/// listener.close(); // stop accepting on this port; the service keeps running
/// assert!(listener.is_closed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Listener {
    pub(crate) shared: Arc<ListenerShared>,
}

impl Listener {
    /// The bound address (with the real port when bound to port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Sessions from this listener that are open now.
    #[must_use]
    pub fn active_sessions(&self) -> usize {
        self.shared.active_count()
    }

    /// Connections refused so far because `max_sessions` were open.
    #[must_use]
    pub fn refused_sessions(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// The most sessions this listener keeps open.
    #[must_use]
    pub fn max_sessions(&self) -> usize {
        self.shared.max_sessions
    }

    /// Stops accepting on this port while the service (and the sessions already accepted
    /// here) keep running: the first step of a graceful drain. From the moment this returns
    /// no new session is started; the socket itself is closed by its I/O thread within one
    /// loop iteration (connections waiting in the kernel's backlog are then reset).
    /// Idempotent.
    pub fn close(&self) {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let owner = self.shared.owner.load(Ordering::Acquire);
        if let Some(owner) = self.shared.loops.get(owner) {
            // A stopped loop has closed its sockets already.
            owner.submit(Command::CloseListener(Arc::clone(&self.shared)));
        }
    }

    /// Whether [`close`](Self::close) was called.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("local_addr", &self.shared.local_addr)
            .field("active_sessions", &self.active_sessions())
            .field("max_sessions", &self.shared.max_sessions)
            .field("closed", &self.is_closed())
            .finish()
    }
}
