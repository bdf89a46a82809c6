//! RFC 6455 frames (section 5.2): the header parsed from a byte slice and written into a
//! fixed array, payload (un)masking, and the few frames the server sends whole (close,
//! pong). No I/O and no allocation on the parse and mask paths.
//!
//! ```text
//!  0               1               2               3
//!  0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |          (16 or 64)           |
//! |N|V|V|V|       |S|             |  (if payload len == 126 or    |
//! | |1|2|3|       |K|             |   127: 2 or 8 more bytes)     |
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |  Masking key (4 bytes), present iff MASK: clients always,     |
//! |  servers never                                                |
//! +---------------------------------------------------------------+
//! |  Payload: payload_len bytes, XORed with the key byte i % 4    |
//! +---------------------------------------------------------------+
//! ```

use bytes::Bytes;
use thiserror::Error;

/// Largest payload of a control frame (ping, pong, close): it fits the 7-bit length.
pub(crate) const MAX_CONTROL_PAYLOAD: usize = 125;
/// Longest frame header: 2 bytes, 8 of 64-bit length, 4 of masking key.
pub(crate) const MAX_HEADER_LEN: usize = 14;
/// Longest header the server writes: never masked, so 2 + 8.
pub(crate) const MAX_SERVER_HEADER_LEN: usize = 10;
/// Longest close reason: a control payload less the 2-byte code.
pub(crate) const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// What a frame carries (section 5.2, `%x0`..`%xA`); other values are reserved and rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpCode {
    /// The next fragment of the message in progress.
    Continuation,
    /// A UTF-8 text message (this server speaks binary only and closes with 1003).
    Text,
    /// A binary message: game-stream bytes.
    Binary,
    /// The close handshake, with an optional code and reason.
    Close,
    /// A ping; answered with a pong carrying the same payload.
    Ping,
    /// A pong; unsolicited ones are allowed and ignored.
    Pong,
}

impl OpCode {
    /// The 4-bit wire value.
    pub(crate) fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// Close, ping and pong: never fragmented, at most 125 bytes, allowed between the
    /// fragments of a data message.
    pub(crate) fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// Last fragment of its message.
    pub(crate) fin: bool,
    /// Reserved bit 1 (an extension such as permessage-deflate would use it; none is
    /// negotiated, so the decoder rejects it set).
    pub(crate) rsv1: bool,
    /// Reserved bit 2.
    pub(crate) rsv2: bool,
    /// Reserved bit 3.
    pub(crate) rsv3: bool,
    /// What the frame carries.
    pub(crate) opcode: OpCode,
    /// The masking key; every client frame has one (section 5.3).
    pub(crate) mask: Option<[u8; 4]>,
    /// Payload bytes after the header.
    pub(crate) payload_len: u64,
}

/// A frame header that can never become valid, whatever follows. Judged as soon as the
/// offending bytes are there, so a bad frame closes without waiting for more input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub(crate) enum FrameError {
    /// An opcode RFC 6455 reserves (3-7, 0xB-0xF).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A 64-bit length with its most significant bit set (section 5.2 forbids it).
    #[error("64-bit payload length {0:#x} has the most significant bit set")]
    LengthHighBit(u64),
    /// A control frame longer than 125 bytes.
    #[error("{opcode:?} frame of {len} bytes; control frames carry at most 125")]
    ControlTooLong {
        /// Which control frame.
        opcode: OpCode,
        /// The announced payload length (126 or 127 when the 7-bit field says "extended").
        len: u64,
    },
    /// A control frame without FIN.
    #[error("fragmented {0:?} frame; control frames must not be fragmented")]
    ControlFragmented(OpCode),
}

