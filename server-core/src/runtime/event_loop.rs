//! One I/O thread: a `mio::Poll` that owns a share of the sessions and listeners, a user-space
//! timer heap, and an inbox through which other threads reach it.
//!
//! One iteration ([`EventLoop::turn`]):
//!
//! ```text
//!   poll(timeout = earliest timer, or 0 if work is waiting)
//!     -> inbox: commands from other threads (sends, new sessions, tasks, timers, handler calls)
//!     -> accept / read (frames -> handler.on_packet) / note writable sockets
//!     -> inbox again, then sessions whose read pass was cut short or whose pause ended
//!     -> due timers, ready tasks (JobQueue hand-offs)
//!     -> staged commands made on this thread: apply ours, forward the rest in one batch per loop
//!     -> flush: one writev per session that got packets this iteration
//! ```
//!
//! User code never unwinds through here: every hook, task and timer runs through
//! `crate::guard`. An iteration is itself run under `catch_unwind`, for faults in
//! server-core's own code; then `fault.rs` closes this loop's sessions and moves its work
//! to the live loops.

use super::accept::ListenerEntry;
use super::mailbox::{
    install_local, staged_pending, take_staged, trim_drained, Command, LoopShared, Task, WAKER,
};
use super::sessions::SessionEntry;
use super::timer::TimerHeap;
use super::wake_timer::{WakeTimer, WAKE_TIMER};
use crate::config::Config;
use crate::guard;
use crate::session::{DisconnectReason, SessionId};
use log::{debug, error, info, warn};
use mio::{Events, Poll, Token};
use slab::Slab;
use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Listener tokens live above this; session tokens are slab keys below it.
pub(super) const LISTENER_BASE: usize = usize::MAX / 2;
/// Rounds of "apply staged commands" per iteration; handlers that keep sending in response to
/// their own sends continue next iteration instead of looping here forever.
const STAGING_ROUNDS: usize = 8;

pub(super) enum TimerKind {
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
    /// A throttled session's buckets have refilled.
    Unthrottle {
        key: usize,
        id: SessionId,
    },
    /// A session's backlog went over the soft cap one stall timeout ago.
    StallCheck {
        key: usize,
        id: SessionId,
    },
    /// A transport's handshake (a WebSocket upgrade) must be complete by now.
    #[cfg(feature = "websocket")]
    HandshakeTimeout {
        key: usize,
        id: SessionId,
    },
}

/// Counters accumulated during an iteration, published to the loop's stats at its end.
#[derive(Default)]
pub(super) struct IterationStats {
    pub(super) packets_in: u64,
    pub(super) packets_out: u64,
    pub(super) bytes_in: u64,
    pub(super) bytes_out: u64,
    pub(super) read_calls: u64,
    pub(super) write_calls: u64,
    pub(super) rate_limited: u64,
}

/// What one readiness event said about a socket.
#[derive(Clone, Copy)]
pub(super) struct Readiness {
    pub(super) readable: bool,
    /// Peer closed (FIN or error): read until `WouldBlock` or EOF, or the close is missed.
    pub(super) closed: bool,
    pub(super) writable: bool,
}

pub(crate) struct EventLoop {
    pub(super) shared: Arc<LoopShared>,
    /// Every loop of the service, by index (ours included), for forwarding.
    pub(super) peers: Arc<[Arc<LoopShared>]>,
    pub(super) poll: Poll,
    events: Events,
    pub(super) config: Arc<Config>,
    pub(super) sessions: Slab<SessionEntry>,
    pub(super) listeners: Slab<ListenerEntry>,
    pub(super) timers: TimerHeap<TimerKind>,
    /// Wakes `poll` at the earliest timer's deadline, to the microsecond where it can.
    wake_timer: WakeTimer,
    /// Sessions with packets queued this iteration: flushed once each at the end.
    pub(super) dirty: Vec<usize>,
    /// Sessions to read again: their read budget ran out with data possibly left in the
    /// socket, or reading just resumed after a pause.
    pub(super) still_readable: Vec<(usize, SessionId)>,
    pub(super) ready_tasks: VecDeque<Task>,
    /// Reused buffers, so steady state allocates nothing per iteration (trimmed after a
    /// burst).
    scratch_commands: Vec<Command>,
    /// A receive buffer given back by a session that emptied its own, lent to the next
    /// session that reads: sessions between packets hold no receive memory.
    pub(super) spare_recv: Vec<u8>,
    scratch_events: Vec<(Token, Readiness)>,
    /// Round-robin cursor for spreading accepted sessions over the loops.
    pub(super) next_target: usize,
    pub(super) now: Instant,
    pub(super) shutdown_deadline: Option<Instant>,
    /// A `TimerKind::IdleSweep` is in the timer heap.
    idle_sweep_armed: bool,
    pub(super) iteration: IterationStats,
    /// Bytes queued over all this loop's sessions.
    pub(super) queued_bytes: usize,
}

