//! The count behind [`InFlight`](super::InFlight) guards, and the hand-shake that resumes
//! reading without a lost wake-up.
//!
//! The owning loop blocks reading when, after handing a frame to the handler, the count is
//! above the limit. Any thread may drop a guard; the drop that brings the count back *to*
//! the limit sends the loop one resume command, and the loop unblocks if the count is at or
//! below the limit when that command arrives. Either the loop sees the lower count when it
//! checks, or the crossing happens after the check and its resume follows: a blocked
//! session is never left blocked under the limit (`loom_in_flight` below models it).

use crate::loom::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug)]
pub(crate) struct InFlightCount {
    count: AtomicU32,
    max: u32,
}

impl InFlightCount {
    pub(crate) fn new(max: u32) -> Self {
        Self {
            count: AtomicU32::new(0),
            max,
        }
    }

    pub(crate) fn acquire(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    /// Releases one; true when this release is the crossing back to the limit (send the
    /// owner a resume).
    pub(crate) fn release(&self) -> bool {
        self.count.fetch_sub(1, Ordering::AcqRel) == self.max + 1
    }

    pub(crate) fn get(&self) -> u32 {
        self.count.load(Ordering::Acquire)
    }

    pub(crate) fn over_limit(&self) -> bool {
        self.get() > self.max
    }
}

#[cfg(all(test, loom))]
mod loom_in_flight {
    //! Run with `RUSTFLAGS="--cfg loom" cargo test -p server-core --release --lib loom`.
    use super::*;
    use crate::loom::sync::{Arc, Mutex};
    use crate::loom::thread;

    /// The loop's side: blocked flag and the resume commands it has received.
    #[derive(Default)]
    struct Loop {
        blocked: bool,
        inbox: Vec<()>,
    }

    fn drain(count: &InFlightCount, state: &Mutex<Loop>) {
        let mut s = state.lock().unwrap();
        while s.inbox.pop().is_some() {
            if !count.over_limit() {
                s.blocked = false;
            }
        }
    }

    #[test]
    fn loom_a_paused_session_is_never_stranded_under_the_limit() {
        loom::model(|| {
            let count = Arc::new(InFlightCount::new(1));
            let state = Arc::new(Mutex::new(Loop::default()));
            // Two packets handled: two guards, one over the limit of 1.
            count.acquire();
            count.acquire();
            let dropper = {
                let (count, state) = (Arc::clone(&count), Arc::clone(&state));
                thread::spawn(move || {
                    // A room job finishes on another thread.
                    if count.release() {
                        state.lock().unwrap().inbox.push(());
                    }
                })
            };
            // The loop checks after the handler returned, then drains its inbox.
            if count.over_limit() {
                state.lock().unwrap().blocked = true;
            }
            drain(&count, &state);
            dropper.join().unwrap();
            drain(&count, &state);
            let s = state.lock().unwrap();
            assert!(
                !(s.blocked && !count.over_limit()),
                "blocked at {} in flight with a limit of 1",
                count.get()
            );
        });
    }
}
