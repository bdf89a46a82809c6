//! A session's outgoing queue: whole `Bytes` (often shared by every recipient of a
//! broadcast), written with one `writev` per flush instead of one `send` per packet.

use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

/// Linux's `IOV_MAX`: the most slices one `writev` accepts.
const MAX_IOVECS: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    /// Packets in send order; the front one may be partly written already (advanced in place).
    packets: VecDeque<Bytes>,
    /// Bytes in `packets`, checked against the per-session cap on every push.
    queued: usize,
}

/// What one flush achieved.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Flushed {
    pub(crate) bytes: usize,
    pub(crate) packets: usize,
    /// `writev` calls made (including the one that said `WouldBlock`).
    pub(crate) calls: usize,
    /// The socket said `WouldBlock` with bytes still queued: wait for a writable event.
    pub(crate) blocked: bool,
}

/// The push would take the queue past its cap; nothing was queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Overflow {
    pub(crate) queued: usize,
}

impl SendQueue {
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    pub(crate) fn push(&mut self, packet: Bytes, cap: usize) -> Result<(), Overflow> {
        if packet.is_empty() {
            return Ok(());
        }
        if self.queued + packet.len() > cap {
            return Err(Overflow {
                queued: self.queued,
            });
        }
        self.queued += packet.len();
        self.packets.push_back(packet);
        Ok(())
    }

    /// Drops everything queued (the memory of a closing session goes back at once).
    pub(crate) fn clear(&mut self) {
        self.packets = VecDeque::new();
        self.queued = 0;
    }

    /// Writes as much as the socket takes, up to `MAX_IOVECS` slices per call, until the
    /// queue is empty or the socket reports `WouldBlock`. `Interrupted` is retried.
    ///
    /// # Errors
    /// Any other I/O error from the socket; the queue keeps what was not written.
    pub(crate) fn write_to(&mut self, out: &mut impl Write) -> io::Result<Flushed> {
        let mut flushed = Flushed::default();
        while !self.packets.is_empty() {
            flushed.calls += 1;
            let written = match self.write_once(out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    flushed.blocked = true;
                    return Ok(flushed);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            flushed.bytes += written;
            flushed.packets += self.advance(written);
        }
        self.release_if_drained();
        Ok(flushed)
    }

    /// One `writev` of up to `MAX_IOVECS` packets. The slice array lives on the stack for the
    /// common case; zeroing a full `IOV_MAX` array on every flush would cost more than the copy.
    fn write_once(&self, out: &mut impl Write) -> io::Result<usize> {
        const ON_STACK: usize = 64;
        let count = self.packets.len().min(MAX_IOVECS);
        if count <= ON_STACK {
            let mut slices = [IoSlice::new(&[]); ON_STACK];
            for (slot, packet) in slices.iter_mut().zip(&self.packets) {
                *slot = IoSlice::new(packet);
            }
            out.write_vectored(&slices[..count])
        } else {
            let slices: Vec<IoSlice<'_>> = self
                .packets
                .iter()
                .take(count)
                .map(|p| IoSlice::new(p))
                .collect();
            out.write_vectored(&slices)
        }
    }

    /// Gives back the slot array once the queue is empty, so thousands of idle sessions
    /// hold no send memory at all; an active one pays one small allocation per flush.
    fn release_if_drained(&mut self) {
        if self.packets.is_empty() && self.packets.capacity() > 0 {
            self.packets = VecDeque::new();
        }
    }

    /// Removes `n` written bytes from the front; returns how many packets completed.
    fn advance(&mut self, mut n: usize) -> usize {
        self.queued -= n;
        let mut completed = 0;
        while n > 0 {
            let Some(front) = self.packets.front_mut() else {
                break;
            };
            if n >= front.len() {
                n -= front.len();
                self.packets.pop_front();
                completed += 1;
            } else {
                front.advance(n);
                n = 0;
            }
        }
        completed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `limit` bytes per call and then blocks.
    struct Trickle {
        taken: Vec<u8>,
        per_call: usize,
        calls_left: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.calls_left == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls_left -= 1;
            let mut n = 0;
            for b in bufs {
                let take = (self.per_call - n).min(b.len());
                self.taken.extend_from_slice(&b[..take]);
                n += take;
                if n == self.per_call {
                    break;
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn overflow_rejects_and_keeps_queue() {
        let mut q = SendQueue::default();
        q.push(Bytes::from_static(&[0; 6]), 10).unwrap();
        assert_eq!(
            q.push(Bytes::from_static(&[0; 6]), 10),
            Err(Overflow { queued: 6 })
        );
        assert_eq!(q.queued_bytes(), 6);
    }

    #[test]
    fn short_writes_keep_the_rest_in_order() {
        let mut q = SendQueue::default();
        for i in 0..10u8 {
            q.push(Bytes::from(vec![i; 7]), 1000).unwrap();
        }
        let mut w = Trickle {
            taken: Vec::new(),
            per_call: 10,
            calls_left: 3,
        };
        let f = q.write_to(&mut w).unwrap();
        assert!(f.blocked);
        assert_eq!(f.bytes, 30);
        assert_eq!(f.packets, 4);
        assert_eq!(q.queued_bytes(), 40);
        w.calls_left = 100;
        let f = q.write_to(&mut w).unwrap();
        assert!(!f.blocked);
        assert!(q.is_empty());
        let expected: Vec<u8> = (0..10u8).flat_map(|i| [i; 7]).collect();
        assert_eq!(w.taken, expected);
    }

    #[test]
    fn more_than_iov_max_packets_go_out_in_several_calls() {
        let mut q = SendQueue::default();
        for _ in 0..(MAX_IOVECS * 2 + 5) {
            q.push(Bytes::from_static(b"ab"), usize::MAX).unwrap();
        }
        let mut w = Trickle {
            taken: Vec::new(),
            per_call: usize::MAX,
            calls_left: 3,
        };
        let f = q.write_to(&mut w).unwrap();
        assert_eq!(f.packets, MAX_IOVECS * 2 + 5);
        assert_eq!(w.calls_left, 0);
    }
}