/// Parses the frame header at the start of `buf`.
///
/// Returns `Ok(Some((header, header_len)))` when a whole header is there (the payload
/// starts at `buf[header_len]`), `Ok(None)` when more bytes are needed, and `Err` as soon
/// as the bytes present can never form a valid header.
///
/// # Errors
/// A [`FrameError`]: reserved opcode, control frame fragmented or over 125 bytes, 64-bit
/// length with the high bit set.
pub(crate) fn parse_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, FrameError> {
    let [b0, b1, rest @ ..] = buf else {
        return Ok(None);
    };
    let opcode = OpCode::from_bits(b0 & 0x0F).ok_or(FrameError::ReservedOpcode(b0 & 0x0F))?;
    let fin = b0 & 0x80 != 0;
    let len7 = b1 & 0x7F;
    if opcode.is_control() {
        if !fin {
            return Err(FrameError::ControlFragmented(opcode));
        }
        if usize::from(len7) > MAX_CONTROL_PAYLOAD {
            return Err(FrameError::ControlTooLong {
                opcode,
                len: u64::from(len7),
            });
        }
    }
    let (payload_len, rest) = match len7 {
        126 => match rest {
            [a, b, rest @ ..] => (u64::from(u16::from_be_bytes([*a, *b])), rest),
            _ => return Ok(None),
        },
        127 => match rest.split_first_chunk::<8>() {
            Some((len, rest)) => {
                let len = u64::from_be_bytes(*len);
                if len >> 63 != 0 {
                    return Err(FrameError::LengthHighBit(len));
                }
                (len, rest)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), rest),
    };
    let mask = if b1 & 0x80 != 0 {
        match rest.first_chunk::<4>() {
            Some(key) => Some(*key),
            None => return Ok(None),
        }
    } else {
        None
    };
    let header_len = buf.len() - rest.len() + if mask.is_some() { 4 } else { 0 };
    let header = FrameHeader {
        fin,
        rsv1: b0 & 0x40 != 0,
        rsv2: b0 & 0x20 != 0,
        rsv3: b0 & 0x10 != 0,
        opcode,
        mask,
        payload_len,
    };
    Ok(Some((header, header_len)))
}

/// Writes an unmasked server frame header (no reserved bits) into `out` and returns its
/// length: 2, 4 or 10 bytes, the shortest encoding of `payload_len` as section 5.2 asks.
pub(crate) fn write_header(
    fin: bool,
    opcode: OpCode,
    payload_len: u64,
    out: &mut [u8; MAX_SERVER_HEADER_LEN],
) -> usize {
    out[0] = if fin { 0x80 } else { 0 } | opcode.bits();
    if payload_len <= 125 {
        out[1] = payload_len as u8;
        2
    } else if let Ok(len) = u16::try_from(payload_len) {
        out[1] = 126;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&payload_len.to_be_bytes());
        10
    }
}

/// One server frame header in a small array: what goes in front of the game bytes of one
/// flush (see [`encode_binary_header`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerHeader {
    bytes: [u8; MAX_SERVER_HEADER_LEN],
    len: u8,
}

impl ServerHeader {
    /// The header's wire bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The header of one final, unmasked binary frame of `payload_len` bytes. The connection
/// core writes it, then the shared game-frame `Bytes` of one flush behind it in the same
/// `writev`, so a broadcast is still encoded once for all recipients.
pub(crate) fn encode_binary_header(payload_len: usize) -> ServerHeader {
    let mut bytes = [0; MAX_SERVER_HEADER_LEN];
    let len = write_header(true, OpCode::Binary, payload_len as u64, &mut bytes);
    ServerHeader {
        bytes,
        len: len as u8,
    }
}

/// XORs `bytes` with the masking key, `offset` being the position of `bytes[0]` within the
/// frame's payload (so a payload unmasked in pieces stays in phase). Masking and unmasking
/// are the same operation.
///
/// Eight bytes per step through a `u64`: the bytes of one flush are unmasked in one pass
/// and the compiler vectorises the loop; no `unsafe`, no alignment assumption.
pub(crate) fn apply_mask(bytes: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = mask;
    key.rotate_left(offset % 4);
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = bytes.chunks_exact_mut(8);
    for chunk in &mut chunks {
        if let Ok(word) = <&mut [u8; 8]>::try_from(chunk) {
            *word = (u64::from_ne_bytes(*word) ^ wide).to_ne_bytes();
        }
    }
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// Status codes a peer may send in a close frame (section 7.4 plus IANA's 1012-1014):
/// 1000-1003, 1007-1014, and 3000-4999 for libraries and applications. 1004-1006 and 1015
/// are reserved and must never be on the wire.
pub(crate) fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A whole close frame from the server: the 2-byte `code`, then `reason` cut to the 123
/// bytes that fit, on a character boundary so it stays valid UTF-8.
pub(crate) fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    let mut frame = Vec::with_capacity(4 + end);
    frame.extend_from_slice(&[0x80 | OpCode::Close.bits(), (2 + end) as u8]);
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(reason);
    Bytes::from(frame)
}

/// An empty close frame: the reply to a close that carried no code (a reply must not
/// invent one, and 1005 "no status" must never be sent).
pub(crate) fn empty_close_frame() -> Bytes {
    Bytes::from_static(&[0x88, 0x00])
}

/// A control payload (ping data, close reason) kept inline: at most 125 bytes, so the
/// decoder hands it over without allocating.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct ControlPayload {
    bytes: [u8; MAX_CONTROL_PAYLOAD],
    len: u8,
}

