//! The service: N I/O threads, the listeners and connectors that feed them, routing of work
//! to live threads, counters, and shutdown.

use crate::config::{Config, ListenConfig};
use crate::connection::{Limits, RateLimit};
use crate::errors::{BuildError, ConnectError, ListenError, SpawnError};
use crate::listener::{ListenOptions, Listener, ListenerParts, ListenerShared};
use crate::runtime::{
    bind_listener, configure_socket, current_loop, Adoption, Command, EventLoop, ListenerEntry,
    LoopShared, Task,
};
use crate::session::SessionHandler;
use crate::stats::{JobStats, ServiceStats};
#[cfg(feature = "websocket")]
use crate::transport::websocket::{WsOptions, WsUrl};
use crate::transport::TransportState;
use log::{info, warn};
use mio::Poll;
use std::any::TypeId;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static NEXT_SERVICE_ID: AtomicU64 = AtomicU64::new(1);

/// Settings for a [`Service`]; every setter names its default (all of them are in
/// [`defaults`](crate::defaults)). [`build`](Self::build) checks every value.
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
///
/// let bad = server_core::Service::builder().max_packet_size(2).build();
/// assert!(bad.unwrap_err().to_string().contains("max_packet_size"));
/// # Ok::<(), server_core::BuildError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ServiceBuilder {
    config: Config,
}

impl ServiceBuilder {
    /// I/O threads, each with its own `mio::Poll` (default: available cores; 1 to 1024).
    pub fn threads(mut self, threads: usize) -> Self {
        self.config.threads = threads;
        self
    }

