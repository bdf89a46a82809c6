//! A session's receive buffer: one allocation with read and write cursors.
//!
//! ```text
//!  0          read            write            capacity
//!  +-----------+---------------+----------------+
//!  | consumed  | unread bytes  |  free space    |
//!  +-----------+---------------+----------------+
//! ```
//!
//! Reads land in the free space; complete frames are handed out from the unread bytes in
//! place (no copy); [`RecvBuffer::compact`] slides a partial frame to the front. The buffer
//! is not allocated until the first read, is given back whenever it empties (to a spare the
//! loop keeps for the next session that reads), and grows, by doubling, only up to
//! `max_capacity` (the maximum packet size): a session between packets pins no memory and a
//! hostile one cannot make it grow without bound.

#[derive(Debug)]
pub(crate) struct RecvBuffer {
    /// Backing storage; `buf.len()` is the capacity in use.
    buf: Vec<u8>,
    /// Start of unread bytes.
    read: usize,
    /// End of unread bytes, start of free space.
    write: usize,
    /// Size of the first allocation.
    initial_capacity: usize,
    /// Growth stops here: a frame can never be larger than this.
    max_capacity: usize,
}

impl RecvBuffer {
    pub(crate) fn new(initial_capacity: usize, max_capacity: usize) -> Self {
        let max_capacity = max_capacity.max(1);
        Self {
            buf: Vec::new(),
            read: 0,
            write: 0,
            initial_capacity: initial_capacity.clamp(1, max_capacity),
            max_capacity,
        }
    }

