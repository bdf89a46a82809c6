//! # server-core
//!
//! The networking core of a game server, after the C#/C++ "ServerCore" of a well-known
//! game-server course, rebuilt over [`mio`]:
//!
//! * a [`Service`] runs N I/O threads, each with its own `mio::Poll`, user-space timers and
//!   an inbox other threads reach through a coalesced waker;
//! * [`Service::listen`] accepts connections (with a max-sessions limit, per-session inbound
//!   rate limits and back-off when descriptors run out) and [`Service::connect`] opens them;
//! * every connection is a packet session: bytes are framed as `[u16 size][u16 id][body]`
//!   ([`frame`]) and each whole frame is handed to your [`SessionHandler`]; a [`Session`]
//!   handle sends from any thread, and everything queued for a session in one loop
//!   iteration leaves in one `writev`;
//! * a [`JobQueue`] owns game state (a room) and runs jobs on it one at a time, so game code
//!   needs no locks; [`JobQueue::push_after`] and [`JobQueue::push_every`] are the JobTimer;
//!   a job reaches a player's handler with [`Session::with_handler`];
//! * [`encode_with`] encodes packets into shared chunks ([`SendBuffer`]) so a broadcast is
//!   serialised once;
//! * with the `websocket` feature, `Service::listen_ws` serves browser and WebGL clients:
//!   the same frames inside binary WebSocket messages, the same [`SessionHandler`], plain
//!   HTTP (a page) on the port's other paths; `Service::connect_ws` is its client side.
//!   A handler that cares asks [`Session::transport`].
//!
//! Your code is contained: a panic in any hook closes only that session
//! ([`DisconnectReason::Panicked`]); a panicking job, task or timer is logged and the rest
//! runs. Work handed to the service either runs or its caller gets an `Err`
//! ([`SpawnError`]). [`ServiceStats`] counts everything a dashboard needs; the library logs
//! through [`log`] and never prints.
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
//! | path | what lives there |
//! |---|---|
//! | `frame.rs` | the frame header: parse and write, no I/O |
//! | `connection/` | the per-connection state machine, free of I/O: receive buffer, send queue, rate limit, pauses, close reasons; `websocket.rs` applies the WebSocket codec to them |
//! | `runtime/` | the only code that touches mio: event loop, mailboxes, accept, session life, a WebSocket's upgrade, faults |
//! | `session/` | [`SessionHandler`], [`Session`], [`DisconnectReason`], [`InFlight`] |
//! | `service.rs` | [`Service`], [`ServiceBuilder`], [`ServiceHandle`]: threads, routing, shutdown |
//! | `listener.rs` | [`Listener`], [`ListenOptions`] |
//! | `config.rs` | every default ([`defaults`]) and the checks on settings |
//! | `errors.rs` | one error type per operation |
//! | `stats.rs` | [`ServiceStats`] and the JobQueue lag histogram |
//! | `guard.rs` | the one guarded path every piece of user code runs through |
//! | `job_queue.rs`, `job_timer.rs` | [`JobQueue`] and its timers |
//! | `send_buffer.rs` | the encoding arena behind [`encode_with`] |
//! | `transport/` | byte codecs in front of the connection core: [`Transport`]; `websocket/` (feature `websocket`): handshake, frames, decoder, client side, `WsOptions`, `HttpResponse`, `WsUrl` |
//! | `testing.rs` | sessions without sockets, for unit tests of game code |
//! | `loom.rs` | `std`/`loom` switch for the model tests |

#![warn(missing_docs, unreachable_pub)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod config;
mod connection;
mod errors;
pub mod frame;
mod guard;
mod job_queue;
mod job_timer;
mod listener;
mod loom;
mod runtime;
mod send_buffer;
mod service;
mod session;
mod stats;
pub mod testing;
mod transport;

pub use config::{defaults, ConfigError};
pub use connection::{Excess, RateLimit};
pub use errors::{BuildError, ConnectError, ListenError, SpawnError};
pub use job_queue::{JobQueue, WeakJobQueue};
pub use listener::{ListenOptions, Listener};
pub use send_buffer::{encode_with, SendBuffer};
pub use service::{LoopStatus, Service, ServiceBuilder, ServiceHandle};
pub use session::{
    DisconnectKind, DisconnectReason, HandlerCallError, HandlerError, Hook, InFlight, Session,
    SessionHandler, SessionId,
};
pub use stats::{DisconnectCounts, LagHistogram, ServiceStats};
#[cfg(feature = "websocket")]
pub use transport::websocket::{
    HttpMethod, HttpRequest, HttpResponse, WsOptions, WsUrl, WsUrlError,
};
pub use transport::Transport;
