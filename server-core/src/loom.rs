//! Swaps `std` synchronisation for loom's under `--cfg loom`, as tokio does.
//!
//! Code whose interleavings we model (the [`JobQueue`](crate::JobQueue) hand-off, the
//! in-flight count that pauses and resumes reading) imports
//! from here, never from `std::sync` directly, so the same source runs under the model
//! checker and in production.

#[cfg(all(test, loom))]
pub(crate) use loom::{cell, sync, thread};

#[cfg(not(all(test, loom)))]
pub(crate) mod sync {
    pub(crate) use std::sync::{atomic, Mutex, MutexGuard};
}

#[cfg(not(all(test, loom)))]
pub(crate) mod cell {
    /// `std::cell::UnsafeCell` with loom's closure-based API, so loom can track accesses.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }

        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}