impl EventLoop {
    pub(crate) fn new(
        shared: Arc<LoopShared>,
        peers: Arc<[Arc<LoopShared>]>,
        poll: Poll,
        config: Arc<Config>,
    ) -> Self {
        let next_target = shared.index;
        let wake_timer = WakeTimer::new(poll.registry());
        Self {
            shared,
            peers,
            poll,
            events: Events::with_capacity(1024),
            config,
            sessions: Slab::new(),
            listeners: Slab::new(),
            timers: TimerHeap::new(),
            wake_timer,
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
            queued_bytes: 0,
        }
    }

    /// Runs until shutdown has drained every session (or its deadline passed), or until a
    /// fault inside server-core stops this loop (its sessions are then closed and its work
    /// handed to the live loops).
    pub(crate) fn run(mut self) {
        install_local(&self.shared, &self.peers);
        debug!("I/O thread {} started", self.shared.index);
        loop {
            match catch_unwind(AssertUnwindSafe(|| self.turn())) {
                Ok(true) => {}
                Ok(false) => break,
                Err(panic) => {
                    self.die(guard::panic_message(&*panic));
                    return;
                }
            }
        }
        self.finish();
    }

    /// One iteration; false once shutdown is complete.
    fn turn(&mut self) -> bool {
        let timeout = self.poll_timeout();
        if timeout != Some(Duration::ZERO) {
            self.release_burst_memory();
        }
        self.shared.mark_idle();
        let polled = self.poll.poll(&mut self.events, timeout);
        self.now = Instant::now();
        self.shared.mark_busy(self.now);
        if let Err(e) = polled {
            if e.kind() != io::ErrorKind::Interrupted {
                error!("I/O thread {}: poll failed: {e}", self.shared.index);
                std::thread::sleep(Duration::from_millis(10));
            }
            return true;
        }
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
        // Commands first: a `with_handler` call or a send made before a peer's packet
        // arrived is applied before that packet is read.
        self.drain_inbox();
        let mut events = std::mem::take(&mut self.scratch_events);
        for &(token, readiness) in &events {
            self.dispatch_event(token, readiness);
        }
        events.clear();
        self.scratch_events = events;

        self.drain_inbox();
        self.continue_reads();
        self.run_timers();
        self.run_ready_tasks();
        self.drain_staged();
        self.flush_dirty();
        self.drain_staged();
        self.publish_stats();
        !self.shutdown_finished()
    }

    /// About to sleep: work buffers that a burst (a connect storm, a broadcast to thousands)
    /// grew far past their usual size give the memory back, so a quiet server does not keep
    /// its peak. Below the threshold they are kept, so steady load allocates nothing.
    fn release_burst_memory(&mut self) {
        fn trim<T>(v: &mut Vec<T>) {
            if v.is_empty() && v.capacity() > super::mailbox::KEEP_COMMANDS {
                *v = Vec::new();
            }
        }
        trim(&mut self.dirty);
        trim(&mut self.still_readable);
        trim(&mut self.scratch_events);
        if self.ready_tasks.is_empty()
            && self.ready_tasks.capacity() > super::mailbox::KEEP_COMMANDS
        {
            self.ready_tasks = VecDeque::new();
        }
        self.timers.shrink_if_sparse();
    }

    fn poll_timeout(&mut self) -> Option<Duration> {
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
        self.wake_timer.timeout(deadline, Instant::now())
    }

