//! JobTimer: jobs pushed to a [`JobQueue`] after a delay, or every interval (the course's
//! `JobTimer.Push(action, tickAfter)`), driven by the I/O threads' user-space timers.
//!
//! A timer holds only a weak reference to its queue: when the last [`JobQueue`] handle is
//! dropped, its pending timers are cancelled (they fire, find nothing, and do nothing).

use crate::errors::SpawnError;
use crate::guard;
use crate::job_queue::{Inner, JobQueue};
use log::{debug, error};
use std::sync::{Arc, Weak};
use std::time::Duration;

impl<T: Send + 'static> JobQueue<T> {
    /// Pushes `job` to this queue after `delay`.
    ///
    /// The job runs no earlier than `delay` from now, in order with the queue's other jobs.
    /// Dropped without running if every handle to the queue is gone by then. A timer still
    /// pending when the service shuts down does not run (the log reports how many did not).
    ///
    /// # Errors
    /// [`SpawnError`] if no I/O thread can hold the timer (the service has shut down, or
    /// every thread died): the job will not run.
    ///
    /// # Examples
    /// ```
    /// use server_core::{JobQueue, Service};
    /// use std::{sync::mpsc, time::{Duration, Instant}};
    ///
    /// let service = Service::builder().threads(1).build()?;
    /// let room = JobQueue::new(&service.handle(), ());
    /// let (tx, rx) = mpsc::channel();
    /// let start = Instant::now();
    /// room.push_after(Duration::from_millis(20), move |_| tx.send(start.elapsed()).unwrap())?;
    /// assert!(rx.recv()? >= Duration::from_millis(20));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push_after<F: FnOnce(&mut T) + Send + 'static>(
        &self,
        delay: Duration,
        job: F,
    ) -> Result<(), SpawnError> {
        let queue = self.weak_inner();
        let fire = Box::new(move || {
            if let Some(inner) = queue.upgrade() {
                JobQueue { inner }.push_boxed(Box::new(job));
            }
        });
        self.inner.executor.execute_after(delay, fire)
    }

    /// Pushes `job` every `interval` (the first time one interval from now) until every
    /// handle to the queue is dropped; the course's room `Flush` every 250 ms.
    ///
    /// The next run is scheduled when the previous one finishes, so runs never pile up
    /// behind a slow job. A run that panics is logged and the schedule continues.
    ///
    /// # Errors
    /// [`SpawnError`] if the first run cannot be scheduled. Later runs stop when the service
    /// shuts down (logged at debug).
    ///
    /// # Examples
    /// ```
    /// use server_core::{JobQueue, Service};
    /// use std::{sync::mpsc, time::Duration};
    ///
    /// let service = Service::builder().threads(1).build()?;
    /// let counter = JobQueue::new(&service.handle(), 0u32);
    /// let (tx, rx) = mpsc::channel();
    /// counter.push_every(Duration::from_millis(5), move |ticks| {
    ///     *ticks += 1;
    ///     let _ = tx.send(*ticks);
    /// })?;
    /// assert_eq!(rx.recv()?, 1);
    /// assert_eq!(rx.recv()?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push_every<F: FnMut(&mut T) + Send + 'static>(
        &self,
        interval: Duration,
        job: F,
    ) -> Result<(), SpawnError> {
        schedule_repeat(self.weak_inner(), interval, job)
    }
}

fn schedule_repeat<T, F>(
    queue: Weak<Inner<T>>,
    interval: Duration,
    mut job: F,
) -> Result<(), SpawnError>
where
    T: Send + 'static,
    F: FnMut(&mut T) + Send + 'static,
{
    let Some(inner) = queue.upgrade() else {
        return Ok(()); // the queue is gone: nothing to repeat
    };
    let executor = Arc::clone(&inner.executor);
    drop(inner);
    let fire = Box::new(move || {
        let Some(inner) = queue.upgrade() else {
            return; // the queue is gone: the repetition ends here
        };
        let next = Weak::clone(&queue);
        JobQueue { inner }.push_boxed(Box::new(move |state: &mut T| {
            if let Err(message) = guard::catch(|| job(state)) {
                error!("a repeating job panicked: {message}");
            }
            if let Err(e) = schedule_repeat(next, interval, job) {
                debug!("repeating timer stopped: {e}");
            }
        }));
    });
    executor.execute_after(interval, fire)
}
