//! JobQueue: a serial executor that owns its state, so game code needs no locks.
//!
//! The course's `JobQueue` (a room that queues `Action`s and runs them one at a time, the
//! first pusher doing the running) rebuilt with Rust ownership:
//!
//! * the queue **owns** the state `T`; a job is `FnOnce(&mut T)`, so no job can run without
//!   the state it needs, and the state lives as long as anyone can still push to it. The
//!   course's crash "the Room is null by the time the job runs" (a job capturing a room that
//!   was already torn down) cannot be written: there is no room reference to capture.
//! * jobs run one at a time, in push order, with `&mut T`; the queue's lock guards only the
//!   list of jobs and is never held while a job runs.
//! * the thread whose push finds the queue idle runs it, as in the course, but only for a
//!   time budget; the rest is handed to an I/O thread's task list (the C++ course's global
//!   queue), so one busy room cannot stall the thread that happened to push to it.
//! * a job that panics is caught and logged (through the same guard as every other piece of
//!   user code); the state keeps what the job changed before panicking, and the queue keeps
//!   serving.
//! * every job's lag (push to start) goes into the service's
//!   [`ServiceStats::job_lag`](crate::ServiceStats::job_lag) histogram.

use crate::errors::SpawnError;
use crate::guard;
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::loom::sync::Mutex;
use crate::runtime::Task;
use crate::service::ServiceHandle;
use log::error;
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

type Job<T> = Box<dyn FnOnce(&mut T) + Send>;

/// Where a queue sends its remaining work when its budget runs out, its timers, and what
/// it reports about its jobs.
pub(crate) trait Executor: Send + Sync {
    /// Runs `task` on some thread soon. On `Err` the task was not accepted (the caller
    /// carries on itself).
    fn execute(&self, task: Task) -> Result<(), SpawnError>;
    fn execute_after(&self, delay: Duration, task: Task) -> Result<(), SpawnError>;
    /// A job is starting `lag` after it was pushed.
    fn job_started(&self, lag: Duration) {
        let _ = lag;
    }
    /// A job panicked (after it was logged).
    fn job_panicked(&self) {}
}

impl Executor for ServiceHandle {
    fn execute(&self, task: Task) -> Result<(), SpawnError> {
        ServiceHandle::execute(self, task)
    }

    fn execute_after(&self, delay: Duration, task: Task) -> Result<(), SpawnError> {
        ServiceHandle::execute_after(self, delay, task)
    }

    fn job_started(&self, lag: Duration) {
        self.inner.jobs.record_lag(lag);
    }

    fn job_panicked(&self) {
        self.inner.jobs.record_panic();
    }
}

/// A serial executor owning a state `T` (for example, a game room).
///
/// Cloning is cheap and every clone pushes to the same queue. The state is dropped when the
/// last clone is dropped and no job is running; pending timers then do nothing.
///
/// # Examples
/// ```
/// use server_core::{JobQueue, Service};
/// use std::sync::mpsc;
///
/// let service = Service::builder().threads(1).build()?;
/// let room = JobQueue::new(&service.handle(), Vec::<String>::new());
///
/// // From any thread: no lock around the Vec, the queue serialises access.
/// room.push(|members| members.push("alice".into()));
/// room.push(|members| members.push("bob".into()));
///
/// let (tx, rx) = mpsc::channel();
/// room.push(move |members| tx.send(members.clone()).unwrap());
/// assert_eq!(rx.recv()?, ["alice", "bob"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JobQueue<T> {
    pub(crate) inner: Arc<Inner<T>>,
}

pub(crate) struct Inner<T> {
    /// Jobs with the time they were pushed (for the lag histogram).
    jobs: Mutex<VecDeque<(Instant, Job<T>)>>,
    /// Jobs pushed and not yet finished. The push that moves it from 0 to 1 makes its thread
    /// the runner; the runner stops when its decrement brings it back to 0.
    pending: AtomicUsize,
    /// Touched only by the runner: exactly one thread at a time, enforced by `pending`.
    state: UnsafeCell<T>,
    pub(crate) executor: Arc<dyn Executor>,
    budget: Duration,
}

// SAFETY: `state` is only accessed by the current runner, and there is at most one runner
// at a time (the thread that took `pending` from 0, or the task it handed off to); the
// AcqRel operations on `pending` order one runner's accesses before the next one's. Jobs
// and the state are `Send`, so moving access between threads is sound.
unsafe impl<T: Send> Sync for Inner<T> {}