    fn dispatch_event(&mut self, token: Token, readiness: Readiness) {
        if token == WAKER || token == WAKE_TIMER {
            return; // the inbox is drained and due timers run every iteration anyway
        }
        if token.0 >= LISTENER_BASE {
            self.accept(token.0 - LISTENER_BASE);
        } else {
            self.session_event(token.0, readiness);
        }
    }

    // ---- commands, tasks, timers -------------------------------------------------------

    pub(super) fn drain_inbox(&mut self) {
        let mut commands = std::mem::take(&mut self.scratch_commands);
        self.shared.take_inbox(&mut commands);
        for command in commands.drain(..) {
            self.apply(command);
        }
        trim_drained(&mut commands);
        self.scratch_commands = commands;
    }

    pub(super) fn apply(&mut self, command: Command) {
        match command {
            Command::Send { key, id, packet } => self.enqueue(key, id, packet),
            Command::Disconnect { key, id } => {
                if self.session_matches(key, id) {
                    self.begin_close(key, DisconnectReason::Local);
                }
            }
            Command::WithHandler { key, id, call } => self.call_with_handler(key, id, call),
            Command::ResumeReading { key, id } => self.resume_after_in_flight(key, id),
            Command::Adopt(adoption) => self.adopt(*adoption),
            Command::Listen(entry) => self.add_listener(*entry),
            Command::CloseListener(shared) => self.close_listener(&shared),
            Command::Task(task) => self.ready_tasks.push_back(task),
            Command::Timer { deadline, task } => {
                self.timers.push(deadline, TimerKind::Task(task));
            }
            Command::Shutdown { deadline } => self.begin_shutdown(deadline),
            #[cfg(feature = "fault-injection")]
            Command::Fault => panic!("fault injected into I/O thread {}", self.shared.index),
        }
    }

    fn run_timers(&mut self) {
        while let Some(timer) = self.timers.pop_due(self.now) {
            match timer {
                TimerKind::Task(task) => self.ready_tasks.push_back(task),
                TimerKind::ResumeAccept(listener_key) => self.resume_accept(listener_key),
                TimerKind::IdleSweep => self.sweep_idle(),
                TimerKind::ConnectTimeout { key, id } => self.connect_timed_out(key, id),
                TimerKind::LingerExpired { key, id } => self.linger_expired(key, id),
                TimerKind::Unthrottle { key, id } => self.unthrottle(key, id),
                TimerKind::StallCheck { key, id } => self.check_stall(key, id),
                #[cfg(feature = "websocket")]
                TimerKind::HandshakeTimeout { key, id } => self.handshake_timed_out(key, id),
            }
        }
    }

    /// Schedules the next idle sweep, if there is an idle timeout and none is scheduled.
    /// Sweeps run every eighth of the timeout (at least 10 ms apart), so a silent session is
    /// closed between 1 and 1.125 timeouts after its last byte; a loop without sessions
    /// schedules none and sleeps.
    pub(super) fn arm_idle_sweep(&mut self) {
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
            .filter(|(_, e)| e.conn.idle_since().is_some_and(|t| t + timeout <= now))
            .map(|(key, _)| key)
            .collect();
        for key in silent {
            self.close(key, DisconnectReason::IdleTimeout(timeout));
        }
        if !self.sessions.is_empty() {
            self.arm_idle_sweep();
        }
    }

    /// Runs the tasks ready now, each through the guard (a panicking task is logged and
    /// counted; the next one runs).
    fn run_ready_tasks(&mut self) {
        // Only the tasks present now: a task that re-queues itself runs next iteration,
        // after I/O has had its turn.
        for _ in 0..self.ready_tasks.len() {
            let Some(task) = self.ready_tasks.pop_front() else {
                break;
            };
            self.run_task(task);
        }
    }

    pub(super) fn run_task(&self, task: Task) {
        if let Err(message) = guard::catch(task) {
            self.shared
                .stats
                .task_panics
                .fetch_add(1, Ordering::Relaxed);
            error!(
                "a task panicked on I/O thread {}: {message}",
                self.shared.index
            );
        }
    }

