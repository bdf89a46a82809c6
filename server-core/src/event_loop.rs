//! One I/O thread: a `mio::Poll` that owns a share of the sessions and listeners, a user-space
//! timer heap, and an inbox through which other threads reach it.
//!
//! One iteration:
//!
//! ```text
//!   poll(timeout = earliest timer, or 0 if work is waiting)
//!     -> accept / read (frames -> handler.on_packet) / note writable sockets
//!     -> inbox: commands from other threads (sends, new sessions, tasks, timers)
//!     -> due timers, ready tasks (JobQueue hand-offs)
//!     -> staged commands made on this thread: apply ours, forward the rest in one batch per loop
//!     -> flush: one writev per session that got packets this iteration
//! ```
//!
//! Commands made *on* a loop thread are staged in a thread-local outbox instead of locking
//! the target's inbox per packet: a broadcast to 500 sessions costs one `Vec` push each, then
//! one lock and at most one wake-up per other loop. Data is forwarded before tasks, so a
//! JobQueue handed to another thread can never overtake the packets it already sent.

use crate::config::Config;
use crate::frame::check_frame;
use crate::listener::ListenerShared;
use crate::recv_buffer::RecvBuffer;
use crate::send_queue::SendQueue;
use crate::session::{DisconnectReason, Session, SessionHandler, SessionId};
use crate::timer::TimerHeap;
use bytes::Bytes;
use log::{debug, error, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Work handed to an I/O thread: [`ServiceHandle::spawn`](crate::ServiceHandle::spawn) gives
/// it back when the service has shut down.
pub type Task = Box<dyn FnOnce() + Send>;

const WAKER: Token = Token(usize::MAX);
/// Listener tokens live above this; session tokens are slab keys below it.
const LISTENER_BASE: usize = usize::MAX / 2;
/// Reads per readiness event before the session yields to the others (it is revisited next
/// iteration), so one fast sender cannot starve its loop.
const READS_PER_EVENT: usize = 16;
/// Rounds of "apply staged commands" per iteration; handlers that keep sending in response to
/// their own sends continue next iteration instead of looping here forever.
const STAGING_ROUNDS: usize = 8;
/// Commands a reused command buffer keeps room for once drained (56 KiB). A burst (one
/// broadcast to 5,000 sessions) grows the buffers it passes through; without a trim every
/// such buffer would keep its peak size for the life of the process.
const KEEP_COMMANDS: usize = 1024;
/// Consecutive accept errors (other than running out of descriptors) before backing off.
const ACCEPT_ERRORS_BEFORE_BACKOFF: usize = 16;

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// What other threads (or this one, staged) ask of a loop.
pub(crate) enum Command {
    Send {
        key: usize,
        id: SessionId,
        packet: Bytes,
    },
    Disconnect {
        key: usize,
        id: SessionId,
    },
    Adopt(Box<Adoption>),
    Listen(Box<ListenerEntry>),
    Task(Task),
    Timer {
        deadline: Instant,
        task: Task,
    },
    Shutdown {
        deadline: Instant,
    },
}

/// A connected (or connecting) socket on its way to the loop that will own it.
pub(crate) struct Adoption {
    pub(crate) stream: TcpStream,
    pub(crate) peer_addr: SocketAddr,
    pub(crate) handler: Box<dyn SessionHandler>,
    /// The listener that accepted it (its session count is released on close); `None` for
    /// outgoing connections.
    pub(crate) listener: Option<Arc<ListenerShared>>,
    /// Outgoing and not yet established.
    pub(crate) connecting: bool,
}

/// A listening socket owned by a loop.
pub(crate) struct ListenerEntry {
    pub(crate) socket: TcpListener,
    pub(crate) shared: Arc<ListenerShared>,
    /// Accepting is paused (descriptors exhausted) until a timer resumes it.
    pub(crate) paused: bool,
}

/// Per-loop counters, written by the loop once per iteration and read by `Service::stats`.
#[derive(Default)]
pub(crate) struct LoopStats {
    pub(crate) sessions: AtomicUsize,
    pub(crate) packets_in: AtomicU64,
    pub(crate) packets_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) read_calls: AtomicU64,
    pub(crate) write_calls: AtomicU64,
    pub(crate) iterations: AtomicU64,
}

/// The part of a loop other threads hold: its inbox, its waker and its counters.
pub(crate) struct LoopShared {
    service_id: u64,
    pub(crate) index: usize,
    inbox: Mutex<Inbox>,
    waker: Waker,
    /// Set by whoever wakes the loop, cleared by the loop before it drains the inbox: at most
    /// one wake-up (an eventfd write) is pending per loop, however many commands arrive.
    wake_pending: AtomicBool,
    pub(crate) stats: LoopStats,
}

struct Inbox {
    commands: Vec<Command>,
    /// The loop has exited; commands would never be read.
    stopped: bool,
}

