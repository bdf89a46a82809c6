//! The service: N I/O threads, the listeners and connectors that feed them, and shutdown.

use crate::config::Config;
use crate::event_loop::{
    configure_socket, current_loop, Adoption, Command, EventLoop, ListenerEntry, LoopShared, Task,
};
use crate::listener::{Listener, ListenerShared};
use crate::session::SessionHandler;
use log::{info, warn};
use mio::Poll;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thiserror::Error;

static NEXT_SERVICE_ID: AtomicU64 = AtomicU64::new(1);

/// Settings for a [`Service`]; every setter names its default.
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let service = server_core::Service::builder()
///     .threads(2)
///     .max_sessions(5_000)
///     .max_send_queue(1 << 20)
///     .idle_timeout(Some(Duration::from_secs(300)))
///     .build()?;
/// service.shutdown();
/// # Ok::<(), server_core::BuildError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ServiceBuilder {
    config: Config,
}

impl ServiceBuilder {
    /// I/O threads, each with its own `mio::Poll` (default: available cores; at least 1).
    pub fn threads(mut self, threads: usize) -> Self {
        self.config.threads = threads;
        self
    }

    /// Open sessions allowed per listener; connections past it are closed at once and
    /// logged (default 10,000).
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.config.max_sessions = max;
        self
    }

    /// Length of each listener's accept queue (default 4,096; the kernel caps it at
    /// `net.core.somaxconn`). A burst of connects larger than the queue is not refused but
    /// answered with SYN cookies: the client believes it is connected while the server never
    /// sees the connection, so a short queue turns a connect storm into silent hangs.
    pub fn listen_backlog(mut self, backlog: u32) -> Self {
        self.config.listen_backlog = backlog;
        self
    }

    /// Largest incoming frame, header included; a bigger size field closes the session
    /// (default and upper bound 65,535, the most a `u16` size can say; lower bound 4).
    pub fn max_packet_size(mut self, bytes: usize) -> Self {
        self.config.max_packet_size = bytes;
        self
    }

    /// Bytes that may wait in one session's send queue; past it the session is closed with
    /// [`SendQueueOverflow`](crate::DisconnectReason::SendQueueOverflow) (default 4 MiB).
    pub fn max_send_queue(mut self, bytes: usize) -> Self {
        self.config.max_send_queue = bytes;
        self
    }

    /// First allocation of a session's receive buffer, made on its first read; it grows to
    /// the frame in progress, up to `max_packet_size` (default 4 KiB).
    pub fn recv_buffer_initial(mut self, bytes: usize) -> Self {
        self.config.recv_buffer_initial = bytes;
        self
    }

    /// `TCP_NODELAY` on every socket (default on: Nagle plus delayed ACK adds ~40 ms).
    pub fn nodelay(mut self, on: bool) -> Self {
        self.config.nodelay = on;
        self
    }

    /// TCP keepalive idle time, so peers that vanished without a FIN are reaped
    /// (default 60 s; `None` turns it off).
    pub fn keepalive(mut self, idle: Option<Duration>) -> Self {
        self.config.keepalive = idle;
        self
    }

    /// Close sessions that sent nothing for this long (default `None`: never). Each I/O
    /// thread checks its sessions every eighth of the timeout, so a silent session is closed
    /// between 1 and 1.125 timeouts after its last byte.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Outgoing connects that have not completed by then fail with `TimedOut` (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How long a disconnecting session (or the whole service, at shutdown) may spend
    /// flushing what it has queued before it is closed regardless (default 2 s).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.config.linger = linger;
        self
    }

    /// How long one thread runs a [`JobQueue`](crate::JobQueue) before handing the rest to
    /// an I/O thread's task list, so a busy room cannot stall the thread that pushed to it
    /// (default 2 ms).
    pub fn job_budget(mut self, budget: Duration) -> Self {
        self.config.job_budget = budget;
        self
    }

    /// Pause after `accept` fails for lack of descriptors (default 100 ms).
    pub fn accept_backoff(mut self, backoff: Duration) -> Self {
        self.config.accept_backoff = backoff;
        self
    }

    /// Starts the I/O threads.
    ///
    /// # Errors
    /// [`BuildError`] if a poll instance, a waker or a thread cannot be created.
    pub fn build(self) -> Result<Service, BuildError> {
        Service::start(self.config.normalized())
    }
}

