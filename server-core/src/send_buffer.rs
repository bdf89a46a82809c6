//! SendBuffer: encode packets into a shared chunk, hand out frozen `Bytes` slices of it.
//!
//! The course's `SendBufferHelper.Open/Close` carves packets out of a large per-thread
//! chunk so a broadcast is serialised once and every recipient's queue holds a reference to
//! the same bytes. `bytes` gives us this directly: write into a [`BytesMut`] chunk, `split`
//! the written part off and `freeze` it. The chunk's memory is freed when the last packet
//! carved from it has been sent by every recipient.
//!
//! ```text
//!   chunk (one allocation, CHUNK_SIZE bytes)
//!   +---------+---------+-----------+------------------------+
//!   | packet1 | packet2 |  packet3  |    still free          |
//!   +---------+---------+-----------+------------------------+
//!     Bytes     Bytes     Bytes        BytesMut (this thread)
//!     (shared by every recipient's send queue)
//! ```

use bytes::{Bytes, BytesMut};
use std::cell::RefCell;

/// Default size of one chunk; a new chunk is started when less than [`MIN_FREE`] is left.
pub(crate) const CHUNK_SIZE: usize = 16 * 1024;
/// Below this much free space the current chunk is abandoned for a fresh one, so small
/// packets do not trigger a reallocation inside the encoder.
const MIN_FREE: usize = 256;

/// An encoding arena: packets written through it share chunk allocations.
///
/// Most code uses the per-thread instance through [`encode_with`]; an owned `SendBuffer` is
/// for code that wants its own (for example, a benchmark).
///
/// # Examples
/// ```
/// use server_core::SendBuffer;
///
/// let mut arena = SendBuffer::new(4096);
/// let a = arena.write(|buf| { buf.extend_from_slice(b"\x06\x00\x01\x00hi"); Ok::<_, ()>(()) }).unwrap();
/// let b = arena.write(|buf| { buf.extend_from_slice(b"\x04\x00\x02\x00"); Ok::<_, ()>(()) }).unwrap();
/// assert_eq!(&a[..], b"\x06\x00\x01\x00hi");
/// assert_eq!(b.len(), 4);
/// ```
#[derive(Debug)]
pub struct SendBuffer {
    chunk: BytesMut,
    chunk_size: usize,
}

impl SendBuffer {
    /// An arena whose chunks are `chunk_size` bytes (packets larger than that get a chunk of
    /// their own size).
    #[must_use]
    pub fn new(chunk_size: usize) -> Self {
        Self {
            chunk: BytesMut::new(),
            chunk_size: chunk_size.max(MIN_FREE),
        }
    }

    /// Runs `encode` on the free part of the current chunk and returns what it appended as
    /// shared, immutable `Bytes`.
    ///
    /// # Errors
    /// Whatever `encode` returns; anything it appended before failing is discarded.
    pub fn write<E>(
        &mut self,
        encode: impl FnOnce(&mut BytesMut) -> Result<(), E>,
    ) -> Result<Bytes, E> {
        if self.chunk.capacity() - self.chunk.len() < MIN_FREE {
            self.chunk = BytesMut::with_capacity(self.chunk_size);
        }
        debug_assert!(self.chunk.is_empty());
        match encode(&mut self.chunk) {
            Ok(()) => Ok(self.chunk.split().freeze()),
            Err(e) => {
                self.chunk.clear();
                Err(e)
            }
        }
    }
}

thread_local! {
    static THREAD_SEND_BUFFER: RefCell<SendBuffer> = RefCell::new(SendBuffer::new(CHUNK_SIZE));
}

/// Encodes with this thread's [`SendBuffer`], the Rust form of the course's
/// `SendBufferHelper.Open(...)` / `Close(...)`.
///
/// # Errors
/// Whatever `encode` returns.
///
/// # Panics
/// If `encode` itself calls `encode_with` (the arena is borrowed while `encode` runs).
///
/// # Examples
/// ```
/// let frame = server_core::encode_with(|buf| {
///     buf.extend_from_slice(&server_core::frame::header(7, 2).unwrap());
///     buf.extend_from_slice(b"hi");
///     Ok::<_, std::convert::Infallible>(())
/// }).unwrap();
/// assert_eq!(frame.len(), 6);
/// ```
pub fn encode_with<E>(encode: impl FnOnce(&mut BytesMut) -> Result<(), E>) -> Result<Bytes, E> {
    THREAD_SEND_BUFFER.with(|arena| arena.borrow_mut().write(encode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_share_one_chunk() {
        let mut arena = SendBuffer::new(1024);
        let a = arena
            .write(|b| {
                b.extend_from_slice(&[1; 10]);
                Ok::<_, ()>(())
            })
            .unwrap();
        let b = arena
            .write(|b| {
                b.extend_from_slice(&[2; 10]);
                Ok::<_, ()>(())
            })
            .unwrap();
        assert_eq!(a.as_ptr().wrapping_add(10), b.as_ptr());
    }

    #[test]
    fn failed_encode_leaves_nothing_behind() {
        let mut arena = SendBuffer::new(1024);
        let r = arena.write(|b| {
            b.extend_from_slice(&[9; 5]);
            Err("too big")
        });
        assert_eq!(r, Err("too big"));
        let ok = arena
            .write(|b| {
                b.extend_from_slice(&[1]);
                Ok::<_, ()>(())
            })
            .unwrap();
        assert_eq!(&ok[..], &[1]);
    }

    #[test]
    fn oversized_packet_still_encodes() {
        let mut arena = SendBuffer::new(256);
        let big = arena
            .write(|b| {
                b.extend_from_slice(&[7; 5000]);
                Ok::<_, ()>(())
            })
            .unwrap();
        assert_eq!(big.len(), 5000);
    }
}