impl<T: Send + 'static> JobQueue<T> {
    /// A queue owning `state`, handing work off to `service`'s I/O threads past the
    /// service's job budget (see [`ServiceBuilder::job_budget`](crate::ServiceBuilder::job_budget)).
    #[must_use]
    pub fn new(service: &ServiceHandle, state: T) -> Self {
        Self::with_executor(state, Arc::new(service.clone()), service.job_budget())
    }

    pub(crate) fn with_executor(state: T, executor: Arc<dyn Executor>, budget: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                jobs: Mutex::new(VecDeque::new()),
                pending: AtomicUsize::new(0),
                state: UnsafeCell::new(state),
                executor,
                budget,
            }),
        }
    }

    /// Queues `job`. If the queue was idle, this thread runs it (and whatever is pushed
    /// meanwhile) before returning, for up to the job budget; otherwise the current runner
    /// will. Jobs from one thread run in the order pushed.
    ///
    /// A job may push to its own queue (the new job runs after the current one) or to other
    /// queues.
    pub fn push<F: FnOnce(&mut T) + Send + 'static>(&self, job: F) {
        self.push_boxed(Box::new(job));
    }

    pub(crate) fn push_boxed(&self, job: Job<T>) {
        lock(&self.inner.jobs).push_back((Instant::now(), job));
        // The job is in the list before it is counted, so whoever sees the count sees the job.
        if self.inner.pending.fetch_add(1, Ordering::AcqRel) == 0 {
            Inner::run(&self.inner);
        }
    }

    /// Jobs queued or running right now (a snapshot, for metrics).
    #[must_use]
    pub fn pending_jobs(&self) -> usize {
        self.inner.pending.load(Ordering::Acquire)
    }

    pub(crate) fn weak_inner(&self) -> Weak<Inner<T>> {
        Arc::downgrade(&self.inner)
    }

    /// A handle that does not keep the queue (and its state) alive: what a state needs to
    /// push to its own queue later (for example, to arm a timer) without a reference cycle.
    ///
    /// # Examples
    /// ```
    /// use server_core::{JobQueue, Service};
    ///
    /// let service = Service::builder().threads(1).build()?;
    /// let queue = JobQueue::new(&service.handle(), 0u32);
    /// let weak = queue.downgrade();
    /// assert!(weak.upgrade().is_some());
    /// drop(queue);
    /// assert!(weak.upgrade().is_none());
    /// # Ok::<(), server_core::BuildError>(())
    /// ```
    #[must_use]
    pub fn downgrade(&self) -> WeakJobQueue<T> {
        WeakJobQueue {
            inner: self.weak_inner(),
        }
    }
}

/// A non-owning handle to a [`JobQueue`], from [`JobQueue::downgrade`].
pub struct WeakJobQueue<T> {
    inner: Weak<Inner<T>>,
}

impl<T> WeakJobQueue<T> {
    /// The queue, if any [`JobQueue`] handle to it still exists.
    #[must_use]
    pub fn upgrade(&self) -> Option<JobQueue<T>> {
        self.inner.upgrade().map(|inner| JobQueue { inner })
    }
}

impl<T> Clone for WeakJobQueue<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Weak::clone(&self.inner),
        }
    }
}

impl<T> fmt::Debug for WeakJobQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakJobQueue")
            .field("alive", &(self.inner.strong_count() > 0))
            .finish()
    }
}

impl<T: Send + 'static> Inner<T> {
    /// Runs jobs until none are left or the budget is spent. Called only by the runner.
    fn run(this: &Arc<Self>) {
        let mut started = Instant::now();
        loop {
            let Some((pushed, job)) = lock(&this.jobs).pop_front() else {
                // Unreachable while the invariant holds (a counted job is always listed);
                // stopping here is the safe failure mode.
                error!("JobQueue invariant broken: pending count without a job");
                return;
            };
            this.executor.job_started(pushed.elapsed());
            let outcome = this.state.with_mut(|state| {
                // SAFETY: we are the runner (see `unsafe impl Sync`); no other reference to
                // the state exists while this job runs.
                let state = unsafe { &mut *state };
                guard::catch(|| job(state))
            });
            if let Err(message) = outcome {
                error!("a job panicked: {message}");
                this.executor.job_panicked();
            }
            // Before the queue can pass to another thread, what this job sent must be
            // where that thread's sends will queue up behind it.
            crate::runtime::publish_staged();
            if this.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                return;
            }
            if started.elapsed() >= this.budget {
                let next_runner = Arc::clone(this);
                match this
                    .executor
                    .execute(Box::new(move || Inner::run(&next_runner)))
                {
                    Ok(()) => return,
                    // No thread left to take it (service stopped): keep going here, so
                    // nothing pushed is ever stranded.
                    Err(_) => started = Instant::now(),
                }
            }
        }
    }
}

impl<T> Clone for JobQueue<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> fmt::Debug for JobQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobQueue")
            .field("pending_jobs", &self.inner.pending.load(Ordering::Relaxed))
            .finish()
    }
}