/// Why a [`Service`] could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Creating a `mio::Poll` or its waker failed.
    #[error("failed to create an event loop: {0}")]
    Poll(#[source] io::Error),
    /// Spawning an I/O thread failed.
    #[error("failed to spawn an I/O thread: {0}")]
    Spawn(#[source] io::Error),
}

/// Why [`Service::listen`] failed.
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
    /// The service has been shut down.
    #[error("the service has shut down")]
    Stopped,
}

/// Why a connect could not even start. Failures after it started (refused, timed out) go to
/// [`SessionHandler::on_connect_failed`].
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
    /// The service has been shut down.
    #[error("the service has shut down")]
    Stopped,
}

/// Counters over the whole service, summed over its I/O threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceStats {
    /// Sessions open now (accepted and outgoing).
    pub sessions: usize,
    /// Frames delivered to handlers.
    pub packets_in: u64,
    /// Packets fully written to sockets (each recipient of a broadcast counts once).
    pub packets_out: u64,
    /// Bytes read from sockets.
    pub bytes_in: u64,
    /// Bytes written to sockets.
    pub bytes_out: u64,
    /// `read` system calls on sessions (including the final one that finds nothing).
    pub read_calls: u64,
    /// `writev` system calls on sessions.
    pub write_calls: u64,
    /// Event-loop iterations (each one `epoll_wait`), summed over the I/O threads.
    pub loop_iterations: u64,
}

/// The running networking core: N I/O threads with their sessions, listeners and timers.
///
/// Dropping it shuts it down as [`shutdown`](Self::shutdown) does.
///
/// # Examples
/// An echo server, and a client that talks to it:
/// ```
/// use bytes::Bytes;
/// use server_core::{HandlerError, Service, Session, SessionHandler};
/// use std::sync::mpsc;
///
/// struct Echo;
/// impl SessionHandler for Echo {
///     fn on_packet(&mut self, s: &Session, frame: &[u8]) -> Result<(), HandlerError> {
///         s.send(Bytes::copy_from_slice(frame));
///         Ok(())
///     }
/// }
///
/// struct Client(mpsc::Sender<Vec<u8>>);
/// impl SessionHandler for Client {
///     fn on_connected(&mut self, s: &Session) {
///         s.send(Bytes::from_static(&[6, 0, 1, 0, b'h', b'i']));
///     }
///     fn on_packet(&mut self, _: &Session, frame: &[u8]) -> Result<(), HandlerError> {
///         let _ = self.0.send(frame.to_vec());
///         Ok(())
///     }
/// }
///
/// let service = Service::builder().threads(2).build()?;
/// let listener = service.listen("127.0.0.1:0".parse()?, || Echo)?;
/// let (tx, rx) = mpsc::channel();
/// service.connect(listener.local_addr(), Client(tx))?;
/// let echoed = rx.recv_timeout(std::time::Duration::from_secs(5))?;
/// assert_eq!(echoed, [6, 0, 1, 0, b'h', b'i']);
/// service.shutdown();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Service {
    handle: ServiceHandle,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A cloneable handle to a [`Service`]: run tasks and timers on its I/O threads, make
/// [`JobQueue`](crate::JobQueue)s, read its counters. It does not keep the service alive.
#[derive(Clone)]
pub struct ServiceHandle {
    pub(crate) inner: Arc<ServiceInner>,
}

pub(crate) struct ServiceInner {
    id: u64,
    pub(crate) loops: Arc<[Arc<LoopShared>]>,
    pub(crate) config: Arc<Config>,
    /// Round-robin cursor for tasks, timers and outgoing connections.
    next_loop: AtomicUsize,
    stopping: AtomicBool,
}

impl Service {
    /// A builder with the defaults.
    pub fn builder() -> ServiceBuilder {
        ServiceBuilder::default()
    }

    fn start(config: Config) -> Result<Self, BuildError> {
        let id = NEXT_SERVICE_ID.fetch_add(1, Ordering::Relaxed);
        let config = Arc::new(config);
        let mut polls = Vec::with_capacity(config.threads);
        let mut shared = Vec::with_capacity(config.threads);
        for index in 0..config.threads {
            let poll = Poll::new().map_err(BuildError::Poll)?;
            shared.push(Arc::new(
                LoopShared::new(id, index, &poll).map_err(BuildError::Poll)?,
            ));
            polls.push(poll);
        }
        let loops: Arc<[Arc<LoopShared>]> = shared.into();
        let handle = ServiceHandle {
            inner: Arc::new(ServiceInner {
                id,
                loops: Arc::clone(&loops),
                config: Arc::clone(&config),
                next_loop: AtomicUsize::new(0),
                stopping: AtomicBool::new(false),
            }),
        };
        let service = Service {
            handle,
            threads: Mutex::new(Vec::new()),
        };
        for (index, poll) in polls.into_iter().enumerate() {
            let event_loop = EventLoop::new(
                Arc::clone(&loops[index]),
                Arc::clone(&loops),
                poll,
                Arc::clone(&config),
            );
            let thread = std::thread::Builder::new()
                .name(format!("server-core-io-{index}"))
                .spawn(move || event_loop.run())
                .map_err(BuildError::Spawn)?;
            service.lock_threads().push(thread);
        }
        info!("service started with {} I/O threads", config.threads);
        Ok(service)
    }