    /// The bytes received and not yet consumed.
    pub(crate) fn unread(&self) -> &[u8] {
        &self.buf[self.read..self.write]
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Marks `n` unread bytes as consumed. When nothing is left the cursors rewind for free.
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.write - self.read);
        self.read = (self.read + n).min(self.write);
        if self.read == self.write {
            self.read = 0;
            self.write = 0;
        }
    }

    /// Free space to read into, after making room: compacts when the buffer is full, then
    /// doubles it (up to `max_capacity`) if it is still full. Growth follows the bytes that
    /// actually arrived, never the size a header promises, so a peer that announces a
    /// 64 KiB frame and then trickles costs only what it sent. Returns an empty slice only
    /// if the buffer is at `max_capacity` and full.
    pub(crate) fn free_space(&mut self) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = vec![0; self.initial_capacity];
        }
        if self.write == self.buf.len() {
            self.compact();
        }
        if self.write == self.buf.len() && self.buf.len() < self.max_capacity {
            let new_len = (self.buf.len() * 2).min(self.max_capacity);
            self.buf.resize(new_len, 0);
        }
        &mut self.buf[self.write..]
    }

    /// Records that `n` bytes were written into the slice returned by [`free_space`](Self::free_space).
    pub(crate) fn commit(&mut self, n: usize) {
        debug_assert!(self.write + n <= self.buf.len());
        self.write = (self.write + n).min(self.buf.len());
    }

    /// Moves unread bytes to the front so the free space is contiguous and as large as it can be.
    pub(crate) fn compact(&mut self) {
        if self.read > 0 {
            self.buf.copy_within(self.read..self.write, 0);
            self.write -= self.read;
            self.read = 0;
        }
    }

    /// Before a read: takes the loop's spare buffer instead of allocating a fresh one when
    /// this session gave its own back (see [`release_if_empty`](Self::release_if_empty)).
    pub(crate) fn take_spare(&mut self, spare: &mut Vec<u8>) {
        if self.buf.is_empty() && spare.len() == self.initial_capacity {
            self.buf = std::mem::take(spare);
        }
    }

    /// After a read pass: when nothing is buffered the memory goes back, into the loop's
    /// `spare` if that is free and this is an initial-size buffer, else to the allocator.
    /// So a session between packets holds no receive buffer at all (one spare per loop
    /// serves every session whose reads end on a frame boundary, the usual case), and a
    /// burst does not pin a grown buffer for the rest of the session.
    pub(crate) fn release_if_empty(&mut self, spare: &mut Vec<u8>) {
        if self.read != self.write || self.buf.is_empty() {
            return;
        }
        let buf = std::mem::take(&mut self.buf);
        if spare.is_empty() && buf.len() == self.initial_capacity {
            *spare = buf;
        }
        self.read = 0;
        self.write = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::check_frame;
    use proptest::prelude::*;

    #[test]
    fn allocates_lazily() {
        let b = RecvBuffer::new(4096, 65535);
        assert_eq!(b.capacity(), 0);
    }

    #[test]
    fn grows_by_doubling_with_what_arrived_but_not_past_max() {
        let mut b = RecvBuffer::new(16, 100);
        assert_eq!(b.free_space().len(), 16);
        b.commit(16);
        assert_eq!(b.free_space().len(), 16, "full: doubled to 32");
        b.commit(16);
        assert_eq!(b.free_space().len(), 32, "doubled to 64");
        b.commit(32);
        assert_eq!(b.free_space().len(), 36, "capped at 100");
        b.commit(36);
        assert!(b.free_space().is_empty());
    }

    #[test]
    fn an_emptied_buffer_goes_to_the_spare_and_back() {
        let mut spare = Vec::new();
        let mut a = RecvBuffer::new(16, 64);
        a.free_space()[..4].copy_from_slice(&[4, 0, 1, 0]);
        a.commit(4);
        a.release_if_empty(&mut spare);
        assert_eq!(a.capacity(), 16, "unread bytes keep the buffer");
        a.consume(4);
        a.release_if_empty(&mut spare);
        assert_eq!(
            (a.capacity(), spare.len()),
            (0, 16),
            "empty: handed to the spare"
        );
        let mut b = RecvBuffer::new(16, 64);
        b.take_spare(&mut spare);
        assert_eq!(
            (b.capacity(), spare.len()),
            (16, 0),
            "the next reader reuses it"
        );
        b.free_space();
        b.commit(16);
        assert_eq!(b.free_space().len(), 16, "grown to 32");
        b.consume(16);
        b.release_if_empty(&mut spare);
        assert_eq!(
            (b.capacity(), spare.len()),
            (0, 0),
            "a grown buffer is freed, not kept"
        );
    }

    #[test]
    fn compaction_keeps_partial_bytes() {
        let mut b = RecvBuffer::new(8, 8);
        b.free_space()[..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        b.commit(8);
        b.consume(5);
        assert_eq!(b.free_space().len(), 5);
        assert_eq!(b.unread(), &[6, 7, 8]);
    }

    /// Feeds a byte stream in random chunk sizes and checks every frame comes out whole and
    /// in order, as a simple model (split the stream at the size fields) says it should.
    fn frames_from_chunks(stream: &[u8], chunks: &[usize], max: usize) -> Vec<Vec<u8>> {
        let mut b = RecvBuffer::new(4, max);
        let mut spare = Vec::new();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut chunk_iter = chunks.iter().cycle();
        while pos < stream.len() {
            let space = b.free_space();
            let n = (*chunk_iter.next().unwrap())
                .min(space.len())
                .min(stream.len() - pos)
                .max(1);
            space[..n].copy_from_slice(&stream[pos..pos + n]);
            b.commit(n);
            pos += n;
            while let Ok(Some(len)) = check_frame(b.unread(), max) {
                out.push(b.unread()[..len].to_vec());
                b.consume(len);
            }
            b.release_if_empty(&mut spare);
            b.take_spare(&mut spare);
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED), ..ProptestConfig::default() })]

        #[test]
        fn frames_survive_any_chunking(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20),
            chunks in proptest::collection::vec(1usize..700, 1..10),
        ) {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for (i, body) in bodies.iter().enumerate() {
                let mut frame = crate::frame::header(i as u16, body.len()).unwrap().to_vec();
                frame.extend_from_slice(body);
                stream.extend_from_slice(&frame);
                expected.push(frame);
            }
            prop_assert_eq!(frames_from_chunks(&stream, &chunks, 400), expected);
        }
    }
}
