//! PacketSession framing: `[u16 size][u16 id][body]`, little-endian, `size` counting the
//! 4-byte header. Pure functions over bytes, no I/O, so they can be tested without sockets.
//!
//! ```text
//!  0       2       4                      size
//!  +-------+-------+----------------------+
//!  | size  |  id   | body (size - 4 bytes) |
//!  +-------+-------+----------------------+
//! ```

use thiserror::Error;

/// Bytes of the frame header: `u16` size plus `u16` packet id.
pub const HEADER_SIZE: usize = 4;

/// The largest frame the `u16` size field can describe.
pub const MAX_FRAME_SIZE: usize = u16::MAX as usize;

/// A frame header that can never become a valid frame, however many bytes follow.
///
/// Only these close a session; a frame that is merely incomplete is not an error
/// ([`check_frame`] returns `Ok(None)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The size field is smaller than the header itself (the course's client loops forever
    /// on `size == 0`; we close the session instead).
    #[error("frame size {size} is smaller than the {HEADER_SIZE}-byte header")]
    TooSmall {
        /// The size field as received.
        size: u16,
    },
    /// The size field exceeds the configured maximum packet size.
    #[error("frame size {size} exceeds the maximum packet size {max}")]
    TooLarge {
        /// The size field as received.
        size: u16,
        /// The configured limit.
        max: usize,
    },
}

/// Looks at the start of `buf` and says whether a whole frame is there.
///
/// Returns `Ok(Some(len))` when the first `len` bytes are one complete frame, `Ok(None)` when
/// more bytes are needed (fewer than 4 bytes, or a header promising more than is buffered),
/// and `Err` when the header is invalid. A header is judged as soon as its two size bytes
/// arrive, so a bad size closes the session without waiting for a body that will never come.
///
/// # Errors
/// [`FrameError::TooSmall`] if the size field is below [`HEADER_SIZE`];
/// [`FrameError::TooLarge`] if it is above `max_frame_size`.
///
/// # Examples
/// ```
/// use server_core::frame::{check_frame, FrameError};
///
/// let frame = [6, 0, 1, 0, 0xAB, 0xCD];
/// assert_eq!(check_frame(&frame, 1024), Ok(Some(6)));
/// assert_eq!(check_frame(&frame[..5], 1024), Ok(None));
/// assert_eq!(check_frame(&[0, 0], 1024), Err(FrameError::TooSmall { size: 0 }));
/// ```
pub fn check_frame(buf: &[u8], max_frame_size: usize) -> Result<Option<usize>, FrameError> {
    let Some(size_bytes) = buf.first_chunk::<2>() else {
        return Ok(None);
    };
    let size = u16::from_le_bytes(*size_bytes);
    let len = usize::from(size);
    if len < HEADER_SIZE {
        return Err(FrameError::TooSmall { size });
    }
    if len > max_frame_size {
        return Err(FrameError::TooLarge {
            size,
            max: max_frame_size,
        });
    }
    Ok((buf.len() >= len).then_some(len))
}

/// The packet id of a whole frame (bytes 2..4), or `None` if `frame` is shorter than a header.
///
/// # Examples
/// ```
/// assert_eq!(server_core::frame::packet_id(&[4, 0, 7, 0]), Some(7));
/// assert_eq!(server_core::frame::packet_id(&[4, 0]), None);
/// ```
#[must_use]
pub fn packet_id(frame: &[u8]) -> Option<u16> {
    let id = frame.get(2..HEADER_SIZE)?;
    Some(u16::from_le_bytes([id[0], id[1]]))
}

/// Writes a header for a frame of `body_len` bytes with packet id `id`.
///
/// Returns `None` if the frame would not fit the `u16` size field.
///
/// # Examples
/// ```
/// assert_eq!(server_core::frame::header(7, 6), Some([10, 0, 7, 0]));
/// assert_eq!(server_core::frame::header(7, 70_000), None);
/// ```
#[must_use]
pub fn header(id: u16, body_len: usize) -> Option<[u8; HEADER_SIZE]> {
    let size = u16::try_from(body_len.checked_add(HEADER_SIZE)?).ok()?;
    let [s0, s1] = size.to_le_bytes();
    let [i0, i1] = id.to_le_bytes();
    Some([s0, s1, i0, i1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_below_the_header_are_rejected_at_once() {
        for size in 0u16..4 {
            let bytes = size.to_le_bytes();
            assert_eq!(check_frame(&bytes, 100), Err(FrameError::TooSmall { size }));
        }
    }

    #[test]
    fn too_large_is_rejected_before_the_body_arrives() {
        assert_eq!(
            check_frame(&[0x60, 0xEA], 1000),
            Err(FrameError::TooLarge {
                size: 60_000,
                max: 1000
            })
        );
    }

    #[test]
    fn header_only_frame_is_complete() {
        assert_eq!(check_frame(&[4, 0, 9, 0, 1, 2], 100), Ok(Some(4)));
    }

    #[test]
    fn one_byte_is_incomplete() {
        assert_eq!(check_frame(&[4], 100), Ok(None));
        assert_eq!(check_frame(&[], 100), Ok(None));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED), ..ProptestConfig::default() })]

        /// The model: a frame is complete iff size is valid and buf holds `size` bytes.
        #[test]
        fn agrees_with_model(buf in proptest::collection::vec(any::<u8>(), 0..64), max in 4usize..80) {
            let got = check_frame(&buf, max);
            let model = if buf.len() < 2 {
                Ok(None)
            } else {
                let size = usize::from(buf[0]) | usize::from(buf[1]) << 8;
                if !(4..=max).contains(&size) { Err(()) }
                else if buf.len() >= size { Ok(Some(size)) } else { Ok(None) }
            };
            prop_assert_eq!(got.map_err(|_| ()), model);
        }
    }
}