    /// Open sessions allowed per listener started with [`Service::listen`]; connections
    /// past it are closed at once and logged (default 10,000).
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.config.listen.max_sessions = max;
        self
    }

    /// Inbound rate limit of sessions accepted by [`Service::listen`] (default
    /// [`RateLimit::default`]: 1,000 packets/s and 1 MiB/s per session, throttled beyond;
    /// `None`: unlimited). Outgoing connections are never rate limited.
    pub fn rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.config.listen.rate_limit = limit;
        self
    }

    /// Live [`InFlight`](crate::InFlight) guards a session may hold before reading from it
    /// pauses (default 256).
    pub fn max_in_flight(mut self, max: u32) -> Self {
        self.config.listen.max_in_flight = max;
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

    /// The soft cap on bytes waiting in one session's send queue (default 4 MiB; at least
    /// `max_packet_size`). Above it, reading from the session pauses; if its backlog stays
    /// above it for the [`send_stall_timeout`](Self::send_stall_timeout), the peer reads too
    /// slowly and the session is closed with
    /// [`SlowReader`](crate::DisconnectReason::SlowReader). One large burst that a reader
    /// drains in time is not punished. A hard cap of four times this bounds the memory one
    /// session can pin: a push past it closes at once with
    /// [`SendQueueOverflow`](crate::DisconnectReason::SendQueueOverflow).
    pub fn max_send_queue(mut self, bytes: usize) -> Self {
        self.config.max_send_queue = bytes;
        self
    }

    /// How long a send backlog may stay above [`max_send_queue`](Self::max_send_queue)
    /// before the session is closed as a slow reader (default 2 s).
    pub fn send_stall_timeout(mut self, timeout: Duration) -> Self {
        self.config.send_stall_timeout = timeout;
        self
    }

    /// First allocation of a session's receive buffer, made on its first read; it grows to
    /// the frame in progress, up to `max_packet_size` (default 4 KiB, or `max_packet_size`
    /// if that is smaller; 4 to `max_packet_size`).
    pub fn recv_buffer_initial(mut self, bytes: usize) -> Self {
        self.config.recv_buffer_initial = Some(bytes);
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
    /// between 1 and 1.125 timeouts after its last byte. Time spent with reading paused by
    /// server-core (rate limit, backpressure) does not count as silence.
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

    /// Checks the settings and starts the I/O threads.
    ///
    /// # Errors
    /// [`BuildError::Config`] naming the first invalid setting; [`BuildError::Poll`] or
    /// [`BuildError::Spawn`] if a poll instance, a waker or a thread cannot be created.
    pub fn build(self) -> Result<Service, BuildError> {
        self.config.validate()?;
        Service::start(self.config)
    }
}

/// The state of one I/O thread, from [`ServiceHandle::loop_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoopStatus {
    /// The thread's index (its name is `server-core-io-{index}`).
    pub index: usize,
    /// False once the thread has stopped after a fault inside server-core.
    pub alive: bool,
    /// Sessions it owns.
    pub sessions: usize,
    /// How long it has been working since it last waited for events (zero while it
    /// waits). Seconds here mean some hook, job or task is blocking the thread.
    pub busy_for: Duration,
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
/// [`JobQueue`](crate::JobQueue)s, open connections, read its counters. It does not keep
/// the service alive.
#[derive(Clone)]
pub struct ServiceHandle {
    pub(crate) inner: Arc<ServiceInner>,
}

pub(crate) struct ServiceInner {
    id: u64,
    pub(crate) loops: Arc<[Arc<LoopShared>]>,
    pub(crate) config: Arc<Config>,
    /// Limits of outgoing connections: the service's sizes, no inbound rate limit (a client
    /// must not throttle what its server sends it).
    connect_limits: Arc<Limits>,
    /// The same for outgoing WebSocket connections (room for the handshake and the
    /// decoder's tail in the receive buffer).
    #[cfg(feature = "websocket")]
    ws_connect_limits: Arc<Limits>,
    /// Round-robin cursor for tasks, timers, listeners and outgoing connections.
    next_loop: AtomicUsize,
    stopping: AtomicBool,
    pub(crate) jobs: JobStats,
}

impl Service {
    /// A builder with the defaults.
    pub fn builder() -> ServiceBuilder {
        ServiceBuilder::default()
    }

    fn start(config: Config) -> Result<Self, BuildError> {
        let id = NEXT_SERVICE_ID.fetch_add(1, Ordering::Relaxed);
        let config = Arc::new(config);
        let epoch = Instant::now();
        let mut polls = Vec::with_capacity(config.threads);
        let mut shared = Vec::with_capacity(config.threads);
        for index in 0..config.threads {
            let poll = Poll::new().map_err(BuildError::Poll)?;
            shared.push(Arc::new(
                LoopShared::new(id, index, &poll, epoch).map_err(BuildError::Poll)?,
            ));
            polls.push(poll);
        }
        let loops: Arc<[Arc<LoopShared>]> = shared.into();
        let handle = ServiceHandle {
            inner: Arc::new(ServiceInner {
                id,
                loops: Arc::clone(&loops),
                connect_limits: Arc::new(limits_for(&config, None)),
                #[cfg(feature = "websocket")]
                ws_connect_limits: Arc::new(ws_limits(
                    limits_for(&config, None),
                    crate::transport::websocket::state::CLIENT_MAX_HEAD_BYTES,
                )),
                config: Arc::clone(&config),
                next_loop: AtomicUsize::new(0),
                stopping: AtomicBool::new(false),
                jobs: JobStats::default(),
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

    /// Starts accepting on `addr` with the service's default listener settings; `factory`
    /// makes the handler of each accepted connection (the course's
    /// `Listener.Init(endPoint, () => new ClientSession())`).
    ///
    /// Bind errors are reported here, synchronously. Accepting runs on one I/O thread;
    /// accepted sessions are spread over all of them.
    ///
    /// # Errors
    /// As [`listen_with`](Self::listen_with).
    pub fn listen<H, F>(&self, addr: SocketAddr, factory: F) -> Result<Listener, ListenError>
    where
        H: SessionHandler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        let options = ListenOptions {
            config: self.handle.inner.config.listen.clone(),
        };
        self.listen_with(addr, options, factory)
    }

    /// Like [`listen`](Self::listen), with this listener's own session limit, rate limit
    /// and in-flight limit (a public port and an admin port can differ).
    ///
    /// # Errors
    /// [`ListenError::Config`] for an invalid option; [`ListenError::Bind`] if the address
    /// cannot be bound; [`ListenError::Spawn`] after shutdown.
    ///
    /// # Examples
    /// ```
    /// use server_core::{HandlerError, ListenOptions, RateLimit, Service, Session, SessionHandler};
    ///
    /// struct Ignore;
    /// impl SessionHandler for Ignore {
    ///     fn on_packet(&mut self, _: &Session, _: &[u8]) -> Result<(), HandlerError> { Ok(()) }
    /// }
    ///
    /// let service = Service::builder().threads(1).build()?;
    /// let options = ListenOptions::new().max_sessions(100).rate_limit(Some(RateLimit::new(50, 16_384)));
    /// let listener = service.listen_with("127.0.0.1:0".parse()?, options, || Ignore)?;
    /// assert_eq!(listener.max_sessions(), 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen_with<H, F>(
        &self,
        addr: SocketAddr,
        options: ListenOptions,
        factory: F,
    ) -> Result<Listener, ListenError>
    where
        H: SessionHandler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        self.start_listener(addr, options, factory, |limits| (limits, None))
    }

    /// Starts accepting WebSocket connections on `addr`: browser and WebGL clients that
    /// cannot open a TCP socket. The same [`SessionHandler`] serves them as TCP sessions,
    /// and `factory` runs once per connection whose upgrade is accepted (a page load or a
    /// refused handshake makes no handler). Binary messages carry the same frame stream as
    /// TCP (a message may hold several frames, a frame may span messages); what is queued
    /// for a session in one loop iteration leaves as one binary message, the shared
    /// broadcast `Bytes` written behind a header of their own, not copied.
    ///
    /// One port serves the game socket on [`WsOptions::path`] and plain HTTP on every
    /// other path, through [`WsOptions::http`] (a web page, a 404). Hostile input closes
    /// only its connection, with a logged reason: a malformed or slow handshake or an
    /// oversized head is answered with its HTTP status (400, 405, 408, 426, 431); after the
    /// upgrade a protocol violation gets a close frame with its code (1002 unmasked frame,
    /// reserved bits or opcode, 1003 text frame, 1009 message too big), and the session ends
    /// with [`DisconnectReason::WebSocket`](crate::DisconnectReason::WebSocket). Pings are
    /// answered; the peer's close is answered and ends the session with
    /// [`DisconnectReason::WebSocketClosed`](crate::DisconnectReason::WebSocketClosed).
    /// Rate limits, in-flight limits and the send caps apply exactly as to TCP sessions.
    ///
    /// Only with the `websocket` feature. TLS (`wss://`) belongs to a proxy in front.
    ///
    /// # Errors
    /// [`ListenError::Config`] for an invalid option, named as its setter
    /// (`max_head_bytes`, ...); otherwise as [`listen_with`](Self::listen_with).
    ///
    /// # Examples
    /// ```
    /// use bytes::Bytes;
    /// use server_core::{HandlerError, HttpResponse, Service, Session, SessionHandler, WsOptions};
    ///
    /// struct Echo;
    /// impl SessionHandler for Echo {
    ///     fn on_packet(&mut self, s: &Session, frame: &[u8]) -> Result<(), HandlerError> {
    ///         s.send(Bytes::copy_from_slice(frame));
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let service = Service::builder().threads(1).build()?;
    /// let options = WsOptions::new().path("/ws").http(|request| match request.path() {
    ///     "/" => HttpResponse::ok("text/html; charset=utf-8", "<!doctype html><p>play</p>"),
    ///     _ => HttpResponse::not_found(),
    /// });
    /// let listener = service.listen_ws("127.0.0.1:0".parse()?, options, || Echo)?;
    /// println!("open http://{}/", listener.local_addr());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "websocket")]
    pub fn listen_ws<H, F>(
        &self,
        addr: SocketAddr,
        options: WsOptions,
        factory: F,
    ) -> Result<Listener, ListenError>
    where
        H: SessionHandler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        options.validate()?;
        let listen = options.listen.clone().unwrap_or_else(|| ListenOptions {
            config: self.handle.inner.config.listen.clone(),
        });
        let head_bytes = options.config.handshake.max_head_bytes;
        let server = Arc::new(crate::transport::websocket::WsServer {
            config: options.config,
            http: options.http,
        });
        self.start_listener(addr, listen, factory, move |limits| {
            (ws_limits(limits, head_bytes), Some(server))
        })
    }

    /// Binds, and hands the listener to a loop. `transport` turns the TCP limits into the
    /// port's (and says whether it is a WebSocket port).
    fn start_listener<H, F>(
        &self,
        addr: SocketAddr,
        options: ListenOptions,
        factory: F,
        transport: impl FnOnce(Limits) -> (Limits, Option<Arc<WsServerSettings>>),
    ) -> Result<Listener, ListenError>
    where
        H: SessionHandler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        let inner = &self.handle.inner;
        if inner.stopping.load(Ordering::Acquire) {
            return Err(SpawnError::Stopped.into());
        }
        options.config.validate(inner.config.max_packet_size)?;
        let (limits, ws) = transport(limits_for(&inner.config, Some(&options.config)));
        #[cfg(not(feature = "websocket"))]
        let _: Option<Arc<WsServerSettings>> = ws;
        let std_listener = bind_listener(addr, inner.config.listen_backlog)
            .map_err(|source| ListenError::Bind { addr, source })?;
        let local_addr = std_listener
            .local_addr()
            .map_err(|source| ListenError::Bind { addr, source })?;
        let owner = inner.pick_loop();
        let shared = Arc::new(ListenerShared::new(ListenerParts {
            local_addr,
            factory: Box::new(move || Box::new(factory()) as Box<dyn SessionHandler>),
            handler_type: (TypeId::of::<H>(), std::any::type_name::<H>()),
            limits: Arc::new(limits),
            config: options.config,
            owner,
            loops: Arc::clone(&inner.loops),
            #[cfg(feature = "websocket")]
            ws,
        }));
        let entry = ListenerEntry {
            socket: mio::net::TcpListener::from_std(std_listener),
            shared: Arc::clone(&shared),
            paused: false,
        };
        inner
            .route(owner, Command::Listen(Box::new(entry)))
            .map_err(|(_, e)| e)?;
        Ok(Listener { shared })
    }

    /// Starts one outgoing connection (the course's `Connector.Connect`). The handler's
    /// `on_connected` runs once it is established; if it cannot be (refused, timed out after
    /// the connect timeout), `on_connect_failed` runs instead.
    ///
    /// # Errors
    /// [`ConnectError::Socket`] if the connect could not even start (for example, out of
    /// descriptors); [`ConnectError::Spawn`] after shutdown.
    pub fn connect<H: SessionHandler>(
        &self,
        addr: SocketAddr,
        handler: H,
    ) -> Result<(), ConnectError> {
        self.handle.connect(addr, handler)
    }

    /// Starts one outgoing WebSocket connection to `url` (a load tester's or a bot's; see
    /// [`WsUrl`]): the upgrade request goes out once TCP is up, and the handler's
    /// `on_connected` runs when the server's 101 (and its accept key) checks out; a refused
    /// or timed-out (10 s) upgrade calls `on_connect_failed` instead. After that the session
    /// is like a TCP one: frames sent in one iteration leave as one binary message, masked
    /// with a fresh key per message (from a per-connection generator seeded by the OS), and
    /// the server's messages are decoded back into frames.
    ///
    /// Only with the `websocket` feature.
    ///
    /// # Errors
    /// As [`connect`](Self::connect); [`ConnectError::Socket`] also when the OS gives no
    /// randomness for the key.
    #[cfg(feature = "websocket")]
    pub fn connect_ws<H: SessionHandler>(
        &self,
        url: &WsUrl,
        handler: H,
    ) -> Result<(), ConnectError> {
        self.handle.connect_ws(url, handler)
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
    /// are joined. Tasks and JobQueue hand-offs accepted before the threads stop are run;
    /// timers not yet due are reported in the log as not run. Idempotent.
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
                warn!("an I/O thread ended with a panic");
            }
        }
        info!("service stopped");
    }

    fn lock_threads(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.threads.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The connection limits of a listener (or, with `None`, of outgoing connections).
fn limits_for(config: &Config, listen: Option<&ListenConfig>) -> Limits {
    Limits {
        max_packet_size: config.max_packet_size,
        recv_buffer_initial: config.recv_buffer_initial(),
        recv_buffer_max: config.max_packet_size,
        max_send_queue: config.max_send_queue,
        hard_send_queue: Limits::hard_cap(config.max_send_queue),
        send_stall_timeout: config.send_stall_timeout,
        rate_limit: listen.and_then(|l| l.rate_limit),
    }
}

/// A WebSocket connection's limits: its receive buffer also holds the decoder's
/// undecoded tail behind a frame of the max size, and a whole handshake head.
#[cfg(feature = "websocket")]
fn ws_limits(tcp: Limits, max_head_bytes: usize) -> Limits {
    let recv_buffer_max =
        (tcp.max_packet_size + crate::transport::websocket::MAX_UNCONSUMED).max(max_head_bytes);
    Limits {
        recv_buffer_max,
        ..tcp
    }
}

#[cfg(feature = "websocket")]
type WsServerSettings = crate::transport::websocket::WsServer;
/// Without the feature no listener is a WebSocket one; the type only fills the signature.
#[cfg(not(feature = "websocket"))]
type WsServerSettings = ();

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
    /// The next live loop, round robin (the first loop if none is alive: routing to it
    /// then fails and reports).
    fn pick_loop(&self) -> usize {
        let count = self.loops.len();
        let start = self.next_loop.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|i| (start + i) % count)
            .find(|&i| self.loops[i].is_alive())
            .unwrap_or(start % count)
    }

    /// Hands `command` to loop `first`, or to the next live loop that takes it; gives it
    /// back with the reason if none does.
    fn route(&self, first: usize, mut command: Command) -> Result<(), (Command, SpawnError)> {
        let count = self.loops.len();
        for i in 0..count {
            let shared = &self.loops[(first + i) % count];
            if !shared.is_alive() {
                continue;
            }
            if let Command::Listen(entry) = &command {
                entry.shared.set_owner(shared.index);
            }
            match shared.try_submit(command) {
                Ok(()) => return Ok(()),
                Err(back) => command = back,
            }
        }
        let reason = if self.stopping.load(Ordering::Acquire) {
            SpawnError::Stopped
        } else {
            SpawnError::NoLiveLoop
        };
        Err((command, reason))
    }

    fn route_next(&self, command: Command) -> Result<(), (Command, SpawnError)> {
        self.route(self.pick_loop(), command)
    }
}

