//! One error type per operation of the service.

use crate::config::ConfigError;
use std::io;
use std::net::SocketAddr;
use thiserror::Error;

/// Why a [`Service`](crate::Service) could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Creating a `mio::Poll` or its waker failed.
    #[error("failed to create an event loop: {0}")]
    Poll(#[source] io::Error),
    /// Spawning an I/O thread failed.
    #[error("failed to spawn an I/O thread: {0}")]
    Spawn(#[source] io::Error),
}

/// Why [`Service::listen`](crate::Service::listen) failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ListenError {
    /// The address could not be bound (in use, not permitted, ...).
    #[error("failed to listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A listener setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The service has shut down, or no I/O thread is alive to own the socket.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
}

/// Why a connect could not even start. Failures after it started (refused, timed out) go to
/// [`SessionHandler::on_connect_failed`](crate::SessionHandler::on_connect_failed).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// Creating the socket or starting the connect failed (out of descriptors, unreachable).
    #[error("failed to connect to {addr}: {source}")]
    Socket {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The service has shut down, or no I/O thread is alive to own the socket.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
}

/// Why work could not be handed to an I/O thread (a task, a timer, a JobQueue timer, a
/// listener or a connection). When this is returned the work was not accepted: nothing was
/// queued that will silently never run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// [`Service::shutdown`](crate::Service::shutdown) has started.
    #[error("the service has shut down")]
    Stopped,
    /// Every I/O thread has died (after faults inside server-core).
    #[error("no I/O thread of the service is alive")]
    NoLiveLoop,
}
