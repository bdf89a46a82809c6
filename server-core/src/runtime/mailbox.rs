//! How threads reach an I/O thread: its inbox (a locked `Vec` of commands) and its waker,
//! plus the per-thread staging area that batches what an I/O thread sends to the others.
//!
//! Commands made *on* a loop thread are staged in a thread-local outbox instead of locking
//! the target's inbox per packet: a broadcast to 500 sessions costs one `Vec` push each,
//! then one lock and at most one wake-up per other loop. Data is forwarded before tasks,
//! so a JobQueue handed to another thread can never overtake the packets it already sent.
//!
//! A loop that has stopped (shutdown) or died (a fault inside server-core) refuses new
//! commands: `push_remote` gives them back, so the caller can route them elsewhere or
//! report an error. Nothing is accepted that will not be run or reported.

use super::accept::ListenerEntry;
use super::Adoption;
use crate::listener::ListenerShared;
use crate::session::{Session, SessionHandler, SessionId};
use crate::stats::LoopStats;
use bytes::Bytes;
use log::error;
use mio::{Poll, Token, Waker};
use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Work handed to an I/O thread.
pub(crate) type Task = Box<dyn FnOnce() + Send>;

/// A [`Session::with_handler`] call on its way to the session's loop.
pub(crate) type HandlerCall = Box<dyn FnOnce(&mut dyn SessionHandler, &Session) + Send>;

/// The waker's token; session and listener tokens are below it.
pub(crate) const WAKER: Token = Token(usize::MAX);

/// Commands a reused command buffer keeps room for once drained (56 KiB). A burst (one
/// broadcast to 5,000 sessions) grows the buffers it passes through; without a trim every
/// such buffer would keep its peak size for the life of the process.
pub(crate) const KEEP_COMMANDS: usize = 1024;

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
    WithHandler {
        key: usize,
        id: SessionId,
        call: HandlerCall,
    },
    /// Enough [`InFlight`](crate::InFlight) guards were dropped: reading may resume.
    ResumeReading {
        key: usize,
        id: SessionId,
    },
    Adopt(Box<Adoption>),
    Listen(Box<ListenerEntry>),
    CloseListener(Arc<ListenerShared>),
    Task(Task),
    Timer {
        deadline: Instant,
        task: Task,
    },
    Shutdown {
        deadline: Instant,
    },
    /// Makes the loop fail outside every guard, as a bug inside server-core would.
    #[cfg(feature = "fault-injection")]
    Fault,
}

impl Command {
    /// Work that must run (or be reported) wherever it ends up: tasks and timers.
    pub(crate) fn is_work(&self) -> bool {
        matches!(self, Command::Task(_) | Command::Timer { .. })
    }
}

/// The part of a loop other threads hold: its inbox, its waker, its liveness and counters.
pub(crate) struct LoopShared {
    service_id: u64,
    pub(crate) index: usize,
    inbox: Mutex<Inbox>,
    waker: Waker,
    /// Set by whoever wakes the loop, cleared by the loop before it drains the inbox: at most
    /// one wake-up (an eventfd write) is pending per loop, however many commands arrive.
    wake_pending: AtomicBool,
    /// Cleared when the loop thread dies; routing skips dead loops.
    alive: AtomicBool,
    /// Nanoseconds since `epoch` at which the loop last left `poll`, or 0 while it sleeps in
    /// `poll`: a loop busy for seconds is stuck in someone's code.
    busy_since: AtomicU64,
    epoch: Instant,
    /// Recent wall time of one socket write on this loop, in nanoseconds (0 before the
    /// first), for [`ServiceHandle::write_cost`](crate::ServiceHandle::write_cost).
    write_cost_ns: AtomicU64,
    pub(crate) stats: LoopStats,
}

struct Inbox {
    commands: Vec<Command>,
    /// The loop has exited or died; commands would never be read.
    stopped: bool,
}

impl LoopShared {
    pub(crate) fn new(
        service_id: u64,
        index: usize,
        poll: &Poll,
        epoch: Instant,
    ) -> io::Result<Self> {
        Ok(Self {
            service_id,
            index,
            inbox: Mutex::new(Inbox {
                commands: Vec::new(),
                stopped: false,
            }),
            waker: Waker::new(poll.registry(), WAKER)?,
            wake_pending: AtomicBool::new(false),
            alive: AtomicBool::new(true),
            busy_since: AtomicU64::new(0),
            epoch,
            write_cost_ns: AtomicU64::new(0),
            stats: LoopStats::default(),
        })
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// How long the loop has been busy since it last left `poll` (zero while it sleeps).
    pub(crate) fn busy_for(&self, now: Instant) -> Duration {
        match self.busy_since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => now
                .saturating_duration_since(self.epoch)
                .saturating_sub(Duration::from_nanos(since)),
        }
    }

    pub(crate) fn mark_busy(&self, now: Instant) {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        self.busy_since.store(
            u64::try_from(nanos).unwrap_or(u64::MAX).max(1),
            Ordering::Relaxed,
        );
    }

    /// A flush pass made `calls` writes in `elapsed`: folds the cost per write into the
    /// moving average (weight 1/8 per pass). Only the loop's own thread writes it.
    pub(crate) fn record_write_cost(&self, elapsed: Duration, calls: u64) {
        // A pass cut by preemption says more about the machine than about writes: one
        // sample counts for at most a millisecond per write.
        let sample = u64::try_from(elapsed.as_nanos() / u128::from(calls.max(1)))
            .unwrap_or(u64::MAX)
            .min(1_000_000);
        let old = self.write_cost_ns.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.write_cost_ns.store(new.max(1), Ordering::Relaxed);
    }

