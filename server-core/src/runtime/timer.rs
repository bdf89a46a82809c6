//! User-space timers for an event loop: a binary heap keyed by deadline. The loop's poll
//! timeout is the earliest deadline, so an idle loop sleeps until something is due.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

pub(crate) struct TimerHeap<T> {
    heap: BinaryHeap<Entry<T>>,
    /// Tie-breaker so timers with equal deadlines fire in the order they were set.
    next_seq: u64,
}

struct Entry<T> {
    deadline: Instant,
    seq: u64,
    value: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    /// Reversed, so the std max-heap pops the earliest deadline first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

impl<T> TimerHeap<T> {
    pub(crate) fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }

    pub(crate) fn push(&mut self, deadline: Instant, value: T) {
        self.heap.push(Entry {
            deadline,
            seq: self.next_seq,
            value,
        });
        self.next_seq += 1;
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.deadline)
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.heap.peek()?.deadline <= now {
            self.heap.pop().map(|e| e.value)
        } else {
            None
        }
    }

    /// Takes every timer, due or not, with its deadline.
    pub(crate) fn drain_all(&mut self) -> Vec<(Instant, T)> {
        std::mem::take(&mut self.heap)
            .into_iter()
            .map(|e| (e.deadline, e.value))
            .collect()
    }

    /// Gives back memory once the heap holds under a quarter of its capacity (after a storm
    /// of sessions came and went); keeps twice what is in use.
    pub(crate) fn shrink_if_sparse(&mut self) {
        if self.heap.capacity() > 1024 && self.heap.len() < self.heap.capacity() / 4 {
            self.heap.shrink_to(self.heap.len() * 2);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_deadline_then_insertion_order() {
        let t0 = Instant::now();
        let mut h = TimerHeap::new();
        h.push(t0 + Duration::from_millis(20), "late");
        h.push(t0 + Duration::from_millis(10), "first");
        h.push(t0 + Duration::from_millis(10), "second");
        assert_eq!(h.next_deadline(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(h.pop_due(t0), None);
        let now = t0 + Duration::from_millis(15);
        assert_eq!(h.pop_due(now), Some("first"));
        assert_eq!(h.pop_due(now), Some("second"));
        assert_eq!(h.pop_due(now), None);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn a_drained_storm_gives_its_memory_back() {
        let t0 = Instant::now();
        let mut h = TimerHeap::new();
        for i in 0..10_000 {
            h.push(t0 + Duration::from_millis(i), i);
        }
        let grown = h.heap.capacity();
        while h.len() > 100 {
            h.pop_due(t0 + Duration::from_secs(60));
        }
        h.shrink_if_sparse();
        assert!(
            h.heap.capacity() <= 200,
            "kept {} of {grown}",
            h.heap.capacity()
        );
        assert_eq!(
            h.pop_due(t0 + Duration::from_secs(60)),
            Some(9_900),
            "order survives"
        );
    }
}
