//! The runtime: the only code that touches mio. Each I/O thread runs an [`EventLoop`]:
//! readiness in, calls out to the connection core (`crate::connection`) and to user hooks
//! through the one guarded path (`crate::guard`).
//!
//! | file | what lives there |
//! |---|---|
//! | `event_loop.rs` | one iteration: poll, dispatch, inbox, timers, tasks, flush; shutdown |
//! | `mailbox.rs` | commands between threads: inboxes, wakers, staging, liveness |
//! | `accept.rs` | listening sockets: accept, limits, back-off, close |
//! | `sessions.rs` | a session's life on its loop: adopt, open, hooks, close |
//! | `io.rs` | reading frames in and flushing queued bytes out; the end of a closing connection |
//! | `handshake.rs` | a WebSocket connection's upgrade: the factory, the `http` hook, refusals, the timeout |
//! | `fault.rs` | what a loop does when server-core itself fails on it |
//! | `timer.rs` | the timer heap the loop sleeps on |
//! | `wake_timer.rs` | waking the loop at the earliest deadline, to the microsecond on Linux |
//! | `socket.rs` | socket options, binding, error classes |

mod accept;
mod event_loop;
mod fault;
#[cfg(feature = "websocket")]
mod handshake;
mod io;
mod mailbox;
mod sessions;
mod socket;
mod timer;
mod wake_timer;

pub(crate) use accept::ListenerEntry;
pub(crate) use event_loop::EventLoop;
pub(crate) use mailbox::{current_loop, publish_staged, Command, HandlerCall, LoopShared, Task};
pub(crate) use sessions::Adoption;
pub(crate) use socket::{bind_listener, configure_socket};
