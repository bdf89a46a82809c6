//! # server-core
//!
//! The networking core of a game server, after the C#/C++ "ServerCore" of a well-known
//! game-server course, rebuilt over [`mio`]:
//!
//! * a [`Service`] runs N I/O threads, each with its own `mio::Poll`, user-space timers and
//!   an inbox other threads reach through a coalesced waker;
//! * [`Service::listen`] accepts connections (with a max-sessions limit and back-off when
//!   descriptors run out) and [`Service::connect`] opens them;
//! * every connection is a packet session: bytes are framed as `[u16 size][u16 id][body]`
//!   ([`frame`]) and each whole frame is handed to your [`SessionHandler`]; a [`Session`]
//!   handle sends from any thread, and everything queued for a session in one loop
//!   iteration leaves in one `writev`, under a per-session cap;
//! * a [`JobQueue`] owns game state (a room) and runs jobs on it one at a time, so game code
//!   needs no locks; [`JobQueue::push_after`] and [`JobQueue::push_every`] are the JobTimer;
//! * [`encode_with`] encodes packets into shared chunks ([`SendBuffer`]) so a broadcast is
//!   serialised once.
//!
//! The library logs through [`log`] and never prints.
//!
//! # Examples
//! A packet echo server (see `examples/echo_server.rs` for the runnable one):
//! ```no_run
//! use bytes::Bytes;
//! use server_core::{HandlerError, Service, Session, SessionHandler};
//!
//! struct Echo;
//! impl SessionHandler for Echo {
//!     fn on_packet(&mut self, session: &Session, frame: &[u8]) -> Result<(), HandlerError> {
//!         session.send(Bytes::copy_from_slice(frame));
//!         Ok(())
//!     }
//! }
//!
//! let service = Service::builder().build()?;
//! service.listen("127.0.0.1:7777".parse()?, || Echo)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! | file | what lives there |
//! |---|---|
//! | `frame.rs` | the frame header: parse and write, no I/O |
//! | `recv_buffer.rs`, `send_queue.rs` | a session's buffers |
//! | `send_buffer.rs` | the encoding arena behind [`encode_with`] |
//! | `session.rs` | [`SessionHandler`], [`Session`], [`DisconnectReason`] |
//! | `event_loop.rs` | one I/O thread: poll, read, dispatch, flush, timers, inbox |
//! | `service.rs` | [`Service`]: threads, listen, connect, shutdown, stats |
//! | `listener.rs` | [`Listener`] and the max-sessions limit |
//! | `job_queue.rs`, `job_timer.rs` | [`JobQueue`] and its timers |
//! | `timer.rs` | the timer heap the I/O threads sleep on |
//! | `loom.rs` | `std`/`loom` switch for the model tests |

#![warn(missing_docs, unreachable_pub)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod config;
mod event_loop;
pub mod frame;
mod job_queue;
mod job_timer;
mod listener;
mod loom;
mod recv_buffer;
mod send_buffer;
mod send_queue;
mod service;
mod session;
mod timer;
mod transport;

pub use event_loop::Task;
pub use job_queue::{JobQueue, WeakJobQueue};
pub use listener::Listener;
pub use send_buffer::{encode_with, SendBuffer};
pub use service::{
    BuildError, ConnectError, ListenError, Service, ServiceBuilder, ServiceHandle, ServiceStats,
};
pub use session::{DisconnectReason, HandlerError, Session, SessionHandler, SessionId};
