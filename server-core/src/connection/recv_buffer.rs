//! A session's receive buffer: one allocation with read, decoded and write cursors.
//!
//! ```text
//!  0          read          decoded          write            capacity
//!  +-----------+---------------+---------------+----------------+
//!  | consumed  | game stream,  | raw bytes a   |  free space    |
//!  |           | not yet read  | transport has |                |
//!  |           | as frames     | not decoded   |                |
//!  +-----------+---------------+---------------+----------------+
//! ```
//!
//! Reads land in the free space. Over TCP the bytes read are the game stream
//! ([`commit`](RecvBuffer::commit) moves `decoded` with `write`, so the middle region is
//! always empty); a transport with framing of its own (WebSocket) commits them as raw
//! bytes ([`commit_raw`](RecvBuffer::commit_raw)) and decodes them in place into game
//! stream ([`decoded`](RecvBuffer::decoded)). Complete frames are handed out from the game
//! stream in place (no copy); [`RecvBuffer::compact`] slides what is left to the front. The
//! buffer is not allocated until the first read, is given back whenever it empties (to a
//! spare the loop keeps for the next session that reads), and grows, by doubling, only up
//! to `max_capacity` (the maximum packet size, plus a transport's undecoded tail): a
//! session between packets pins no memory and a hostile one cannot make it grow without
//! bound.
//!
//! The cursors and limits are `u32` (a buffer never exceeds a few tens of KiB): five of
//! them take the space four `usize`s did, which keeps every TCP session as small as it was
//! before the decoded cursor existed.

#[derive(Debug)]
pub(crate) struct RecvBuffer {
    /// Backing storage; `buf.len()` is the capacity in use.
    buf: Vec<u8>,
    /// Start of the game stream not yet handed out.
    read: u32,
    /// End of the game stream, start of raw bytes not yet decoded (`== write` over TCP).
    decoded: u32,
    /// End of the bytes received, start of free space.
    write: u32,
    /// Size of the first allocation.
    initial_capacity: u32,
    /// Growth stops here: a frame (plus a transport's undecoded tail) never needs more.
    max_capacity: u32,
}