    /// A cloneable handle for tasks, timers, job queues and stats.
    #[must_use]
    pub fn handle(&self) -> ServiceHandle {
        self.handle.clone()
    }

    /// Starts accepting on `addr`; `factory` makes the handler of each accepted connection
    /// (the course's `Listener.Init(endPoint, () => new ClientSession())`).
    ///
    /// Bind errors are reported here, synchronously. Accepting runs on one I/O thread;
    /// accepted sessions are spread over all of them.
    ///
    /// # Errors
    /// [`ListenError::Bind`] if the address cannot be bound; [`ListenError::Stopped`] after
    /// shutdown.
    pub fn listen<H, F>(&self, addr: SocketAddr, factory: F) -> Result<Listener, ListenError>
    where
        H: SessionHandler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        let inner = &self.handle.inner;
        if inner.stopping.load(Ordering::Acquire) {
            return Err(ListenError::Stopped);
        }
        let std_listener = bind_listener(addr, inner.config.listen_backlog)
            .map_err(|source| ListenError::Bind { addr, source })?;
        let local_addr = std_listener
            .local_addr()
            .map_err(|source| ListenError::Bind { addr, source })?;
        let shared = Arc::new(ListenerShared::new(
            local_addr,
            Box::new(move || Box::new(factory()) as Box<dyn SessionHandler>),
            inner.config.max_sessions,
        ));
        let entry = ListenerEntry {
            socket: mio::net::TcpListener::from_std(std_listener),
            shared: Arc::clone(&shared),
            paused: false,
        };
        inner
            .next_loop()
            .try_submit(Command::Listen(Box::new(entry)))
            .map_err(|_| ListenError::Stopped)?;
        Ok(Listener { shared })
    }

    /// Starts one outgoing connection (the course's `Connector.Connect`). The handler's
    /// `on_connected` runs once it is established; if it cannot be (refused, timed out after
    /// the connect timeout), `on_connect_failed` runs instead.
    ///
    /// # Errors
    /// [`ConnectError::Socket`] if the connect could not even start (for example, out of
    /// descriptors); [`ConnectError::Stopped`] after shutdown.
    pub fn connect<H: SessionHandler>(
        &self,
        addr: SocketAddr,
        handler: H,
    ) -> Result<(), ConnectError> {
        self.handle.connect(addr, handler)
    }

    /// Starts `count` outgoing connections with handlers made by `factory(i)` for
    /// `i in 0..count` (the course's DummyClient: `connector.Connect(endPoint, factory, 500)`).
    ///
    /// # Errors
    /// The first [`ConnectError`]; connections started before it keep going.
    pub fn connect_many<H, F>(
        &self,
        addr: SocketAddr,
        count: usize,
        mut factory: F,
    ) -> Result<(), ConnectError>
    where
        H: SessionHandler,
        F: FnMut(usize) -> H,
    {
        (0..count).try_for_each(|i| self.handle.connect(addr, factory(i)))
    }

    /// Counters summed over the I/O threads.
    #[must_use]
    pub fn stats(&self) -> ServiceStats {
        self.handle.stats()
    }

    /// Stops the service: listeners close at once, every session gets up to the linger time
    /// (default 2 s) to flush what is queued, then all sessions close with
    /// [`DisconnectReason::Shutdown`](crate::DisconnectReason::Shutdown) and the I/O threads
    /// are joined. Idempotent.
    pub fn shutdown(&self) {
        let inner = &self.handle.inner;
        if !inner.stopping.swap(true, Ordering::AcqRel) {
            let deadline = Instant::now() + inner.config.linger;
            for shared in inner.loops.iter() {
                let _ = shared.push_remote(Command::Shutdown { deadline });
            }
        }
        let threads = std::mem::take(&mut *self.lock_threads());
        if threads.is_empty() {
            return; // already stopped (shutdown, then drop)
        }
        let on_io_thread = current_loop(inner.id).is_some();
        for thread in threads {
            if on_io_thread {
                warn!("Service::shutdown called from an I/O thread: not waiting for threads");
                continue;
            }
            if thread.join().is_err() {
                warn!("an I/O thread panicked");
            }
        }
        info!("service stopped");
    }

    fn lock_threads(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.threads.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A non-blocking listening socket with our backlog (`std` fixes it at 128) and
/// `SO_REUSEADDR`, so a restarted server can bind while old connections sit in TIME_WAIT.
fn bind_listener(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("threads", &self.handle.inner.loops.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl ServiceInner {
    fn next_loop(&self) -> &LoopShared {
        let index = self.next_loop.fetch_add(1, Ordering::Relaxed) % self.loops.len();
        &self.loops[index]
    }
}

impl ServiceHandle {
    /// Runs `task` on one of the I/O threads, soon.
    ///
    /// # Errors
    /// Gives the task back if the service has shut down.
    pub fn spawn<F: FnOnce() + Send + 'static>(&self, task: F) -> Result<(), Task> {
        self.execute(Box::new(task))
    }

    /// Runs `task` on one of the I/O threads after `delay` (user-space timers: the threads
    /// sleep until the earliest deadline, never poll on an interval).
    ///
    /// # Errors
    /// Gives the task back if the service has shut down.
    pub fn spawn_after<F: FnOnce() + Send + 'static>(
        &self,
        delay: Duration,
        task: F,
    ) -> Result<(), Task> {
        self.execute_after(delay, Box::new(task))
    }

    /// Counters summed over the I/O threads.
    #[must_use]
    pub fn stats(&self) -> ServiceStats {
        let mut total = ServiceStats::default();
        for shared in self.inner.loops.iter() {
            let s = &shared.stats;
            total.sessions += s.sessions.load(Ordering::Relaxed);
            total.packets_in += s.packets_in.load(Ordering::Relaxed);
            total.packets_out += s.packets_out.load(Ordering::Relaxed);
            total.bytes_in += s.bytes_in.load(Ordering::Relaxed);
            total.bytes_out += s.bytes_out.load(Ordering::Relaxed);
            total.read_calls += s.read_calls.load(Ordering::Relaxed);
            total.write_calls += s.write_calls.load(Ordering::Relaxed);
            total.loop_iterations += s.iterations.load(Ordering::Relaxed);
        }
        total
    }

    /// Number of I/O threads.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.inner.loops.len()
    }

    /// Whether [`Service::shutdown`] has started.
    #[must_use]
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::Acquire)
    }

    pub(crate) fn job_budget(&self) -> Duration {
        self.inner.config.job_budget
    }

    /// See [`Service::connect`].
    ///
    /// # Errors
    /// As [`Service::connect`].
    pub fn connect<H: SessionHandler>(
        &self,
        addr: SocketAddr,
        handler: H,
    ) -> Result<(), ConnectError> {
        if self.is_stopping() {
            return Err(ConnectError::Stopped);
        }
        let stream = mio::net::TcpStream::connect(addr)
            .map_err(|source| ConnectError::Socket { addr, source })?;
        configure_socket(&stream, &self.inner.config);
        let adoption = Box::new(Adoption {
            stream,
            peer_addr: addr,
            handler: Box::new(handler),
            listener: None,
            connecting: true,
        });
        self.inner
            .next_loop()
            .try_submit(Command::Adopt(adoption))
            .map_err(|_| ConnectError::Stopped)
    }

    /// Hands `task` to an I/O thread. From an I/O thread of this service it is staged and
    /// forwarded after the packets this thread already sent, which keeps a JobQueue's output
    /// in order when its execution moves between threads.
    pub(crate) fn execute(&self, task: Task) -> Result<(), Task> {
        match self.inner.next_loop().try_submit(Command::Task(task)) {
            Ok(()) => Ok(()),
            Err(Command::Task(task)) => Err(task),
            Err(_) => Ok(()), // try_submit gives back the command it was given: not reached
        }
    }

    pub(crate) fn execute_after(&self, delay: Duration, task: Task) -> Result<(), Task> {
        let deadline = Instant::now() + delay;
        match self
            .inner
            .next_loop()
            .try_submit(Command::Timer { deadline, task })
        {
            Ok(()) => Ok(()),
            Err(Command::Timer { task, .. }) => Err(task),
            Err(_) => Ok(()), // try_submit gives back the command it was given: not reached
        }
    }
}

impl fmt::Debug for ServiceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceHandle")
            .field("threads", &self.inner.loops.len())
            .finish()
    }
}