impl ServiceHandle {
    /// Runs `task` on one of the I/O threads, soon. A panic in it is caught and logged.
    ///
    /// # Errors
    /// [`SpawnError`] if no I/O thread can take it (the service has shut down, or every
    /// thread died); the task was not accepted.
    pub fn spawn<F: FnOnce() + Send + 'static>(&self, task: F) -> Result<(), SpawnError> {
        self.execute(Box::new(task))
    }

    /// Runs `task` on one of the I/O threads after `delay` (user-space timers: the threads
    /// sleep until the earliest deadline, never poll on an interval).
    ///
    /// # Errors
    /// As [`spawn`](Self::spawn). A timer accepted here that is still pending at shutdown
    /// does not run; the log reports how many did not.
    pub fn spawn_after<F: FnOnce() + Send + 'static>(
        &self,
        delay: Duration,
        task: F,
    ) -> Result<(), SpawnError> {
        self.execute_after(delay, Box::new(task))
    }

    /// Counters summed over the I/O threads.
    #[must_use]
    pub fn stats(&self) -> ServiceStats {
        let mut total = ServiceStats::default();
        for shared in self.inner.loops.iter() {
            shared.stats.add_to(&mut total);
            total.loops += 1;
            total.loops_alive += usize::from(shared.is_alive());
        }
        total.write_cost = self.write_cost();
        self.inner.jobs.add_to(&mut total);
        total
    }

    /// The state of every I/O thread: alive, how many sessions, how long busy (for health
    /// checks).
    #[must_use]
    pub fn loop_status(&self) -> Vec<LoopStatus> {
        let now = Instant::now();
        self.inner
            .loops
            .iter()
            .map(|shared| LoopStatus {
                index: shared.index,
                alive: shared.is_alive(),
                sessions: shared.stats.sessions.load(Ordering::Relaxed),
                busy_for: shared.busy_for(now),
            })
            .collect()
    }

    /// What one socket write has recently cost on this service's I/O threads: a moving
    /// average of the wall time of their flush passes per `writev`, everything a flush does
    /// for a session included, averaged over the threads that have written. `None` before
    /// the first write.
    ///
    /// A write costs about the same whatever it carries, so this is the price of sending to
    /// one more session: what batching saves. It rises when the machine is busy (a write
    /// that waits for the CPU takes longer), which is when batching should save more.
    ///
    /// # Examples
    /// ```
    /// use server_core::Service;
    ///
    /// let service = Service::builder().threads(1).build()?;
    /// assert_eq!(service.handle().write_cost(), None); // nothing written yet
    /// # Ok::<(), server_core::BuildError>(())
    /// ```
    #[must_use]
    pub fn write_cost(&self) -> Option<Duration> {
        let (sum, count) = self
            .inner
            .loops
            .iter()
            .filter(|shared| shared.is_alive())
            .filter_map(|shared| shared.write_cost())
            .fold((Duration::ZERO, 0u32), |(sum, n), cost| (sum + cost, n + 1));
        (count > 0).then(|| sum / count)
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
            return Err(SpawnError::Stopped.into());
        }
        let stream = mio::net::TcpStream::connect(addr)
            .map_err(|source| ConnectError::Socket { addr, source })?;
        configure_socket(&stream, &self.inner.config);
        self.adopt_outgoing(
            stream,
            addr,
            Box::new(handler),
            TransportState::Tcp,
            Arc::clone(&self.inner.connect_limits),
            (TypeId::of::<H>(), std::any::type_name::<H>()),
        )
    }

    /// See [`Service::connect_ws`].
    ///
    /// # Errors
    /// As [`Service::connect_ws`].
    #[cfg(feature = "websocket")]
    pub fn connect_ws<H: SessionHandler>(
        &self,
        url: &WsUrl,
        handler: H,
    ) -> Result<(), ConnectError> {
        use crate::transport::websocket::client::{ClientHandshake, MaskKeys};
        use crate::transport::websocket::WsTransport;
        if self.is_stopping() {
            return Err(SpawnError::Stopped.into());
        }
        let addr = url.addr();
        let (keys, key_bytes) = MaskKeys::seeded().map_err(|e| ConnectError::Socket {
            addr,
            source: std::io::Error::other(e),
        })?;
        let handshake = ClientHandshake::new(url.host(), url.path(), key_bytes);
        let stream = mio::net::TcpStream::connect(addr)
            .map_err(|source| ConnectError::Socket { addr, source })?;
        configure_socket(&stream, &self.inner.config);
        let mut transport = WsTransport::client(handshake.accept, keys);
        transport.pending_request = Some(handshake.request);
        self.adopt_outgoing(
            stream,
            addr,
            Box::new(handler),
            TransportState::WebSocket(Box::new(transport)),
            Arc::clone(&self.inner.ws_connect_limits),
            (TypeId::of::<H>(), std::any::type_name::<H>()),
        )
    }

    fn adopt_outgoing(
        &self,
        stream: mio::net::TcpStream,
        peer_addr: SocketAddr,
        handler: Box<dyn SessionHandler>,
        transport: TransportState,
        limits: Arc<Limits>,
        handler_type: (TypeId, &'static str),
    ) -> Result<(), ConnectError> {
        let adoption = Box::new(Adoption {
            stream,
            peer_addr,
            handler: Some(handler),
            transport,
            limits,
            max_in_flight: self.inner.config.listen.max_in_flight,
            handler_type: Some(handler_type),
            listener: None,
            connecting: true,
        });
        self.inner
            .route_next(Command::Adopt(adoption))
            .map_err(|(_, e)| e.into())
    }

    /// Stops I/O thread `index` as a fault inside server-core would (outside every guard),
    /// to test what a service does then. Returns false if that thread is not running.
    /// Only with the `fault-injection` feature, meant for tests.
    #[cfg(feature = "fault-injection")]
    pub fn inject_loop_fault(&self, index: usize) -> bool {
        self.inner
            .loops
            .get(index)
            .is_some_and(|shared| shared.push_remote(Command::Fault).is_ok())
    }

    /// Hands `task` to an I/O thread (dropped, with the error, if none takes it). From an I/O thread of
    /// this service it is staged and forwarded after the packets this thread already sent,
    /// which keeps a JobQueue's output in order when its execution moves between threads.
    pub(crate) fn execute(&self, task: Task) -> Result<(), SpawnError> {
        self.inner
            .route_next(Command::Task(task))
            .map_err(|(_, e)| e)
    }

    pub(crate) fn execute_after(&self, delay: Duration, task: Task) -> Result<(), SpawnError> {
        let deadline = Instant::now() + delay;
        self.inner
            .route_next(Command::Timer { deadline, task })
            .map_err(|(_, e)| e)
    }
}

impl fmt::Debug for ServiceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceHandle")
            .field("threads", &self.inner.loops.len())
            .finish()
    }
}