/// `n` as a cursor; the buffer never exceeds `u32::MAX` bytes (its capacity is clamped to
/// that in [`RecvBuffer::new`]).
fn cursor(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl RecvBuffer {
    pub(crate) fn new(initial_capacity: usize, max_capacity: usize) -> Self {
        let max_capacity = cursor(max_capacity.max(1));
        Self {
            buf: Vec::new(),
            read: 0,
            decoded: 0,
            write: 0,
            initial_capacity: cursor(initial_capacity).clamp(1, max_capacity),
            max_capacity,
        }
    }

    /// The game stream received and not yet consumed.
    pub(crate) fn unread(&self) -> &[u8] {
        &self.buf[self.read as usize..self.decoded as usize]
    }

    /// Everything received and not consumed: game stream and raw bytes.
    pub(crate) fn buffered(&self) -> usize {
        (self.write - self.read) as usize
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Marks `n` bytes of game stream as consumed. When nothing is left the cursors rewind
    /// for free.
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= (self.decoded - self.read) as usize);
        self.read = self.read.saturating_add(cursor(n)).min(self.decoded);
        if self.read == self.write {
            self.read = 0;
            self.decoded = 0;
            self.write = 0;
        }
    }

    /// Drops everything buffered (a transport error makes the rest meaningless).
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    pub(crate) fn clear(&mut self) {
        self.read = 0;
        self.decoded = 0;
        self.write = 0;
    }

    /// Free space to read into, after making room: compacts when the buffer is full, then
    /// doubles it (up to `max_capacity`) if it is still full. Growth follows the bytes that
    /// actually arrived, never the size a header promises, so a peer that announces a
    /// 64 KiB frame and then trickles costs only what it sent. Returns an empty slice only
    /// if the buffer is at `max_capacity` and full.
    pub(crate) fn free_space(&mut self) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = vec![0; self.initial_capacity as usize];
        }
        if self.write as usize == self.buf.len() {
            self.compact();
        }
        let max = self.max_capacity as usize;
        if self.write as usize == self.buf.len() && self.buf.len() < max {
            let new_len = (self.buf.len() * 2).min(max);
            self.buf.resize(new_len, 0);
        }
        &mut self.buf[self.write as usize..]
    }

    /// Records that `n` bytes of game stream were written into the slice returned by
    /// [`free_space`](Self::free_space).
    pub(crate) fn commit(&mut self, n: usize) {
        self.commit_raw(n);
        self.decoded = self.write;
    }

    /// Records that `n` raw bytes (to be decoded by a transport) were written into the
    /// slice returned by [`free_space`](Self::free_space).
    pub(crate) fn commit_raw(&mut self, n: usize) {
        debug_assert!(self.write as usize + n <= self.buf.len());
        self.write = cursor((self.write as usize + n).min(self.buf.len()));
    }

    /// The raw bytes not yet decoded, for a transport to decode in place.
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    pub(crate) fn raw_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.decoded as usize..self.write as usize]
    }

    /// A transport decoded the front of [`raw_mut`](Self::raw_mut): its first `produced`
    /// bytes are now game stream, and the bytes from `consumed` on (not yet decodable) move
    /// down behind them. `produced <= consumed <= raw length`.
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    pub(crate) fn decoded(&mut self, produced: usize, consumed: usize) {
        let (decoded, write) = (self.decoded as usize, self.write as usize);
        debug_assert!(produced <= consumed && decoded + consumed <= write);
        let consumed = consumed.min(write - decoded);
        let produced = produced.min(consumed);
        if produced < consumed {
            self.buf
                .copy_within(decoded + consumed..write, decoded + produced);
        }
        self.write = cursor(write - (consumed - produced));
        self.decoded = cursor(decoded + produced);
        if self.read == self.write {
            self.clear();
        }
    }

    /// Skips `n` raw bytes that are not game stream (a handshake the transport has read);
    /// only valid while no game stream is buffered.
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    pub(crate) fn skip_raw(&mut self, n: usize) {
        debug_assert_eq!(self.read, self.decoded);
        self.decoded = cursor((self.decoded as usize + n).min(self.write as usize));
        self.read = self.decoded;
        if self.read == self.write {
            self.clear();
        }
    }

    /// Moves unread bytes to the front so the free space is contiguous and as large as it
    /// can be.
    pub(crate) fn compact(&mut self) {
        if self.read > 0 {
            let (read, write) = (self.read as usize, self.write as usize);
            self.buf.copy_within(read..write, 0);
            self.decoded -= self.read;
            self.write -= self.read;
            self.read = 0;
        }
    }

    /// Before a read: takes the loop's spare buffer instead of allocating a fresh one when
    /// this session gave its own back (see [`release_if_empty`](Self::release_if_empty)).
    pub(crate) fn take_spare(&mut self, spare: &mut Vec<u8>) {
        if self.buf.is_empty() && spare.len() == self.initial_capacity as usize {
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
        if spare.is_empty() && buf.len() == self.initial_capacity as usize {
            *spare = buf;
        }
        self.clear();
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

    #[test]
    fn raw_bytes_decode_in_place_behind_the_game_stream() {
        let mut b = RecvBuffer::new(16, 16);
        b.free_space()[..10].copy_from_slice(b"GGhhPPPPtt");
        b.commit_raw(10);
        assert!(b.unread().is_empty(), "raw bytes are not game stream");
        // A transport decodes "GG" and "PPPP" (dropping a 2-byte header), leaving "tt".
        b.raw_mut().copy_within(4..8, 2);
        b.decoded(6, 8);
        assert_eq!(b.unread(), b"GGPPPP");
        assert_eq!(b.raw_mut(), b"tt");
        assert_eq!(b.buffered(), 8);
        b.consume(6);
        assert_eq!(b.buffered(), 2, "the raw tail keeps the buffer");
        b.free_space();
        assert_eq!(b.raw_mut(), b"tt", "compaction keeps the raw tail");
        b.skip_raw(2);
        assert_eq!(b.buffered(), 0);
        let mut spare = Vec::new();
        b.release_if_empty(&mut spare);
        assert_eq!(spare.len(), 16);
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