    /// Applies commands staged on this thread for our own sessions and forwards the rest:
    /// data first (one lock and at most one wake per loop), then tasks. Work for a loop
    /// that has stopped is run here rather than lost.
    pub(super) fn drain_staged(&mut self) {
        let me = self.shared.index;
        for _ in 0..STAGING_ROUNDS {
            // The inbox first: whatever a JobQueue run published there (from any thread,
            // this one included) happened before anything staged here since.
            self.drain_inbox();
            let mut local = std::mem::take(&mut self.scratch_commands);
            let mut undeliverable = Vec::new();
            let tasks = take_staged(me, &mut local, &mut undeliverable);
            let idle = local.is_empty() && tasks.is_empty() && undeliverable.is_empty();
            for command in local.drain(..) {
                self.apply(command);
            }
            trim_drained(&mut local);
            self.scratch_commands = local;
            for command in undeliverable {
                self.take_over(command);
            }
            for (index, command) in tasks {
                if index == me {
                    self.apply(command);
                } else if let Err(command) = self.peers[index].push_remote(command) {
                    self.take_over(command);
                }
            }
            if idle {
                return;
            }
        }
    }

    /// A command meant for another loop that can no longer take it: work and new sockets
    /// are taken over here; what concerns that loop's sessions is dropped (they are closed).
    pub(super) fn take_over(&mut self, command: Command) {
        match command {
            Command::Task(_) | Command::Timer { .. } | Command::Adopt(_) | Command::Listen(_) => {
                self.apply(command);
            }
            _ => {}
        }
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
        if it.rate_limited > 0 {
            stats
                .rate_limited_packets
                .fetch_add(it.rate_limited, Ordering::Relaxed);
        }
        stats
            .queued_bytes
            .store(self.queued_bytes, Ordering::Relaxed);
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

    /// After shutdown: the inbox refuses new commands; everything already accepted is run
    /// (tasks, JobQueue hand-offs) or reported as not run (timers not yet due), nothing is
    /// dropped silently.
    fn finish(mut self) {
        self.shared.mark_idle();
        let mut leftovers = self.shared.stop();
        let mut not_run = 0usize;
        // Tasks may stage more work; a bounded number of rounds, then report what is left.
        for _ in 0..16 {
            for command in leftovers.drain(..) {
                not_run += self.finish_command(command);
            }
            while let Some(task) = self.ready_tasks.pop_front() {
                self.run_task(task);
            }
            let me = self.shared.index;
            let mut undeliverable = Vec::new();
            let tasks = take_staged(me, &mut leftovers, &mut undeliverable);
            leftovers.append(&mut undeliverable);
            for (index, command) in tasks {
                if index == me {
                    leftovers.push(command);
                } else if let Err(command) = self.peers[index].push_remote(command) {
                    leftovers.push(command);
                }
            }
            if leftovers.is_empty() && self.ready_tasks.is_empty() {
                break;
            }
        }
        let staged = super::mailbox::uninstall_local();
        let stranded = leftovers.iter().filter(|c| c.is_work()).count()
            + staged.map_or(0, |staged| staged.tasks.len());
        not_run += self
            .timers
            .drain_all()
            .into_iter()
            .filter(|(_, timer)| matches!(timer, TimerKind::Task(_)))
            .count();
        if not_run + stranded > 0 {
            warn!(
                "I/O thread {} stopped with {} timers not yet due and {stranded} tasks that could not run: they will not run",
                self.shared.index, not_run
            );
        }
        debug!("I/O thread {} stopped", self.shared.index);
    }

    /// One command met after shutdown; returns 1 for a timer that will not run.
    fn finish_command(&mut self, command: Command) -> usize {
        match command {
            Command::Task(task) => {
                self.run_task(task);
                0
            }
            Command::Timer { .. } => 1,
            Command::Adopt(adoption) => {
                self.refuse_adoption(*adoption, "the service is shutting down");
                0
            }
            Command::Listen(entry) => {
                info!(
                    "not listening on {}: the service is shutting down",
                    entry.shared.local_addr
                );
                0
            }
            _ => 0,
        }
    }
}