/// The staging area of the loop thread we are on, if any.
struct LocalContext {
    service_id: u64,
    loop_index: usize,
    /// Data commands for each loop of the service, by loop index.
    outboxes: Vec<Vec<Command>>,
    /// Tasks and timers with their target loop, forwarded after all data.
    tasks: Vec<(usize, Command)>,
    /// Every loop of the service, for [`publish_staged`].
    peers: Arc<[Arc<LoopShared>]>,
}

thread_local! {
    static LOCAL: RefCell<Option<LocalContext>> = const { RefCell::new(None) };
}

impl LoopShared {
    pub(crate) fn new(service_id: u64, index: usize, poll: &Poll) -> io::Result<Self> {
        Ok(Self {
            service_id,
            index,
            inbox: Mutex::new(Inbox {
                commands: Vec::new(),
                stopped: false,
            }),
            waker: Waker::new(poll.registry(), WAKER)?,
            wake_pending: AtomicBool::new(false),
            stats: LoopStats::default(),
        })
    }

    /// Sends a command to this loop: staged if we are on a loop thread of the same service,
    /// otherwise straight into the inbox. Commands for a stopped loop are dropped.
    pub(crate) fn submit(&self, command: Command) {
        if let Err(command) = self.stage(command) {
            let _ = self.push_remote(command);
        }
    }

    /// Like [`submit`](Self::submit) but gives the command back if the loop has stopped (only
    /// knowable right away when not staged; staged tasks for a stopped loop run where staged).
    pub(crate) fn try_submit(&self, command: Command) -> Result<(), Command> {
        match self.stage(command) {
            Ok(()) => Ok(()),
            Err(command) => self.push_remote(command),
        }
    }

    fn stage(&self, command: Command) -> Result<(), Command> {
        LOCAL.with(|local| {
            let Ok(mut local) = local.try_borrow_mut() else {
                return Err(command);
            };
            match local.as_mut() {
                Some(ctx) if ctx.service_id == self.service_id => {
                    match command {
                        Command::Task(_) | Command::Timer { .. } => {
                            ctx.tasks.push((self.index, command));
                        }
                        other => ctx.outboxes[self.index].push(other),
                    }
                    Ok(())
                }
                _ => Err(command),
            }
        })
    }

    pub(crate) fn push_remote(&self, command: Command) -> Result<(), Command> {
        {
            let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
            if inbox.stopped {
                return Err(command);
            }
            inbox.commands.push(command);
        }
        self.wake();
        Ok(())
    }

    /// Moves a whole batch into the inbox under one lock; dropped if the loop has stopped.
    /// `wake` is false when the caller is this loop's own thread (it drains before sleeping).
    fn push_batch(&self, commands: &mut Vec<Command>, wake: bool) {
        {
            let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
            if inbox.stopped {
                commands.clear();
                return;
            }
            if inbox.commands.is_empty() {
                std::mem::swap(&mut inbox.commands, commands);
            } else {
                inbox.commands.append(commands);
            }
        }
        trim_drained(commands);
        if wake {
            self.wake();
        }
    }

    fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                error!("failed to wake I/O thread {}: {e}", self.index);
            }
        }
    }

    fn take_inbox(&self, into: &mut Vec<Command>) {
        // Cleared before draining: a command pushed after our swap wakes us again.
        self.wake_pending.store(false, Ordering::Release);
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut inbox.commands, into);
    }

    fn stop(&self) -> Vec<Command> {
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        inbox.stopped = true;
        std::mem::take(&mut inbox.commands)
    }
}

enum Phase {
    /// Outgoing connect in flight.
    Connecting,
    Open,
    /// Flushing what is queued, then closing with this reason; no more reads. Boxed: every
    /// session carries a `Phase`, few ever close this way (keeps `SessionEntry` small).
    Closing(Box<DisconnectReason>),
}

struct SessionEntry {
    stream: TcpStream,
    session: Session,
    handler: Box<dyn SessionHandler>,
    recv: RecvBuffer,
    send: SendQueue,
    phase: Phase,
    /// Already in the loop's `dirty` list this iteration.
    dirty: bool,
    /// Last time bytes arrived, for the idle timeout.
    last_recv: Instant,
    listener: Option<Arc<ListenerShared>>,
}

enum TimerKind {
    Task(Task),
    ResumeAccept(usize),
    /// Close the sessions that have been silent too long (one timer per loop, not one per
    /// session: 5,000 idle sessions would otherwise hold 5,000 heap entries).
    IdleSweep,
    ConnectTimeout {
        key: usize,
        id: SessionId,
    },
    LingerExpired {
        key: usize,
        id: SessionId,
    },
}

/// Counters accumulated during an iteration, published to [`LoopStats`] at its end.
#[derive(Default)]
struct IterationStats {
    packets_in: u64,
    packets_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    read_calls: u64,
    write_calls: u64,
}

