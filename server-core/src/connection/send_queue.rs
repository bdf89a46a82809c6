//! A session's outgoing queue: whole `Bytes` (often shared by every recipient of a
//! broadcast), written with one `writev` per flush instead of one `send` per packet.
//!
//! Each entry remembers how many frames it holds (a room's tick is one `Bytes` carrying
//! many frames), so "packets out" counts packets, not writes.
//!
//! A transport with messages of its own (WebSocket) queues packets into an *open message*:
//! a placeholder entry goes in front of the first packet, and at flush time the transport
//! *seals* the message by putting its header (a few bytes of their own) in the placeholder,
//! so the packets' shared `Bytes` are written behind it untouched:
//!
//! ```text
//!   [ hdr | pkt | pkt ][ pong ][ hdr | pkt ]      sealed units, written in order
//!     ^ unit start       ^ unit  ^ placeholder, sealed at the next flush
//! ```
//!
//! Frames the transport sends whole (a pong, a close, an HTTP response) are units of their
//! own, queued after the message before them is sealed, so they never land inside it.

use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

/// Linux's `IOV_MAX`: the most slices one `writev` accepts.
const MAX_IOVECS: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    /// Packets in send order; the front one may be partly written already (advanced in place).
    packets: VecDeque<Entry>,
    /// Bytes in `packets`, checked against the per-session cap on every push.
    queued: usize,
}

#[derive(Debug)]
struct Entry {
    bytes: Bytes,
    /// Frames in `bytes`, counted when queued (see [`count_frames`]).
    frames: u32,
    /// A transport message (or TCP packet) starts here: a peer can be handed something else
    /// (a close frame) before this entry, but not inside the unit it starts.
    unit_start: bool,
    /// Partly written: the peer has seen the first bytes of this entry.
    touched: bool,
}

/// A transport message being filled: where its header goes and how long it is so far.
/// Kept by the transport, so a TCP session pays nothing for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenMessage {
    /// Index of the placeholder entry. Stable while the message is open: entries only leave
    /// the front when written, and a flush seals first.
    placeholder: usize,
    /// Payload bytes queued in the message.
    pub(crate) bytes: usize,
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
    /// Bytes waiting to be written.
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
        self.push_entry(packet, true);
        Ok(())
    }

    fn push_entry(&mut self, bytes: Bytes, unit_start: bool) {
        let frames = count_frames(&bytes);
        self.packets.push_back(Entry {
            bytes,
            frames,
            unit_start,
            touched: false,
        });
    }

    /// Queues `packet` into the open message, opening one (with a placeholder for its
    /// header) if there is none; `cap` as for [`push`](Self::push).
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    pub(crate) fn push_in_message(
        &mut self,
        packet: Bytes,
        cap: usize,
        open: &mut Option<OpenMessage>,
    ) -> Result<(), Overflow> {
        if packet.is_empty() {
            return Ok(());
        }
        if self.queued + packet.len() > cap {
            return Err(Overflow {
                queued: self.queued,
            });
        }
        let message = open.get_or_insert_with(|| {
            self.packets.push_back(Entry {
                bytes: Bytes::new(),
                frames: 0,
                unit_start: true,
                touched: false,
            });
            OpenMessage {
                placeholder: self.packets.len() - 1,
                bytes: 0,
            }
        });
        message.bytes += packet.len();
        self.queued += packet.len();
        self.push_entry(packet, false);
        Ok(())
    }

    /// Seals `open` by putting `header` in its placeholder.
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    pub(crate) fn seal(&mut self, open: OpenMessage, header: Bytes) {
        if let Some(entry) = self.packets.get_mut(open.placeholder) {
            self.queued += header.len();
            entry.bytes = header;
        }
    }

    /// Seals `open` by replacing it (placeholder and packets) with the one entry `build`
    /// makes from the packets' bytes: for a transport that must transform them (a client
    /// masks what it sends).
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    pub(crate) fn seal_into_one(
        &mut self,
        open: OpenMessage,
        build: impl FnOnce(&mut dyn Iterator<Item = &[u8]>) -> Bytes,
    ) {
        let first = open.placeholder + 1;
        if first > self.packets.len() {
            return;
        }
        let frames = self.packets.range(first..).map(|e| e.frames).sum();
        let message = build(&mut self.packets.range(first..).map(|e| &e.bytes[..]));
        self.packets.truncate(open.placeholder);
        self.queued = self.queued - open.bytes + message.len();
        self.packets.push_back(Entry {
            bytes: message,
            frames,
            unit_start: true,
            touched: false,
        });
    }

    /// Queues bytes a transport sends whole (a control frame, an HTTP response): a unit of
    /// their own, no packets counted, not held to the cap (the transport bounds them).
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    pub(crate) fn push_unit(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.queued += bytes.len();
        self.packets.push_back(Entry {
            bytes,
            frames: 0,
            unit_start: true,
            touched: false,
        });
    }

    /// Whether the next byte written starts a unit (or nothing is queued): the peer is not
    /// in the middle of a message, so something else may be written now.
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    pub(crate) fn at_unit_boundary(&self) -> bool {
        self.packets
            .front()
            .is_none_or(|e| e.unit_start && !e.touched)
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
            for (slot, entry) in slices.iter_mut().zip(&self.packets) {
                *slot = IoSlice::new(&entry.bytes);
            }
            out.write_vectored(&slices[..count])
        } else {
            let slices: Vec<IoSlice<'_>> = self
                .packets
                .iter()
                .take(count)
                .map(|entry| IoSlice::new(&entry.bytes))
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

    /// Removes `n` written bytes from the front; returns how many frames completed.
    fn advance(&mut self, mut n: usize) -> usize {
        self.queued -= n;
        let mut completed = 0;
        while n > 0 {
            let Some(front) = self.packets.front_mut() else {
                break;
            };
            if n >= front.bytes.len() {
                n -= front.bytes.len();
                completed += front.frames as usize;
                self.packets.pop_front();
            } else {
                front.bytes.advance(n);
                front.touched = true;
                n = 0;
            }
        }
        completed
    }
}

/// Frames in `bytes`, read from their size fields: 1 for a single frame (the usual case,
/// one comparison), N for a tick's worth of frames concatenated. Bytes that are not a
/// frame stream (the size fields do not add up) count as one packet.
fn count_frames(bytes: &[u8]) -> u32 {
    let mut frames = 0u32;
    let mut pos = 0usize;
    while let Some(size) = bytes.get(pos..pos + 2) {
        let size = usize::from(u16::from_le_bytes([size[0], size[1]]));
        if size < crate::frame::HEADER_SIZE {
            return 1;
        }
        pos += size;
        frames += 1;
    }
    if pos == bytes.len() {
        frames.max(1)
    } else {
        1
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
    fn packets_out_counts_frames_inside_a_batch() {
        let mut batch = Vec::new();
        for _ in 0..5 {
            batch.extend_from_slice(&[6, 0, 1, 0, b'h', b'i']);
        }
        assert_eq!(count_frames(&batch), 5);
        assert_eq!(count_frames(&[4, 0, 9, 0]), 1);
        assert_eq!(count_frames(b"not frames"), 1);
        let mut q = SendQueue::default();
        q.push(Bytes::from(batch), 1000).unwrap();
        q.push(Bytes::from_static(&[4, 0, 9, 0]), 1000).unwrap();
        let mut w = Trickle {
            taken: Vec::new(),
            per_call: 20,
            calls_left: 1,
        };
        assert_eq!(q.write_to(&mut w).unwrap().packets, 0, "batch half written");
        w.calls_left = 10;
        assert_eq!(q.write_to(&mut w).unwrap().packets, 6);
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
