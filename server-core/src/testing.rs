//! Sessions without sockets, for unit tests of game code.
//!
//! A room, a lobby or any code that takes [`Session`]s can be tested without a network: a
//! [`DetachedSession`] is a real `Session` whose sends, disconnects and
//! [`with_handler`](Session::with_handler) calls are recorded instead of going to an I/O
//! thread.

use crate::runtime::HandlerCall;
use crate::session::{Route, Session, SessionHandler, SessionId, SessionParts};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A [`Session`] with no connection behind it, recording what is done to it.
///
/// # Examples
/// ```
/// use bytes::Bytes;
/// use server_core::testing::DetachedSession;
///
/// let probe = DetachedSession::new();
/// let session = probe.session();
/// session.send(Bytes::from_static(&[4, 0, 1, 0, 4, 0, 2, 0])); // two frames at once
/// assert_eq!(probe.take_frames(), [&[4, 0, 1, 0][..], &[4, 0, 2, 0][..]]);
///
/// probe.close(); // the connection died
/// session.send(Bytes::from_static(&[4, 0, 3, 0]));
/// assert!(probe.take_frames().is_empty(), "sends to a closed session are dropped");
/// assert!(!session.is_connected());
/// ```
pub struct DetachedSession {
    session: Session,
    state: Arc<DetachedState>,
}

/// What a detached session recorded.
#[derive(Default)]
pub(crate) struct DetachedState {
    sent: Mutex<Vec<Bytes>>,
    calls: Mutex<Vec<HandlerCall>>,
    disconnect_requested: AtomicBool,
}

impl DetachedState {
    pub(crate) fn record_send(&self, packet: Bytes) {
        lock(&self.sent).push(packet);
    }

    pub(crate) fn record_disconnect(&self) {
        self.disconnect_requested.store(true, Ordering::Release);
    }

    pub(crate) fn record_call(&self, call: HandlerCall) {
        lock(&self.calls).push(call);
    }
}

impl Default for DetachedSession {
    fn default() -> Self {
        Self::new()
    }
}

impl DetachedSession {
    /// A connected session with a fresh id and peer `127.0.0.1:0`.
    #[must_use]
    pub fn new() -> Self {
        Self::with_peer(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// A connected session with a fresh id and the given peer address.
    #[must_use]
    pub fn with_peer(peer_addr: SocketAddr) -> Self {
        let state = Arc::new(DetachedState::default());
        let session = Session::new(SessionParts {
            id: SessionId::next(),
            peer_addr,
            local_addr: None,
            route: Route::Detached(Arc::clone(&state)),
            max_in_flight: u32::MAX - 1,
            handler_type: None,
            transport: crate::Transport::Tcp,
        });
        Self { session, state }
    }

    /// A handle to the session, to give to the code under test.
    #[must_use]
    pub fn session(&self) -> Session {
        self.session.clone()
    }

    /// Everything sent so far, as handed to [`Session::send`], and clears the record.
    #[must_use]
    pub fn take_sent(&self) -> Vec<Bytes> {
        std::mem::take(&mut *lock(&self.state.sent))
    }

    /// Everything sent so far, split into frames along their size fields (a tick's batch
    /// becomes its frames), and clears the record. Bytes that are not whole frames come
    /// out as one last piece.
    #[must_use]
    pub fn take_frames(&self) -> Vec<Bytes> {
        self.take_sent()
            .into_iter()
            .flat_map(split_frames)
            .collect()
    }

    /// Whether [`Session::disconnect`] was called.
    #[must_use]
    pub fn disconnect_requested(&self) -> bool {
        self.state.disconnect_requested.load(Ordering::Acquire)
    }

    /// The connection dies: the session reads as disconnected and later sends are dropped,
    /// as for a real session whose socket closed (its handler's `on_disconnected` is the
    /// test's to call, if the test holds one).
    pub fn close(&self) {
        self.session.mark_closed();
    }

    /// Runs the [`with_handler`](Session::with_handler) calls queued so far against
    /// `handler`, in order; returns how many ran. Calls meant for another handler type are
    /// dropped (and logged), as on a real session.
    pub fn run_handler_calls<H: SessionHandler>(&self, handler: &mut H) -> usize {
        let calls = std::mem::take(&mut *lock(&self.state.calls));
        let count = calls.len();
        for call in calls {
            call(handler, &self.session);
        }
        count
    }
}

impl std::fmt::Debug for DetachedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetachedSession")
            .field("session", &self.session)
            .field("sent", &lock(&self.state.sent).len())
            .finish()
    }
}

/// Splits a frame stream along its size fields.
fn split_frames(mut bytes: Bytes) -> Vec<Bytes> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let size = usize::from(u16::from_le_bytes([bytes[0], bytes[1]]));
        if size < crate::frame::HEADER_SIZE || size > bytes.len() {
            break;
        }
        frames.push(bytes.split_to(size));
    }
    if !bytes.is_empty() {
        frames.push(bytes);
    }
    frames
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