pub(crate) struct EventLoop {
    shared: Arc<LoopShared>,
    /// Every loop of the service, by index (ours included), for forwarding staged commands.
    peers: Arc<[Arc<LoopShared>]>,
    poll: Poll,
    events: Events,
    config: Arc<Config>,
    sessions: Slab<SessionEntry>,
    listeners: Slab<ListenerEntry>,
    timers: TimerHeap<TimerKind>,
    /// Sessions with packets queued this iteration: flushed once each at the end.
    dirty: Vec<usize>,
    /// Sessions whose read budget ran out with data possibly left in the socket.
    still_readable: Vec<(usize, SessionId)>,
    ready_tasks: VecDeque<Task>,
    /// Reused buffers, so steady state allocates nothing per iteration (trimmed to
    /// [`KEEP_COMMANDS`] after a burst).
    scratch_commands: Vec<Command>,
    /// A receive buffer given back by a session that emptied its own, lent to the next
    /// session that reads: sessions between packets hold no receive memory.
    spare_recv: Vec<u8>,
    scratch_events: Vec<(Token, Readiness)>,
    /// Round-robin cursor for spreading accepted sessions over the loops.
    next_target: usize,
    now: Instant,
    shutdown_deadline: Option<Instant>,
    /// A `TimerKind::IdleSweep` is in the timer heap.
    idle_sweep_armed: bool,
    iteration: IterationStats,
}

impl EventLoop {
    pub(crate) fn new(
        shared: Arc<LoopShared>,
        peers: Arc<[Arc<LoopShared>]>,
        poll: Poll,
        config: Arc<Config>,
    ) -> Self {
        let next_target = shared.index;
        Self {
            shared,
            peers,
            poll,
            events: Events::with_capacity(1024),
            config,
            sessions: Slab::new(),
            listeners: Slab::new(),
            timers: TimerHeap::new(),
            dirty: Vec::new(),
            still_readable: Vec::new(),
            ready_tasks: VecDeque::new(),
            scratch_commands: Vec::new(),
            spare_recv: Vec::new(),
            scratch_events: Vec::new(),
            next_target,
            now: Instant::now(),
            shutdown_deadline: None,
            idle_sweep_armed: false,
            iteration: IterationStats::default(),
        }
    }

    /// Runs until shutdown has drained every session (or its deadline passed).
    pub(crate) fn run(mut self) {
        LOCAL.with(|local| {
            *local.borrow_mut() = Some(LocalContext {
                service_id: self.shared.service_id,
                loop_index: self.shared.index,
                outboxes: (0..self.peers.len()).map(|_| Vec::new()).collect(),
                tasks: Vec::new(),
                peers: Arc::clone(&self.peers),
            });
        });
        debug!("I/O thread {} started", self.shared.index);
        loop {
            let timeout = self.poll_timeout();
            if timeout != Some(Duration::ZERO) {
                self.release_burst_memory();
            }
            if let Err(e) = self.poll.poll(&mut self.events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    error!("I/O thread {}: poll failed: {e}", self.shared.index);
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            self.now = Instant::now();
            self.scratch_events.clear();
            for event in &self.events {
                self.scratch_events.push((
                    event.token(),
                    Readiness {
                        readable: event.is_readable(),
                        closed: event.is_read_closed() || event.is_error(),
                        writable: event.is_writable(),
                    },
                ));
            }
            let mut events = std::mem::take(&mut self.scratch_events);
            for &(token, readiness) in &events {
                self.dispatch_event(token, readiness);
            }
            events.clear();
            self.scratch_events = events;

            self.continue_reads();
            self.drain_inbox();
            self.run_timers();
            self.run_ready_tasks();
            self.drain_staged();
            self.flush_dirty();
            self.drain_staged();
            self.publish_stats();
            if self.shutdown_finished() {
                break;
            }
        }
        self.finish();
    }

    /// About to sleep: work buffers that a burst (a connect storm, a broadcast to thousands)
    /// grew far past their usual size give the memory back, so a quiet server does not keep
    /// its peak. Below the threshold they are kept, so steady load allocates nothing.
    fn release_burst_memory(&mut self) {
        fn trim<T>(v: &mut Vec<T>) {
            if v.is_empty() && v.capacity() > KEEP_COMMANDS {
                *v = Vec::new();
            }
        }
        trim(&mut self.dirty);
        trim(&mut self.still_readable);
        trim(&mut self.scratch_events);
        if self.ready_tasks.is_empty() && self.ready_tasks.capacity() > KEEP_COMMANDS {
            self.ready_tasks = VecDeque::new();
        }
        self.timers.shrink_if_sparse();
    }

    fn poll_timeout(&self) -> Option<Duration> {
        let busy = !self.ready_tasks.is_empty()
            || !self.still_readable.is_empty()
            || !self.dirty.is_empty()
            || staged_pending();
        if busy {
            return Some(Duration::ZERO);
        }
        let deadline = match (self.timers.next_deadline(), self.shutdown_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Round up to whole milliseconds (epoll's unit) so a sub-millisecond wait does not
        // turn into a zero timeout and a busy loop until the deadline.
        deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                left
            } else {
                Duration::from_millis(left.as_millis() as u64 + 1)
            }
        })
    }