    /// The moving average of [`record_write_cost`](Self::record_write_cost), if any.
    pub(crate) fn write_cost(&self) -> Option<Duration> {
        match self.write_cost_ns.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    pub(crate) fn mark_idle(&self) {
        self.busy_since.store(0, Ordering::Relaxed);
    }

    /// Sends a command to this loop: staged if we are on a loop thread of the same service,
    /// otherwise straight into the inbox. Commands for a stopped loop are dropped: use it
    /// only for commands about this loop's own sessions, which are closed by then.
    pub(crate) fn submit(&self, command: Command) {
        if let Err(command) = self.try_submit(command) {
            drop(command);
        }
    }

    /// Like [`submit`](Self::submit) but gives the command back if the loop has stopped.
    /// Staged work whose loop stops before it is forwarded is run by the staging loop
    /// instead (see `EventLoop::drain_staged`), so `Ok` always means "will run".
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
                Some(ctx) if ctx.service_id == self.service_id && self.is_alive() => {
                    if command.is_work() {
                        ctx.tasks.push((self.index, command));
                    } else {
                        ctx.outboxes[self.index].push(command);
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

    /// Moves a whole batch into the inbox under one lock. If the loop has stopped, the
    /// batch stays in `commands` for the caller to deal with. `wake` is false when the
    /// caller is this loop's own thread (it drains before sleeping).
    pub(crate) fn push_batch(&self, commands: &mut Vec<Command>, wake: bool) -> Result<(), ()> {
        {
            let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
            if inbox.stopped {
                return Err(());
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
        Ok(())
    }

    fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                error!("failed to wake I/O thread {}: {e}", self.index);
            }
        }
    }

    pub(crate) fn take_inbox(&self, into: &mut Vec<Command>) {
        // Cleared before draining: a command pushed after our swap wakes us again.
        self.wake_pending.store(false, Ordering::Release);
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut inbox.commands, into);
    }

    /// Refuses further commands and returns those still waiting.
    pub(crate) fn stop(&self) -> Vec<Command> {
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        inbox.stopped = true;
        std::mem::take(&mut inbox.commands)
    }

    /// Like [`stop`](Self::stop), and routing skips this loop from now on.
    pub(crate) fn mark_dead(&self) -> Vec<Command> {
        self.alive.store(false, Ordering::Release);
        self.mark_idle();
        self.stop()
    }
}

/// The staging area of the loop thread we are on, if any.
pub(crate) struct LocalContext {
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

/// Makes this thread the loop thread `me` of its service (staging on).
pub(crate) fn install_local(me: &LoopShared, peers: &Arc<[Arc<LoopShared>]>) {
    LOCAL.with(|local| {
        *local.borrow_mut() = Some(LocalContext {
            service_id: me.service_id,
            loop_index: me.index,
            outboxes: (0..peers.len()).map(|_| Vec::new()).collect(),
            tasks: Vec::new(),
            peers: Arc::clone(peers),
        });
    });
}

/// What was still staged when staging was turned off.
pub(crate) struct Staged {
    /// Data commands by target loop index.
    pub(crate) outboxes: Vec<Vec<Command>>,
    /// Tasks and timers with their target loop.
    pub(crate) tasks: Vec<(usize, Command)>,
}

/// Staging off: what is still staged is returned.
pub(crate) fn uninstall_local() -> Option<Staged> {
    LOCAL.with(|local| {
        local.borrow_mut().take().map(|ctx| Staged {
            outboxes: ctx.outboxes,
            tasks: ctx.tasks,
        })
    })
}

/// Takes what this thread staged: its own loop's commands into `own`, every other loop's
/// batch moved into that loop's inbox (or, if that loop has stopped, appended to
/// `undeliverable`), and the staged tasks returned.
pub(crate) fn take_staged(
    me: usize,
    own: &mut Vec<Command>,
    undeliverable: &mut Vec<Command>,
) -> Vec<(usize, Command)> {
    LOCAL.with(|cell| {
        let mut cell = cell.borrow_mut();
        let Some(ctx) = cell.as_mut() else {
            return Vec::new();
        };
        std::mem::swap(&mut ctx.outboxes[me], own);
        for (index, outbox) in ctx.outboxes.iter_mut().enumerate() {
            if index != me
                && !outbox.is_empty()
                && ctx.peers[index].push_batch(outbox, true).is_err()
            {
                undeliverable.append(outbox);
            }
        }
        std::mem::take(&mut ctx.tasks)
    })
}

/// Whether anything is staged on this thread.
pub(crate) fn staged_pending() -> bool {
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
/// threads, whose sends go straight to the inboxes anyway. Batches for a stopped loop stay
/// staged; the loop thread deals with them when it drains its staging area.
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
                    let _ = peer.push_batch(outbox, index != me);
                }
            }
        }
    });
}

/// The index of the loop thread we are on, if it belongs to the given service.
pub(crate) fn current_loop(service_id: u64) -> Option<usize> {
    LOCAL.with(|local| {
        local.try_borrow().ok().and_then(|ctx| {
            ctx.as_ref()
                .filter(|c| c.service_id == service_id)
                .map(|c| c.loop_index)
        })
    })
}

/// Gives back the memory of a drained command buffer that a burst grew past
/// [`KEEP_COMMANDS`].
pub(crate) fn trim_drained(commands: &mut Vec<Command>) {
    if commands.is_empty() && commands.capacity() > KEEP_COMMANDS {
        *commands = Vec::with_capacity(KEEP_COMMANDS);
    }
}