fn lock<J>(jobs: &Mutex<J>) -> crate::loom::sync::MutexGuard<'_, J> {
    // The lock is never held while user code runs, so it cannot be poisoned by a job.
    jobs.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Runs hand-offs on a plain thread, like an I/O thread would.
    struct ThreadExecutor;
    impl Executor for ThreadExecutor {
        fn execute(&self, task: Task) -> Result<(), SpawnError> {
            std::thread::spawn(task);
            Ok(())
        }
        fn execute_after(&self, delay: Duration, task: Task) -> Result<(), SpawnError> {
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                task();
            });
            Ok(())
        }
    }

    fn queue<T: Send + 'static>(state: T, budget: Duration) -> JobQueue<T> {
        JobQueue::with_executor(state, Arc::new(ThreadExecutor), budget)
    }

    fn read<T: Clone + Send + 'static>(q: &JobQueue<T>) -> T {
        let (tx, rx) = mpsc::channel();
        q.push(move |s: &mut T| tx.send(s.clone()).unwrap());
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    #[test]
    fn idle_queue_runs_on_the_pusher() {
        let q = queue(0u32, Duration::from_secs(1));
        let me = std::thread::current().id();
        let (tx, rx) = mpsc::channel();
        q.push(move |n| {
            *n += 1;
            tx.send(std::thread::current().id()).unwrap();
        });
        assert_eq!(rx.try_recv().unwrap(), me);
        assert_eq!(read(&q), 1);
    }

    #[test]
    fn jobs_from_many_threads_all_run_in_per_thread_order() {
        let q = queue(Vec::<(u32, u32)>::new(), Duration::from_micros(50));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        q.push(move |v| v.push((t, i)));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let seen = read(&q);
        assert_eq!(seen.len(), 8_000);
        for t in 0..4 {
            let mine: Vec<u32> = seen
                .iter()
                .filter(|(w, _)| *w == t)
                .map(|(_, i)| *i)
                .collect();
            assert_eq!(mine, (0..2_000).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_panicking_job_is_contained() {
        let q = queue(0u32, Duration::from_secs(1));
        q.push(|_| panic!("boom"));
        q.push(|n| *n += 5);
        assert_eq!(read(&q), 5);
    }

    #[test]
    fn budget_hands_the_rest_to_another_thread() {
        let q = queue(Vec::<std::thread::ThreadId>::new(), Duration::ZERO);
        let q2 = q.clone();
        q.push(move |v| {
            v.push(std::thread::current().id());
            // Pushed while running: queued behind us, run after the hand-off.
            q2.push(|v| v.push(std::thread::current().id()));
        });
        let ids = read(&q);
        assert_eq!(ids.len(), 2);
        assert_ne!(ids[0], ids[1]);
    }

    #[test]
    fn state_is_dropped_with_the_last_handle() {
        let marker = Arc::new(());
        let q = queue(Arc::clone(&marker), Duration::from_secs(1));
        let q2 = q.clone();
        drop(q);
        assert_eq!(Arc::strong_count(&marker), 2);
        drop(q2);
        assert_eq!(Arc::strong_count(&marker), 1);
    }
}

#[cfg(all(test, loom))]
mod loom_job_queue {
    //! Model tests of the hand-off: run with
    //! `RUSTFLAGS="--cfg loom" cargo test -p server-core --release --lib loom`.
    use super::*;
    use crate::loom::sync::Mutex as LoomMutex;
    use crate::loom::thread;

    /// Collects hand-offs; the test runs them after the pushers finish, like an I/O thread.
    #[derive(Default)]
    struct Collect(LoomMutex<Vec<Task>>);
    impl Executor for Collect {
        fn execute(&self, task: Task) -> Result<(), SpawnError> {
            self.0.lock().unwrap().push(task);
            Ok(())
        }
        fn execute_after(&self, _: Duration, task: Task) -> Result<(), SpawnError> {
            self.execute(task)
        }
    }
    impl Collect {
        fn run_all(&self) {
            loop {
                let tasks = std::mem::take(&mut *self.0.lock().unwrap());
                if tasks.is_empty() {
                    return;
                }
                for t in tasks {
                    t();
                }
            }
        }
    }

    fn model(budget: Duration) {
        loom::model(move || {
            let exec = Arc::new(Collect::default());
            let q = JobQueue::with_executor(Vec::<u32>::new(), exec.clone(), budget);
            let q1 = q.clone();
            let a = thread::spawn(move || {
                q1.push(|v| v.push(1));
                q1.push(|v| v.push(2));
            });
            let q2 = q.clone();
            let b = thread::spawn(move || q2.push(|v| v.push(10)));
            a.join().unwrap();
            b.join().unwrap();
            exec.run_all();
            let out = Arc::new(LoomMutex::new(None));
            let out2 = Arc::clone(&out);
            q.push(move |v| *out2.lock().unwrap() = Some(v.clone()));
            exec.run_all();
            let seen = out.lock().unwrap().take().expect("the reading job ran");
            assert_eq!(seen.len(), 3, "every job ran exactly once: {seen:?}");
            let pos = |x| seen.iter().position(|&y| y == x).unwrap();
            assert!(
                pos(1) < pos(2),
                "one pusher's jobs keep their order: {seen:?}"
            );
            assert!(seen.contains(&10));
            assert_eq!(q.pending_jobs(), 0);
        });
    }

    #[test]
    fn loom_first_pusher_runs_without_hand_off() {
        model(Duration::MAX);
    }

    #[test]
    fn loom_hand_off_after_every_job() {
        model(Duration::ZERO);
    }
}