    fn dispatch_event(&mut self, token: Token, readiness: Readiness) {
        if token == WAKER {
            return; // the inbox is drained every iteration anyway
        }
        if token.0 >= LISTENER_BASE {
            self.accept(token.0 - LISTENER_BASE);
            return;
        }
        let key = token.0;
        let Some(entry) = self.sessions.get_mut(key) else {
            return; // a session closed earlier in this iteration
        };
        if matches!(entry.phase, Phase::Connecting) && !self.finish_connect(key) {
            return;
        }
        if readiness.writable {
            self.mark_dirty(key);
        }
        if readiness.closed {
            self.read(key, ReadUntil::WouldBlock);
        } else if readiness.readable {
            self.read(key, ReadUntil::ShortRead);
        }
    }

    // ---- accepting -------------------------------------------------------------------

    fn accept(&mut self, listener_key: usize) {
        let mut errors = 0;
        loop {
            let Some(entry) = self.listeners.get_mut(listener_key) else {
                return;
            };
            if entry.paused {
                return;
            }
            match entry.socket.accept() {
                Ok((stream, peer_addr)) => {
                    let shared = Arc::clone(&entry.shared);
                    if !shared.try_acquire_slot() {
                        warn!(
                            "listener {}: session limit {} reached, refusing {peer_addr}",
                            shared.local_addr, shared.max_sessions
                        );
                        drop(stream);
                        continue;
                    }
                    configure_socket(&stream, &self.config);
                    let handler = match catch_unwind(AssertUnwindSafe(|| (shared.factory)())) {
                        Ok(handler) => handler,
                        Err(_) => {
                            error!("session factory panicked; refusing {peer_addr}");
                            shared.release_slot();
                            continue;
                        }
                    };
                    let adoption = Box::new(Adoption {
                        stream,
                        peer_addr,
                        handler,
                        listener: Some(shared),
                        connecting: false,
                    });
                    let target = self.next_target % self.peers.len();
                    self.next_target = self.next_target.wrapping_add(1);
                    if target == self.shared.index {
                        self.adopt(*adoption);
                    } else {
                        self.peers[target].submit(Command::Adopt(adoption));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    errors += 1;
                    let exhausted = is_resource_exhaustion(&e);
                    if exhausted || errors >= ACCEPT_ERRORS_BEFORE_BACKOFF {
                        // Out of descriptors: the pending connection stays in the backlog and
                        // the socket stays readable, so retrying now would spin. Wait instead.
                        error!(
                            "listener {}: accept failed ({e}); pausing accepts for {:?}",
                            entry.shared.local_addr, self.config.accept_backoff
                        );
                        entry.paused = true;
                        self.timers.push(
                            self.now + self.config.accept_backoff,
                            TimerKind::ResumeAccept(listener_key),
                        );
                        return;
                    }
                    debug!("listener {}: accept error: {e}", entry.shared.local_addr);
                }
            }
        }
    }

    fn add_listener(&mut self, mut entry: ListenerEntry) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        let vacant = self.listeners.vacant_entry();
        let token = Token(LISTENER_BASE + vacant.key());
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut entry.socket, token, Interest::READABLE)
        {
            error!(
                "failed to register listener {}: {e}",
                entry.shared.local_addr
            );
            return;
        }
        info!(
            "listening on {} (I/O thread {})",
            entry.shared.local_addr, self.shared.index
        );
        let key = vacant.key();
        vacant.insert(entry);
        // Connections may have queued between bind and registration.
        self.accept(key);
    }

    // ---- session lifecycle -----------------------------------------------------------

    fn adopt(&mut self, adoption: Adoption) {
        let Adoption {
            mut stream,
            peer_addr,
            mut handler,
            listener,
            connecting,
        } = adoption;
        if self.shutdown_deadline.is_some() {
            if let Some(l) = &listener {
                l.release_slot();
            }
            if connecting {
                handler.on_connect_failed(&io::Error::other("service is shutting down"));
            }
            return;
        }
        let vacant = self.sessions.vacant_entry();
        let key = vacant.key();
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            error!("failed to register session from {peer_addr}: {e}");
            if let Some(l) = &listener {
                l.release_slot();
            }
            if connecting {
                handler.on_connect_failed(&e);
            }
            return;
        }
        let id = SessionId(NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed));
        let session = Session::new(
            id,
            key,
            peer_addr,
            stream.local_addr().ok(),
            Arc::clone(&self.shared),
        );
        vacant.insert(SessionEntry {
            stream,
            session,
            handler,
            recv: RecvBuffer::new(self.config.recv_buffer_initial, self.config.max_packet_size),
            send: SendQueue::default(),
            phase: if connecting {
                Phase::Connecting
            } else {
                Phase::Open
            },
            dirty: false,
            last_recv: self.now,
            listener,
        });
        self.shared.stats.sessions.fetch_add(1, Ordering::Relaxed);
        if connecting {
            self.timers.push(
                self.now + self.config.connect_timeout,
                TimerKind::ConnectTimeout { key, id },
            );
        } else {
            self.opened(key);
        }
    }

    /// The session became usable: start its idle clock and tell the handler.
    fn opened(&mut self, key: usize) {
        self.arm_idle_sweep();
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        entry.phase = Phase::Open;
        entry.last_recv = self.now;
        let id = entry.session.id();
        debug!("session {id} connected ({})", entry.session.peer_addr());
        let SessionEntry {
            handler, session, ..
        } = entry;
        if catch_unwind(AssertUnwindSafe(|| handler.on_connected(session))).is_err() {
            self.close(
                key,
                DisconnectReason::Handler("on_connected panicked".into()),
            );
            return;
        }
        if !entry_is_empty(&self.sessions, key) {
            self.mark_dirty(key);
        }
    }

    /// Checks an outgoing connect; returns whether the session is now open.
    fn finish_connect(&mut self, key: usize) -> bool {
        let Some(entry) = self.sessions.get_mut(key) else {
            return false;
        };
        let error = match entry.stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match entry.stream.peer_addr() {
                Ok(_) => None,
                Err(e)
                    if e.kind() == io::ErrorKind::NotConnected
                        || e.raw_os_error() == Some(libc::EINPROGRESS) =>
                {
                    return false; // still in progress: a spurious event
                }
                Err(e) => Some(e),
            },
        };
        match error {
            None => {
                self.opened(key);
                self.sessions.contains(key)
            }
            Some(e) => {
                self.fail_connect(key, e);
                false
            }
        }
    }

    fn fail_connect(&mut self, key: usize, error: io::Error) {
        let Some(mut entry) = self.sessions.try_remove(key) else {
            return;
        };
        entry.session.mark_closed();
        let _ = self.poll.registry().deregister(&mut entry.stream);
        self.shared.stats.sessions.fetch_sub(1, Ordering::Relaxed);
        debug!("connect to {} failed: {error}", entry.session.peer_addr());
        let handler = &mut entry.handler;
        let _ = catch_unwind(AssertUnwindSafe(|| handler.on_connect_failed(&error)));
    }

    /// Starts closing: flush first if anything is queued (bounded by the linger time).
    fn begin_close(&mut self, key: usize, reason: DisconnectReason) {
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        entry.session.mark_closed();
        match entry.phase {
            Phase::Closing(_) => {}
            Phase::Connecting => {
                self.fail_connect(key, io::Error::other(reason.to_string()));
            }
            Phase::Open if entry.send.is_empty() => self.close(key, reason),
            Phase::Open => {
                let id = entry.session.id();
                entry.phase = Phase::Closing(Box::new(reason));
                self.timers.push(
                    self.now + self.config.linger,
                    TimerKind::LingerExpired { key, id },
                );
                self.mark_dirty(key);
            }
        }
    }

    /// Closes at once: the socket, its queues and its slot are released before the handler
    /// hears about it.
    fn close(&mut self, key: usize, reason: DisconnectReason) {
        let Some(mut entry) = self.sessions.try_remove(key) else {
            return;
        };
        entry.session.mark_closed();
        let _ = self.poll.registry().deregister(&mut entry.stream);
        if let Some(listener) = &entry.listener {
            listener.release_slot();
        }
        self.shared.stats.sessions.fetch_sub(1, Ordering::Relaxed);
        let id = entry.session.id();
        let peer = entry.session.peer_addr();
        match &reason {
            // The peer broke the rules or could not keep up: worth an operator's attention.
            DisconnectReason::Framing(_)
            | DisconnectReason::PeerClosedMidFrame { .. }
            | DisconnectReason::Handler(_)
            | DisconnectReason::SendQueueOverflow { .. } => {
                warn!("session {id} ({peer}) closed: {reason}");
            }
            DisconnectReason::IdleTimeout(_) => info!("session {id} ({peer}) closed: {reason}"),
            // Ordinary ends of a connection, resets included.
            _ => debug!("session {id} ({peer}) closed: {reason}"),
        }
        let SessionEntry {
            stream,
            session,
            mut handler,
            send,
            recv,
            ..
        } = entry;
        drop((stream, send, recv));
        if catch_unwind(AssertUnwindSafe(|| {
            handler.on_disconnected(&session, &reason)
        }))
        .is_err()
        {
            error!("on_disconnected of session {id} panicked");
        }
    }

    // ---- reading ---------------------------------------------------------------------

    fn read(&mut self, key: usize, until: ReadUntil) {
        let max_packet = self.config.max_packet_size;
        for _ in 0..READS_PER_EVENT {
            let Some(entry) = self.sessions.get_mut(key) else {
                return;
            };
            // Not reading for a session that is closing (even if the handler's disconnect()
            // is still on its way as a command): its remaining frames are not wanted.
            if !matches!(entry.phase, Phase::Open) || !entry.session.is_connected() {
                return;
            }
            entry.recv.take_spare(&mut self.spare_recv);
            let space = entry.recv.free_space();
            let asked = space.len();
            self.iteration.read_calls += 1;
            match entry.stream.read(space) {
                Ok(0) => {
                    let buffered = entry.recv.unread().len();
                    let reason = if buffered == 0 {
                        DisconnectReason::PeerClosed
                    } else {
                        DisconnectReason::PeerClosedMidFrame { buffered }
                    };
                    self.close(key, reason);
                    return;
                }
                Ok(n) => {
                    entry.recv.commit(n);
                    entry.last_recv = self.now;
                    self.iteration.bytes_in += n as u64;
                    let delivered = deliver_frames(entry, max_packet);
                    self.iteration.packets_in += delivered.count;
                    if let Err(reason) = delivered.result {
                        self.close(key, reason);
                        return;
                    }
                    if n < asked && until == ReadUntil::ShortRead {
                        // The socket had less than we asked for, so it is empty now; new
                        // data raises a new edge. Skips the read that would only say
                        // WouldBlock (half of all reads under chat load).
                        if let Some(entry) = self.sessions.get_mut(key) {
                            entry.recv.release_if_empty(&mut self.spare_recv);
                        }
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    entry.recv.release_if_empty(&mut self.spare_recv);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(key, DisconnectReason::Io(e));
                    return;
                }
            }
        }
        if let Some(entry) = self.sessions.get(key) {
            self.still_readable.push((key, entry.session.id()));
        }
    }

    fn continue_reads(&mut self) {
        let pending = std::mem::take(&mut self.still_readable);
        for (key, id) in pending {
            if self.session_matches(key, id) {
                self.read(key, ReadUntil::ShortRead);
            }
        }
    }

    fn session_matches(&self, key: usize, id: SessionId) -> bool {
        self.sessions.get(key).is_some_and(|e| e.session.id() == id)
    }

    // ---- commands, tasks, timers -------------------------------------------------------

    fn drain_inbox(&mut self) {
        let mut commands = std::mem::take(&mut self.scratch_commands);
        self.shared.take_inbox(&mut commands);
        for command in commands.drain(..) {
            self.apply(command);
        }
        trim_drained(&mut commands);
        self.scratch_commands = commands;
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Send { key, id, packet } => self.enqueue(key, id, packet),
            Command::Disconnect { key, id } => {
                if self.session_matches(key, id) {
                    self.begin_close(key, DisconnectReason::Local);
                }
            }
            Command::Adopt(adoption) => self.adopt(*adoption),
            Command::Listen(entry) => self.add_listener(*entry),
            Command::Task(task) => self.ready_tasks.push_back(task),
            Command::Timer { deadline, task } => {
                self.timers.push(deadline, TimerKind::Task(task));
            }
            Command::Shutdown { deadline } => self.begin_shutdown(deadline),
        }
    }

    fn enqueue(&mut self, key: usize, id: SessionId, packet: Bytes) {
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        if entry.session.id() != id {
            return; // the slot was reused: that session is gone
        }
        let limit = self.config.max_send_queue;
        let adding = packet.len();
        match entry.send.push(packet, limit) {
            Ok(()) => self.mark_dirty(key),
            Err(overflow) => {
                entry.send.clear();
                self.close(
                    key,
                    DisconnectReason::SendQueueOverflow {
                        queued: overflow.queued,
                        adding,
                        limit,
                    },
                );
            }
        }
    }

    fn mark_dirty(&mut self, key: usize) {
        if let Some(entry) = self.sessions.get_mut(key) {
            if !entry.dirty {
                entry.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    fn run_timers(&mut self) {
        while let Some(timer) = self.timers.pop_due(self.now) {
            match timer {
                TimerKind::Task(task) => self.ready_tasks.push_back(task),
                TimerKind::ResumeAccept(listener_key) => {
                    if let Some(entry) = self.listeners.get_mut(listener_key) {
                        entry.paused = false;
                        self.accept(listener_key);
                    }
                }
                TimerKind::IdleSweep => self.sweep_idle(),
                TimerKind::ConnectTimeout { key, id } => {
                    let connecting = self.sessions.get(key).is_some_and(|e| {
                        e.session.id() == id && matches!(e.phase, Phase::Connecting)
                    });
                    if connecting {
                        self.fail_connect(key, io::ErrorKind::TimedOut.into());
                    }
                }
                TimerKind::LingerExpired { key, id } => {
                    if self.session_matches(key, id) {
                        if let Some(Phase::Closing(_)) = self.sessions.get(key).map(|e| &e.phase) {
                            self.close_with_pending_reason(key);
                        }
                    }
                }
            }
        }
    }

    /// Schedules the next idle sweep, if there is an idle timeout and none is scheduled.
    /// Sweeps run every eighth of the timeout (at least 10 ms apart), so a silent session is
    /// closed between 1 and 1.125 timeouts after its last byte; a loop without sessions
    /// schedules none and sleeps.
    fn arm_idle_sweep(&mut self) {
        let Some(timeout) = self.config.idle_timeout else {
            return;
        };
        if !self.idle_sweep_armed {
            self.idle_sweep_armed = true;
            let every = (timeout / 8).max(Duration::from_millis(10));
            self.timers.push(self.now + every, TimerKind::IdleSweep);
        }
    }

    fn sweep_idle(&mut self) {
        self.idle_sweep_armed = false;
        let Some(timeout) = self.config.idle_timeout else {
            return;
        };
        let now = self.now;
        let silent: Vec<usize> = self
            .sessions
            .iter()
            .filter(|(_, e)| matches!(e.phase, Phase::Open) && e.last_recv + timeout <= now)
            .map(|(key, _)| key)
            .collect();
        for key in silent {
            self.close(key, DisconnectReason::IdleTimeout(timeout));
        }
        if !self.sessions.is_empty() {
            self.arm_idle_sweep();
        }
    }

    fn run_ready_tasks(&mut self) {
        // Only the tasks present now: a task that re-queues itself runs next iteration,
        // after I/O has had its turn.
        for _ in 0..self.ready_tasks.len() {
            let Some(task) = self.ready_tasks.pop_front() else {
                break;
            };
            if catch_unwind(AssertUnwindSafe(task)).is_err() {
                error!("a task panicked on I/O thread {}", self.shared.index);
            }
        }
    }

    /// Applies commands staged on this thread for our own sessions and forwards the rest:
    /// data first (one lock and at most one wake per loop), then tasks.
    fn drain_staged(&mut self) {
        let me = self.shared.index;
        for _ in 0..STAGING_ROUNDS {
            // The inbox first: whatever a JobQueue run published there (from any thread,
            // this one included) happened before anything staged here since.
            self.drain_inbox();
            let mut local = std::mem::take(&mut self.scratch_commands);
            let tasks = LOCAL.with(|cell| {
                let mut cell = cell.borrow_mut();
                let Some(ctx) = cell.as_mut() else {
                    return Vec::new();
                };
                std::mem::swap(&mut ctx.outboxes[me], &mut local);
                for (index, outbox) in ctx.outboxes.iter_mut().enumerate() {
                    if index != me && !outbox.is_empty() {
                        self.peers[index].push_batch(outbox, true);
                    }
                }
                std::mem::take(&mut ctx.tasks)
            });
            let idle = local.is_empty() && tasks.is_empty();
            for command in local.drain(..) {
                self.apply(command);
            }
            trim_drained(&mut local);
            self.scratch_commands = local;
            for (index, command) in tasks {
                if index == me {
                    self.apply(command);
                } else if let Err(command) = self.peers[index].push_remote(command) {
                    // That loop has stopped: run the work here rather than lose it.
                    self.apply(command);
                }
            }
            if idle {
                return;
            }
        }
    }

    // ---- writing ---------------------------------------------------------------------

    fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &key in &dirty {
            self.flush(key);
        }
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    fn flush(&mut self, key: usize) {
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        entry.dirty = false;
        if matches!(entry.phase, Phase::Connecting) || entry.send.is_empty() {
            return;
        }
        match entry.send.write_to(&mut entry.stream) {
            Ok(flushed) => {
                self.iteration.write_calls += flushed.calls as u64;
                self.iteration.bytes_out += flushed.bytes as u64;
                self.iteration.packets_out += flushed.packets as u64;
                if flushed.bytes > 0 {
                    let SessionEntry {
                        handler, session, ..
                    } = &mut *entry;
                    handler.on_send(session, flushed.bytes);
                }
                if entry.send.is_empty() && matches!(entry.phase, Phase::Closing(_)) {
                    self.close_with_pending_reason(key);
                }
            }
            Err(e) => self.close(key, DisconnectReason::Io(e)),
        }
    }

    fn close_with_pending_reason(&mut self, key: usize) {
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        let reason = match std::mem::replace(&mut entry.phase, Phase::Open) {
            Phase::Closing(reason) => *reason,
            _ => DisconnectReason::Local,
        };
        self.close(key, reason);
    }

    fn publish_stats(&mut self) {
        let it = std::mem::take(&mut self.iteration);
        let stats = &self.shared.stats;
        stats.iterations.fetch_add(1, Ordering::Relaxed);
        stats.read_calls.fetch_add(it.read_calls, Ordering::Relaxed);
        stats
            .write_calls
            .fetch_add(it.write_calls, Ordering::Relaxed);
        if it.packets_in > 0 || it.bytes_in > 0 {
            stats.packets_in.fetch_add(it.packets_in, Ordering::Relaxed);
            stats.bytes_in.fetch_add(it.bytes_in, Ordering::Relaxed);
        }
        if it.packets_out > 0 || it.bytes_out > 0 {
            stats
                .packets_out
                .fetch_add(it.packets_out, Ordering::Relaxed);
            stats.bytes_out.fetch_add(it.bytes_out, Ordering::Relaxed);
        }
    }

    // ---- shutdown --------------------------------------------------------------------

    fn begin_shutdown(&mut self, deadline: Instant) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        self.shutdown_deadline = Some(deadline);
        for (_, mut listener) in std::mem::take(&mut self.listeners) {
            let _ = self.poll.registry().deregister(&mut listener.socket);
            info!("stopped listening on {}", listener.shared.local_addr);
        }
        let keys: Vec<usize> = self.sessions.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.begin_close(key, DisconnectReason::Shutdown);
        }
    }

    fn shutdown_finished(&mut self) -> bool {
        let Some(deadline) = self.shutdown_deadline else {
            return false;
        };
        if self.sessions.is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            let keys: Vec<usize> = self.sessions.iter().map(|(key, _)| key).collect();
            for key in keys {
                self.close(key, DisconnectReason::Shutdown);
            }
            return true;
        }
        false
    }

    fn finish(mut self) {
        // Whatever arrives now is dropped: the sockets it refers to are closed.
        drop(self.shared.stop());
        self.drain_staged();
        LOCAL.with(|local| local.borrow_mut().take());
        debug!("I/O thread {} stopped", self.shared.index);
    }
}

