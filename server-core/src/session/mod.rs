//! The session contract: the handler trait game code implements, the cloneable handle it
//! uses to send, disconnect and reach its handler, and the reasons a session ends.

mod disconnect;
mod handle;
mod handler;
mod in_flight;

pub use disconnect::{DisconnectKind, DisconnectReason};
pub use handle::{HandlerCallError, InFlight, Session, SessionId};
pub(crate) use handle::{Route, SessionParts};
pub use handler::{HandlerError, Hook, SessionHandler};
