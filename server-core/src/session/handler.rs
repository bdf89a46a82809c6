//! The hooks game code implements, one handler per connection.

use super::{DisconnectReason, Session};
use std::any::Any;
use std::fmt;
use std::io;

/// What a handler returns to have its session closed: any error, logged as the reason.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// The course's `Session`/`PacketSession` hooks. One handler per connection, created by the
/// factory given to [`Service::listen`](crate::Service::listen) or
/// [`Service::connect`](crate::Service::connect).
///
/// Every method runs on the I/O thread that owns the session, one call at a time, so the
/// handler needs no locks for its own fields. Long work belongs in a
/// [`JobQueue`](crate::JobQueue), not here: while a hook runs, that thread's other sessions
/// wait. Code running elsewhere (a room's job) reaches a handler with
/// [`Session::with_handler`].
///
/// # Panics
/// A hook that panics is contained: the panic is logged at error with the session id and
/// the session is closed with [`DisconnectReason::Panicked`]; every other session on the
/// thread carries on. A panic in [`on_disconnected`](Self::on_disconnected) or
/// [`on_connect_failed`](Self::on_connect_failed) (there is no session left to close) is
/// logged the same way.
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
pub trait SessionHandler: Any + Send {
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

/// A piece of user code server-core calls, named in logs and in
/// [`DisconnectReason::Panicked`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Hook {
    /// The listener's factory making a handler for an accepted connection.
    Factory,
    /// [`SessionHandler::on_connected`].
    OnConnected,
    /// [`SessionHandler::on_packet`].
    OnPacket,
    /// [`SessionHandler::on_send`].
    OnSend,
    /// [`SessionHandler::on_disconnected`].
    OnDisconnected,
    /// [`SessionHandler::on_connect_failed`].
    OnConnectFailed,
    /// A closure given to [`Session::with_handler`].
    WithHandler,
    /// Dropping a handler.
    Drop,
    /// The hook answering plain HTTP requests on a WebSocket port (`WsOptions::http`).
    HttpRequest,
}

impl Hook {
    /// The hook's name as it appears in logs: `on_packet`, `factory`, ...
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Factory => "factory",
            Hook::OnConnected => "on_connected",
            Hook::OnPacket => "on_packet",
            Hook::OnSend => "on_send",
            Hook::OnDisconnected => "on_disconnected",
            Hook::OnConnectFailed => "on_connect_failed",
            Hook::WithHandler => "with_handler",
            Hook::Drop => "drop",
            Hook::HttpRequest => "http_request",
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