/// What one readiness event said about a socket.
#[derive(Clone, Copy)]
struct Readiness {
    readable: bool,
    /// Peer closed (FIN or error): read until `WouldBlock` or EOF, or the close is missed.
    closed: bool,
    writable: bool,
}

/// When a read pass may stop.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReadUntil {
    /// At a read that returns fewer bytes than asked: the receive queue was drained and any
    /// later data raises a new edge-triggered event (what tokio does on Linux).
    ShortRead,
    /// Only at `WouldBlock` or EOF: the event also reported the peer's FIN, which raises no
    /// further event, so it must be read now.
    WouldBlock,
}

/// Frames delivered from one read, and whether the session must close.
struct Delivered {
    count: u64,
    result: Result<(), DisconnectReason>,
}

/// Hands every complete frame in the buffer to the handler, in order.
fn deliver_frames(entry: &mut SessionEntry, max_packet: usize) -> Delivered {
    let SessionEntry {
        recv,
        handler,
        session,
        ..
    } = entry;
    let mut count = 0;
    let result = loop {
        let len = match check_frame(recv.unread(), max_packet) {
            Ok(Some(len)) => len,
            Ok(None) => break Ok(()),
            Err(e) => break Err(DisconnectReason::Framing(e)),
        };
        let frame = &recv.unread()[..len];
        match catch_unwind(AssertUnwindSafe(|| handler.on_packet(session, frame))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => break Err(DisconnectReason::Handler(e)),
            Err(_) => break Err(DisconnectReason::Handler("on_packet panicked".into())),
        }
        recv.consume(len);
        count += 1;
        if !session.is_connected() {
            break Ok(()); // the handler called disconnect(): deliver nothing more
        }
    };
    Delivered { count, result }
}