impl ControlPayload {
    /// No bytes.
    pub(crate) const EMPTY: Self = Self {
        bytes: [0; MAX_CONTROL_PAYLOAD],
        len: 0,
    };

    /// `None` if `bytes` is longer than 125.
    pub(crate) fn new(bytes: &[u8]) -> Option<Self> {
        let mut payload = Self {
            bytes: [0; MAX_CONTROL_PAYLOAD],
            len: u8::try_from(bytes.len()).ok()?,
        };
        payload.bytes.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(payload)
    }

    /// The payload bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for ControlPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ControlPayload({:02x?})", self.as_bytes())
    }
}

/// The pong answering a ping: the same payload (section 5.5.3), unmasked.
pub(crate) fn pong_frame(ping: &ControlPayload) -> Bytes {
    let payload = ping.as_bytes();
    let mut frame = Vec::with_capacity(2 + payload.len());
    frame.extend_from_slice(&[0x80 | OpCode::Pong.bits(), payload.len() as u8]);
    frame.extend_from_slice(payload);
    Bytes::from(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::websocket::tests::reference_header;
    use proptest::prelude::*;

    fn header(bytes: &[u8]) -> (FrameHeader, usize) {
        parse_header(bytes).unwrap().unwrap()
    }

    #[test]
    fn rfc_examples_single_frame_unmasked_and_masked() {
        // Section 5.7: unmasked "Hello", then masked "Hello".
        let (h, len) = header(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(len, 2);
        assert!(h.fin && h.mask.is_none());
        assert_eq!((h.opcode, h.payload_len), (OpCode::Text, 5));

        let mut frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, len) = header(&frame);
        assert_eq!(len, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        apply_mask(&mut frame[6..], h.mask.unwrap(), 0);
        assert_eq!(&frame[6..], b"Hello");
    }

    #[test]
    fn rfc_examples_16_and_64_bit_lengths() {
        // Section 5.7: 256 bytes and 64 KiB binary, unmasked.
        let (h, len) = header(&[0x82, 0x7E, 0x01, 0x00]);
        assert_eq!((h.opcode, h.payload_len, len), (OpCode::Binary, 256, 4));
        let (h, len) = header(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!((h.payload_len, len), (65_536, 10));
        let (h, len) = header(&[0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4]);
        assert_eq!(
            (h.payload_len, len, h.mask),
            (65_536, 14, Some([1, 2, 3, 4]))
        );
    }

    #[test]
    fn every_prefix_of_a_header_is_incomplete() {
        let full = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for n in 0..full.len() {
            assert_eq!(parse_header(&full[..n]), Ok(None), "prefix {n}");
        }
    }

    #[test]
    fn reserved_bits_are_reported_not_judged() {
        let (h, _) = header(&[0xF2, 0x80, 1, 2, 3, 4]);
        assert!(h.rsv1 && h.rsv2 && h.rsv3);
    }

    #[test]
    fn reserved_opcodes_are_errors_at_once() {
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(
                parse_header(&[0x80 | op, 0x80]),
                Err(FrameError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn control_frames_must_be_short_and_final() {
        assert_eq!(
            parse_header(&[0x09, 0x80]),
            Err(FrameError::ControlFragmented(OpCode::Ping))
        );
        assert_eq!(
            parse_header(&[0x88, 0xFE]),
            Err(FrameError::ControlTooLong {
                opcode: OpCode::Close,
                len: 126
            })
        );
        assert!(
            parse_header(&[0x8A, 0xFD]).unwrap().is_none(),
            "125 is fine"
        );
    }

    #[test]
    fn length_high_bit_is_an_error() {
        let bytes = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            parse_header(&bytes),
            Err(FrameError::LengthHighBit(1 << 63))
        );
    }

    #[test]
    fn write_header_uses_the_shortest_length() {
        let mut out = [0; 10];
        assert_eq!(write_header(true, OpCode::Binary, 0, &mut out), 2);
        assert_eq!(out[..2], [0x82, 0]);
        assert_eq!(write_header(true, OpCode::Binary, 125, &mut out), 2);
        assert_eq!(write_header(false, OpCode::Binary, 126, &mut out), 4);
        assert_eq!(out[..4], [0x02, 126, 0, 126]);
        assert_eq!(write_header(true, OpCode::Binary, 65_535, &mut out), 4);
        assert_eq!(write_header(true, OpCode::Binary, 65_536, &mut out), 10);
        assert_eq!(out, [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        for len in [0u64, 1, 125, 126, 65_535, 65_536, 1 << 40] {
            let n = write_header(true, OpCode::Binary, len, &mut out);
            let (h, hl) = header(&out[..n]);
            assert_eq!((h.payload_len, hl, h.mask), (len, n, None));
        }
        let h = encode_binary_header(300);
        assert_eq!(h.as_bytes(), [0x82, 126, 1, 44]);
    }

    #[test]
    fn close_frame_truncates_the_reason_on_a_char_boundary() {
        let frame = close_frame(1009, "message too big");
        assert_eq!(&frame[..4], [0x88, 17, 0x03, 0xF1]);
        assert_eq!(&frame[4..], b"message too big");

        // 62 two-byte characters = 124 bytes: only 61 (122 bytes) fit in 123.
        let long = "é".repeat(62);
        let frame = close_frame(1000, &long);
        assert_eq!(frame[1], 124);
        assert_eq!(frame.len(), 2 + 124);
        assert!(std::str::from_utf8(&frame[4..]).is_ok());
        let ascii = "x".repeat(200);
        assert_eq!(close_frame(1000, &ascii).len(), 2 + 125);
        assert_eq!(&empty_close_frame()[..], [0x88, 0]);
    }

    #[test]
    fn pong_echoes_the_ping_payload() {
        let ping = ControlPayload::new(b"abc").unwrap();
        assert_eq!(&pong_frame(&ping)[..], [0x8A, 3, b'a', b'b', b'c']);
        assert!(ControlPayload::new(&[0; 126]).is_none());
        assert_eq!(ControlPayload::new(&[7; 125]).unwrap().as_bytes(), [7; 125]);
    }

    #[test]
    fn close_codes() {
        for ok in [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
            assert!(is_valid_close_code(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
            assert!(!is_valid_close_code(bad), "{bad}");
        }
    }

    /// The model the fast path must agree with: one byte at a time.
    fn mask_bytewise(bytes: &mut [u8], mask: [u8; 4], offset: usize) {
        for (i, b) in bytes.iter_mut().enumerate() {
            *b ^= mask[(offset + i) % 4];
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED_F4A3), ..ProptestConfig::default() })]

        #[test]
        fn apply_mask_agrees_with_bytewise(
            bytes in proptest::collection::vec(any::<u8>(), 0..100),
            mask in any::<[u8; 4]>(),
            offset in 0usize..16,
            split in 0usize..100,
        ) {
            let mut fast = bytes.clone();
            let split = split.min(fast.len());
            // In two pieces, the second in phase: what streaming unmasking does.
            let (a, b) = fast.split_at_mut(split);
            apply_mask(a, mask, offset);
            apply_mask(b, mask, offset + split);
            let mut slow = bytes;
            mask_bytewise(&mut slow, mask, offset);
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn parse_header_agrees_with_model(
            head in proptest::collection::vec(any::<u8>(), 0..16),
            tweak in 0u8..4,
        ) {
            // Steer the length byte towards 126/127 often, where the interesting cases are.
            let mut buf = head;
            if buf.len() >= 2 && tweak > 0 {
                buf[1] = (buf[1] & 0x80) | (124 + tweak);
            }
            let got = parse_header(&buf).map_err(|_| ());
            prop_assert_eq!(got, reference_header(&buf));
        }
    }
}
