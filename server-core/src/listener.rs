//! The accepting side: a listening socket, the session factory (the course's
//! `Func<Session>`), and the max-sessions limit.

use crate::session::SessionHandler;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

pub(crate) type Factory = Box<dyn Fn() -> Box<dyn SessionHandler> + Send + Sync>;

/// State shared by the loop that accepts and the loops that own the accepted sessions.
pub(crate) struct ListenerShared {
    pub(crate) local_addr: SocketAddr,
    pub(crate) factory: Factory,
    pub(crate) max_sessions: usize,
    /// Open sessions from this listener: taken at accept, given back at close.
    active: AtomicUsize,
    /// Connections refused because the limit was reached.
    refused: AtomicU64,
}

impl ListenerShared {
    pub(crate) fn new(local_addr: SocketAddr, factory: Factory, max_sessions: usize) -> Self {
        Self {
            local_addr,
            factory,
            max_sessions,
            active: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
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
}

/// A handle to a listening socket started by [`Service::listen`](crate::Service::listen).
///
/// The socket keeps accepting until the service shuts down; dropping this handle does not
/// close it.
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
        self.shared.active.load(Ordering::Acquire)
    }

    /// Connections refused so far because `max_sessions` were open.
    #[must_use]
    pub fn refused_sessions(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("local_addr", &self.shared.local_addr)
            .field("active_sessions", &self.active_sessions())
            .field("max_sessions", &self.shared.max_sessions)
            .finish()
    }
}