/// Gives back the memory of a drained command buffer that a burst grew past
/// [`KEEP_COMMANDS`].
fn trim_drained(commands: &mut Vec<Command>) {
    debug_assert!(commands.is_empty());
    if commands.capacity() > KEEP_COMMANDS {
        *commands = Vec::with_capacity(KEEP_COMMANDS);
    }
}

fn entry_is_empty(sessions: &Slab<SessionEntry>, key: usize) -> bool {
    sessions.get(key).is_none_or(|e| e.send.is_empty())
}

fn staged_pending() -> bool {
    LOCAL.with(|local| {
        local.try_borrow().ok().is_some_and(|ctx| {
            ctx.as_ref().is_some_and(|ctx| {
                !ctx.tasks.is_empty() || ctx.outboxes.iter().any(|o| !o.is_empty())
            })
        })
    })
}

/// Makes every command staged on this thread visible, in order, to the loops they are for:
/// each outbox (our own loop's included) moves into its loop's inbox.
///
/// A [`JobQueue`](crate::JobQueue) calls this after each job, before it can be released to
/// another thread. Without it, a room job run here and the room's next job run on another
/// thread could reach the same session in the wrong order: ours would still sit in this
/// thread's outbox while theirs was applied. Loops drain their inbox before applying their
/// own staged commands, so published commands always come first. Does nothing off the I/O
/// threads, whose sends go straight to the inboxes anyway.
pub(crate) fn publish_staged() {
    LOCAL.with(|cell| {
        let Ok(mut cell) = cell.try_borrow_mut() else {
            return;
        };
        let Some(ctx) = cell.as_mut() else {
            return;
        };
        let me = ctx.loop_index;
        for (index, outbox) in ctx.outboxes.iter_mut().enumerate() {
            if !outbox.is_empty() {
                if let Some(peer) = ctx.peers.get(index) {
                    peer.push_batch(outbox, index != me);
                }
            }
        }
    });
}

/// Whether we are on an I/O thread of the given service (used to keep hand-offs local).
pub(crate) fn current_loop(service_id: u64) -> Option<usize> {
    LOCAL.with(|local| {
        local.try_borrow().ok().and_then(|ctx| {
            ctx.as_ref()
                .filter(|c| c.service_id == service_id)
                .map(|c| c.loop_index)
        })
    })
}

/// Applies the service's socket options; failures are logged, not fatal.
pub(crate) fn configure_socket(stream: &TcpStream, config: &Config) {
    if let Err(e) = stream.set_nodelay(config.nodelay) {
        debug!("set TCP_NODELAY failed: {e}");
    }
    if let Some(idle) = config.keepalive {
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval(Duration::from_secs(10));
        if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
            debug!("set TCP keepalive failed: {e}");
        }
    }
}

/// Out of descriptors or kernel memory: errors that retrying at once cannot fix.
fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
