//! The client-to-server direction after the upgrade: frames in, game-stream bytes out, in
//! place in the connection's receive buffer. Binary payload is unmasked and slid down over
//! the frame headers as it arrives (a message need never be buffered whole); control frames
//! stop the call so the caller can answer them in order.
//!
//! ```text
//!  before decode:  [ hdr | payload | hdr | payl ]      raw: bytes from the socket
//!  after decode:   [ payload | payl |.............]    raw[..produced]: game stream
//!                                   ^ consumed         raw[consumed..]: not processed
//! ```

use super::frame::{
    apply_mask, is_valid_close_code, parse_header, ControlPayload, FrameError, FrameHeader, OpCode,
    MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN,
};
use thiserror::Error;

/// Most bytes a decode call can leave unprocessed at the end of `raw`: a control frame one
/// byte short of complete (6-byte masked header, 125 bytes of payload). A data frame header
/// (at most 14 bytes) is always shorter. The caller's buffer needs this much room beyond
/// the game stream it keeps.
pub(crate) const MAX_UNCONSUMED: usize = 6 + MAX_CONTROL_PAYLOAD - 1;

/// Outcome of one [`WsDecoder::decode`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub(crate) struct Decoded {
    /// `raw[..produced]` is now unmasked game-stream payload, in order.
    pub(crate) produced: usize,
    /// `raw[consumed..]` was not processed (an incomplete header or control frame); the
    /// caller moves it down to `raw[produced..]` and appends the next read behind it.
    /// Always `produced <= consumed <= raw.len()`.
    pub(crate) consumed: usize,
    /// A control frame that ended this call; `raw[..produced]` holds the game bytes that
    /// came before it. Call `decode` again for what follows.
    pub(crate) control: Option<Control>,
}

/// A control frame from the client the caller must act on. Pongs are accepted and dropped
/// by the decoder, so they never show up here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Control {
    /// Answer with [`pong_frame`](super::frame::pong_frame) of this payload.
    Ping(ControlPayload),
    /// The client closes: reply with [`CloseFrame::reply`], stop sending data, close the
    /// socket once the reply is flushed. The decoder discards anything after it.
    Close(CloseFrame),
}

/// A received close frame, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseFrame {
    /// The status code; `None` for an empty close frame (reported as 1005 by browsers).
    pub(crate) code: Option<u16>,
    reason: ControlPayload,
}

impl CloseFrame {
    /// The reason text (possibly empty; valid UTF-8, checked by the decoder).
    pub(crate) fn reason(&self) -> &str {
        std::str::from_utf8(self.reason.as_bytes()).unwrap_or_default()
    }

    #[cfg(test)]
    pub(crate) fn for_tests(code: Option<u16>, reason: &[u8]) -> Self {
        Self {
            code,
            reason: ControlPayload::new(reason).unwrap_or(ControlPayload::EMPTY),
        }
    }

    /// The close frame to answer with: the same code, as section 5.5.1 suggests, and no
    /// reason; an empty frame if the client sent no code.
    pub(crate) fn reply(&self) -> bytes::Bytes {
        match self.code {
            Some(code) => super::frame::close_frame(code, ""),
            None => super::frame::empty_close_frame(),
        }
    }
}

/// A protocol violation by the client. The connection is closed with
/// [`close_code`](WsError::close_code) and the [`Display`](std::fmt::Display) text as reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum WsError {
    /// A frame header that can never be valid.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A client frame without a masking key (section 5.1).
    #[error("client frame not masked")]
    Unmasked,
    /// A server frame with a masking key (section 5.1: a client must close then).
    #[error("server frame masked")]
    Masked,
    /// RSV1-3 set with no extension negotiated (section 5.2).
    #[error("reserved bits {0:#05b} set without a negotiated extension")]
    ReservedBits(u8),
    /// A text frame: the game stream is binary.
    #[error("text frames are not accepted: this server speaks binary messages only")]
    TextFrame,
    /// A continuation frame with no fragmented message open.
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A new binary frame while a fragmented message is still open.
    #[error("new message started before the fragmented one finished")]
    MessageNotFinished,
    /// A message longer than the configured maximum, over all its fragments; judged
    /// from the header, before its payload is read.
    #[error("message of at least {size} bytes exceeds the maximum of {max}")]
    MessageTooLarge {
        /// Message bytes announced so far, this frame included.
        size: u64,
        /// The configured `max_message_size`.
        max: u64,
    },
    /// A close frame with a 1-byte payload: a code is two bytes.
    #[error("close frame with a 1-byte payload")]
    CloseTruncated,
    /// A close code that must not be sent (section 7.4).
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A close reason that is not UTF-8 (section 5.5.1).
    #[error("close reason is not valid UTF-8")]
    CloseReasonNotUtf8,
}

impl WsError {
    /// The close code to send for this violation (section 7.4.1): 1003 for a text frame,
    /// 1009 for an oversized message, 1007 for a non-UTF-8 close reason, 1002 for the rest.
    pub(crate) fn close_code(&self) -> u16 {
        match self {
            Self::TextFrame => 1003,
            Self::MessageTooLarge { .. } => 1009,
            Self::CloseReasonNotUtf8 => 1007,
            Self::Frame(_)
            | Self::Unmasked
            | Self::Masked
            | Self::ReservedBits(_)
            | Self::UnexpectedContinuation
            | Self::MessageNotFinished
            | Self::CloseTruncated
            | Self::InvalidCloseCode(_) => 1002,
        }
    }
}

/// Where the decoder is in the frame stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The next byte starts a frame header.
    Header,
    /// Inside the payload of a binary or continuation frame.
    Payload {
        /// Payload bytes still to come.
        remaining: u64,
        /// The frame's masking key (`None` for a server's frames, which are not masked).
        mask: Option<[u8; 4]>,
        /// Payload bytes already unmasked: the key's phase for the next byte.
        done: u64,
    },
    /// A close frame was received: the client must send nothing after it.
    Closed,
}

/// Streaming decoder of client frames for one connection. Holds a few words of state and
/// never allocates.
///
/// ```text
///          +--------+  binary/continuation header   +---------+
///  ------> | Header | ----------------------------> | Payload |  unmask, slide down
///          |        | <---------------------------- |         |  as bytes arrive
///          +--------+      payload complete         +---------+
///            |   ^  ping/pong: whole frame, back to Header (ping returned)
///            |   +----+
///            | close (returned)
///            v
///          +--------+
///          | Closed |  input discarded
///          +--------+
/// ```
#[derive(Debug)]
pub(crate) struct WsDecoder {
    max_message_size: u64,
    /// Frames must carry a masking key: true on the server (client frames), false on a
    /// client (server frames must not).
    masked: bool,
    state: State,
    /// A fragmented binary message is open: its last frame had FIN clear.
    in_message: bool,
    /// Payload bytes of the open message announced so far, for the size limit.
    message_len: u64,
}

impl WsDecoder {
    /// A server's decoder of client frames, for a freshly upgraded connection.
    pub(crate) fn new(max_message_size: u64) -> Self {
        Self {
            max_message_size,
            masked: true,
            state: State::Header,
            in_message: false,
            message_len: 0,
        }
    }

    /// A client's decoder of server frames (unmasked), for a freshly upgraded connection.
    pub(crate) fn for_client(max_message_size: u64) -> Self {
        Self {
            max_message_size,
            masked: false,
            state: State::Header,
            in_message: false,
            message_len: 0,
        }
    }

    /// Whether a close frame was received (later input is discarded).
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Decodes as much of `raw` (the received bytes not yet decoded) as possible, in place.
    ///
    /// Binary payload is unmasked and moved to `raw[..produced]`; partial payloads are
    /// decoded at once. Stops early after a control frame, returning it. Once a close has
    /// been returned, later input is discarded (`consumed == raw.len()`, nothing produced):
    /// the peer must not send after its close, and the connection is closing anyway.
    ///
    /// # Errors
    /// A [`WsError`] on a protocol violation; the connection must then be closed with its
    /// close code, and the decoder not used again. Bytes produced before the violation
    /// in the same call are not reported.
    pub(crate) fn decode(&mut self, raw: &mut [u8]) -> Result<Decoded, WsError> {
        let mut produced = 0;
        let mut pos = 0;
        loop {
            match self.state {
                State::Closed => {
                    return Ok(Decoded {
                        produced,
                        consumed: raw.len(),
                        control: None,
                    })
                }
                State::Payload {
                    remaining,
                    mask,
                    done,
                } => {
                    let available = raw.len() - pos;
                    let n = usize::try_from(remaining).map_or(available, |r| r.min(available));
                    if pos != produced {
                        raw.copy_within(pos..pos + n, produced);
                    }
                    if let Some(mask) = mask {
                        apply_mask(&mut raw[produced..produced + n], mask, (done % 4) as usize);
                    }
                    produced += n;
                    pos += n;
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 {
                        State::Header
                    } else {
                        State::Payload {
                            remaining,
                            mask,
                            done: done + n as u64,
                        }
                    };
                    if remaining > 0 {
                        // Only runs out when raw did.
                        return Ok(Decoded {
                            produced,
                            consumed: pos,
                            control: None,
                        });
                    }
                }
                State::Header => {
                    let Some((header, header_len)) = parse_header(&raw[pos..])? else {
                        return Ok(Decoded {
                            produced,
                            consumed: pos,
                            control: None,
                        });
                    };
                    let mask = self.check(&header)?;
                    if !header.opcode.is_control() {
                        pos += header_len;
                        if header.payload_len > 0 {
                            self.state = State::Payload {
                                remaining: header.payload_len,
                                mask,
                                done: 0,
                            };
                        }
                        continue;
                    }
                    // Control frames are taken whole (at most 131 bytes): wait for all of it.
                    let len = header.payload_len as usize;
                    let Some(payload) = raw.get_mut(pos + header_len..pos + header_len + len)
                    else {
                        return Ok(Decoded {
                            produced,
                            consumed: pos,
                            control: None,
                        });
                    };
                    if let Some(mask) = mask {
                        apply_mask(payload, mask, 0);
                    }
                    let payload = ControlPayload::new(payload).unwrap_or(ControlPayload::EMPTY);
                    pos += header_len + len;
                    let control = match header.opcode {
                        OpCode::Ping => Control::Ping(payload),
                        OpCode::Close => {
                            let close = parse_close(payload)?;
                            self.state = State::Closed;
                            Control::Close(close)
                        }
                        // Pong: unsolicited or late, either way nothing to do.
                        _ => continue,
                    };
                    return Ok(Decoded {
                        produced,
                        consumed: pos,
                        control: Some(control),
                    });
                }
            }
        }
    }

    /// Judges a header against the connection's state and returns its masking key; for data
    /// frames, also opens, continues or finishes the message and checks its size.
    fn check(&mut self, header: &FrameHeader) -> Result<Option<[u8; 4]>, WsError> {
        let rsv = u8::from(header.rsv1) << 2 | u8::from(header.rsv2) << 1 | u8::from(header.rsv3);
        if rsv != 0 {
            return Err(WsError::ReservedBits(rsv));
        }
        let mask = match (header.mask, self.masked) {
            (Some(key), true) => Some(key),
            (None, false) => None,
            (None, true) => return Err(WsError::Unmasked),
            (Some(_), false) => return Err(WsError::Masked),
        };
        match header.opcode {
            OpCode::Text => return Err(WsError::TextFrame),
            OpCode::Binary if self.in_message => return Err(WsError::MessageNotFinished),
            OpCode::Binary => self.message_len = header.payload_len,
            OpCode::Continuation if !self.in_message => {
                return Err(WsError::UnexpectedContinuation)
            }
            OpCode::Continuation => {
                self.message_len = self.message_len.saturating_add(header.payload_len)
            }
            OpCode::Close | OpCode::Ping | OpCode::Pong => return Ok(mask),
        }
        if self.message_len > self.max_message_size {
            return Err(WsError::MessageTooLarge {
                size: self.message_len,
                max: self.max_message_size,
            });
        }
        self.in_message = !header.fin;
        Ok(mask)
    }
}

/// Validates a close payload (section 5.5.1): empty, or a valid code then UTF-8 text.
fn parse_close(payload: ControlPayload) -> Result<CloseFrame, WsError> {
    let bytes = payload.as_bytes();
    let code = match bytes {
        [] => None,
        [_] => return Err(WsError::CloseTruncated),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_close_code(code) {
                return Err(WsError::InvalidCloseCode(code));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(WsError::CloseReasonNotUtf8);
            }
            Some(code)
        }
    };
    let reason = bytes
        .get(2..)
        .and_then(ControlPayload::new)
        .unwrap_or(ControlPayload::EMPTY);
    Ok(CloseFrame { code, reason })
}

// The largest header must fit what the caller may leave unconsumed.
const _: () = assert!(MAX_HEADER_LEN - 1 < MAX_UNCONSUMED);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::websocket::tests::{encode_all, feed, feed_all, ClientFrame, Outcome};

    const BINARY: u8 = 0x2;
    const TEXT: u8 = 0x1;
    const CONTINUATION: u8 = 0x0;
    const CLOSE: u8 = 0x8;
    const PING: u8 = 0x9;
    const PONG: u8 = 0xA;

    fn decoder() -> WsDecoder {
        WsDecoder::new(1 << 20)
    }

    fn ping(payload: &[u8]) -> Control {
        Control::Ping(ControlPayload::new(payload).unwrap())
    }

    fn error_of(frames: &[ClientFrame]) -> WsError {
        let outcome = feed_all(&mut decoder(), &encode_all(frames));
        outcome.error.expect("an error")
    }

    #[test]
    fn rfc_masked_hello_as_binary() {
        // Section 5.7's masked "Hello", with the binary opcode this server speaks.
        let mut raw = [
            0x82, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let d = decoder().decode(&mut raw).unwrap();
        assert_eq!((d.produced, d.consumed, d.control), (5, 11, None));
        assert_eq!(&raw[..5], b"Hello");
    }

    #[test]
    fn rfc_masked_hello_as_text_is_1003() {
        let mut raw = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let err = decoder().decode(&mut raw).unwrap_err();
        assert_eq!(err, WsError::TextFrame);
        assert_eq!(err.close_code(), 1003);
        assert!(err.to_string().contains("binary messages only"), "{err}");
    }

    #[test]
    fn rfc_unmasked_examples_are_1002() {
        // Section 5.7's unmasked "Hello" (text) and unmasked ping: a client must mask.
        for raw in [
            &mut [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f][..],
            &mut [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f][..],
            &mut [0x02, 0x03, 0x48, 0x65, 0x6c][..],
        ] {
            let err = decoder().decode(raw).unwrap_err();
            assert_eq!((err.clone(), err.close_code()), (WsError::Unmasked, 1002));
        }
    }

    #[test]
    fn rfc_fragmented_hello_masked() {
        // Section 5.7's "Hel" + "lo" fragments, masked and binary.
        let frames = [
            ClientFrame::new(BINARY, b"Hel").fin(false),
            ClientFrame::new(CONTINUATION, b"lo"),
        ];
        let outcome = feed_all(&mut decoder(), &encode_all(&frames));
        assert_eq!(outcome.stream, b"Hello");
        assert_eq!(outcome.error, None);
    }

    #[test]
    fn ping_inside_a_fragmented_message_comes_out_in_order() {
        let frames = [
            ClientFrame::new(BINARY, b"ab").fin(false),
            ClientFrame::new(PING, b"p1"),
            ClientFrame::new(CONTINUATION, b"cd").fin(false),
            ClientFrame::new(PONG, b"ignored"),
            ClientFrame::new(PING, b""),
            ClientFrame::new(CONTINUATION, b"ef"),
            ClientFrame::new(BINARY, b"gh"),
        ];
        let expected = Outcome {
            stream: b"abcdefgh".to_vec(),
            controls: vec![(2, ping(b"p1")), (4, ping(b""))],
            error: None,
        };
        let input = encode_all(&frames);
        assert_eq!(feed_all(&mut decoder(), &input), expected);
        assert_eq!(
            feed(&mut decoder(), &input, || 1),
            expected,
            "byte at a time"
        );
        let mut size = 0;
        let chunks = || {
            size = size % 7 + 1;
            size
        };
        assert_eq!(feed(&mut decoder(), &input, chunks), expected);
    }

    #[test]
    fn sixteen_and_sixty_four_bit_lengths() {
        let medium: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let large: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
        let frames = [
            ClientFrame::new(BINARY, &medium),
            ClientFrame::new(BINARY, &large),
        ];
        let input = encode_all(&frames);
        assert_eq!(input[1], 0x80 | 126);
        assert_eq!(input[4 + 4 + 300 + 1], 0x80 | 127);
        let expected: Vec<u8> = [medium, large].concat();
        assert_eq!(feed_all(&mut decoder(), &input).stream, expected);
        let mut size = 0;
        let outcome = feed(&mut decoder(), &input, || {
            size = size % 1500 + 1;
            size
        });
        assert_eq!(outcome.stream, expected);
    }

    #[test]
    fn partial_payload_is_produced_at_once_and_stays_in_phase() {
        let frame = ClientFrame::new(BINARY, b"0123456789").encode();
        let mut dec = decoder();
        let mut raw = frame[..9].to_vec(); // 6-byte header + "012"
        let d = dec.decode(&mut raw).unwrap();
        assert_eq!((d.produced, d.consumed), (3, 9));
        assert_eq!(&raw[..3], b"012");
        let mut raw = frame[9..].to_vec();
        let d = dec.decode(&mut raw).unwrap();
        assert_eq!((d.produced, d.consumed), (7, 7));
        assert_eq!(&raw[..7], b"3456789");
    }

    #[test]
    fn incomplete_header_and_control_frame_are_left_unconsumed() {
        let data = ClientFrame::new(BINARY, b"xy").encode();
        let ping_frame = ClientFrame::new(PING, &[5; 125]).encode();
        let mut raw = [&data[..], &ping_frame[..100]].concat();
        let d = decoder().decode(&mut raw).unwrap();
        assert_eq!((d.produced, d.consumed, d.control), (2, data.len(), None));
        let mut raw = [&data[..], &data[..5]].concat();
        let d = decoder().decode(&mut raw).unwrap();
        assert_eq!((d.produced, d.consumed), (2, data.len()));
    }

    #[test]
    fn empty_frames_are_fine() {
        let frames = [
            ClientFrame::new(BINARY, b"").fin(false),
            ClientFrame::new(CONTINUATION, b""),
            ClientFrame::new(BINARY, b""),
        ];
        let outcome = feed_all(&mut decoder(), &encode_all(&frames));
        assert_eq!(outcome, Outcome::default());
    }

    #[test]
    fn reserved_bits_are_1002() {
        for rsv in 1..8 {
            let mut frame = ClientFrame::new(BINARY, b"x");
            frame.rsv = rsv;
            let err = error_of(&[frame]);
            assert_eq!(
                (err.clone(), err.close_code()),
                (WsError::ReservedBits(rsv), 1002)
            );
        }
        assert_eq!(
            WsError::ReservedBits(4).to_string(),
            "reserved bits 0b100 set without a negotiated extension"
        );
    }

    #[test]
    fn unknown_opcodes_are_1002() {
        for op in [3, 7, 0xB, 0xF] {
            let err = error_of(&[ClientFrame::new(op, b"")]);
            assert_eq!(err, WsError::Frame(FrameError::ReservedOpcode(op)));
            assert_eq!(err.close_code(), 1002);
            assert_eq!(err.to_string(), format!("reserved opcode {op:#x}"));
        }
    }

    #[test]
    fn bad_control_frames_are_1002() {
        let err = error_of(&[ClientFrame::new(PING, &[0; 126])]);
        assert_eq!(err.close_code(), 1002);
        assert!(matches!(
            err,
            WsError::Frame(FrameError::ControlTooLong { .. })
        ));
        let err = error_of(&[ClientFrame::new(PING, b"x").fin(false)]);
        assert_eq!(
            err,
            WsError::Frame(FrameError::ControlFragmented(OpCode::Ping))
        );
        assert_eq!(err.close_code(), 1002);
    }

    #[test]
    fn fragment_sequencing_is_1002() {
        let err = error_of(&[ClientFrame::new(CONTINUATION, b"x")]);
        assert_eq!(
            (err.clone(), err.close_code()),
            (WsError::UnexpectedContinuation, 1002)
        );
        let err = error_of(&[
            ClientFrame::new(BINARY, b"a").fin(false),
            ClientFrame::new(BINARY, b"b"),
        ]);
        assert_eq!(
            (err.clone(), err.close_code()),
            (WsError::MessageNotFinished, 1002)
        );
        // A finished message leaves nothing to continue.
        let err = error_of(&[
            ClientFrame::new(BINARY, b"a"),
            ClientFrame::new(CONTINUATION, b"b"),
        ]);
        assert_eq!(err, WsError::UnexpectedContinuation);
        // A text frame inside a binary message is still a text frame.
        let err = error_of(&[
            ClientFrame::new(BINARY, b"a").fin(false),
            ClientFrame::new(TEXT, b"b"),
        ]);
        assert_eq!(err, WsError::TextFrame);
    }

    #[test]
    fn message_size_counts_all_fragments_and_is_judged_from_the_header() {
        let mut dec = WsDecoder::new(10);
        let first = ClientFrame::new(BINARY, b"123456").fin(false).encode();
        let second = ClientFrame::new(CONTINUATION, b"78901").encode();
        let mut raw = [&first[..], &second[..6]].concat(); // second: header only
        let err = dec.decode(&mut raw).unwrap_err();
        assert_eq!(err, WsError::MessageTooLarge { size: 11, max: 10 });
        assert_eq!(err.close_code(), 1009);
        assert_eq!(
            err.to_string(),
            "message of at least 11 bytes exceeds the maximum of 10"
        );
        // Exactly the maximum is fine, and a new message starts from zero.
        let frames = [
            ClientFrame::new(BINARY, b"12345").fin(false),
            ClientFrame::new(CONTINUATION, b"67890"),
            ClientFrame::new(BINARY, b"1234567890"),
        ];
        let outcome = feed_all(&mut WsDecoder::new(10), &encode_all(&frames));
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.stream.len(), 20);
        // A huge announced length is refused before any payload arrives.
        let mut raw = [
            0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4,
        ];
        assert!(matches!(
            decoder().decode(&mut raw),
            Err(WsError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn sixty_four_bit_length_with_high_bit_is_1002() {
        let mut raw = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4];
        let err = decoder().decode(&mut raw).unwrap_err();
        assert_eq!(
            err,
            WsError::Frame(FrameError::LengthHighBit((1 << 63) | 5))
        );
        assert_eq!(err.close_code(), 1002);
    }

    #[test]
    fn close_frames_are_validated_and_end_the_input() {
        // Empty close: no code, and an empty reply.
        let outcome = feed_all(&mut decoder(), &ClientFrame::new(CLOSE, b"").encode());
        let [(0, Control::Close(close))] = &outcome.controls[..] else {
            panic!("{outcome:?}")
        };
        assert_eq!((close.code, close.reason()), (None, ""));
        assert_eq!(&close.reply()[..], [0x88, 0]);

        // Code and reason, then data the decoder discards.
        let mut payload = 1001u16.to_be_bytes().to_vec();
        payload.extend_from_slice("bye 👋".as_bytes());
        let frames = [
            ClientFrame::new(BINARY, b"ab"),
            ClientFrame::new(CLOSE, &payload),
            ClientFrame::new(BINARY, b"late"),
            ClientFrame::new(TEXT, b"also ignored"),
        ];
        let mut dec = decoder();
        let outcome = feed_all(&mut dec, &encode_all(&frames));
        assert_eq!(outcome.stream, b"ab");
        assert_eq!(outcome.error, None);
        let [(2, Control::Close(close))] = &outcome.controls[..] else {
            panic!("{outcome:?}")
        };
        assert_eq!((close.code, close.reason()), (Some(1001), "bye 👋"));
        assert_eq!(&close.reply()[..], [0x88, 2, 0x03, 0xE9]);
        assert!(dec.is_closed());
    }

    #[test]
    fn bad_close_frames() {
        let err = error_of(&[ClientFrame::new(CLOSE, &[3])]);
        assert_eq!(
            (err.clone(), err.close_code()),
            (WsError::CloseTruncated, 1002)
        );
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 2000, 5000] {
            let err = error_of(&[ClientFrame::new(CLOSE, &code.to_be_bytes())]);
            assert_eq!(err, WsError::InvalidCloseCode(code));
            assert_eq!(err.close_code(), 1002);
        }
        let err = error_of(&[ClientFrame::new(CLOSE, &[0x03, 0xE8, 0xC3, 0x28])]);
        assert_eq!(
            (err.clone(), err.close_code()),
            (WsError::CloseReasonNotUtf8, 1007)
        );
    }

    #[test]
    fn pongs_are_ignored() {
        let frames = [
            ClientFrame::new(PONG, b"whatever"),
            ClientFrame::new(BINARY, b"x"),
        ];
        let outcome = feed_all(&mut decoder(), &encode_all(&frames));
        assert_eq!((outcome.stream, outcome.controls), (b"x".to_vec(), vec![]));
    }

    #[test]
    fn a_client_takes_unmasked_frames_and_refuses_masked_ones() {
        let mut raw = [0x82, 3, b'a', b'b', b'c', 0x89, 1, b'p'];
        let mut dec = WsDecoder::for_client(1 << 20);
        let d = dec.decode(&mut raw).unwrap();
        assert_eq!((d.produced, &raw[..3]), (3, &b"abc"[..]));
        assert_eq!(d.control, Some(ping(b"p")));
        let masked = ClientFrame::new(BINARY, b"x").encode();
        let err = WsDecoder::for_client(1 << 20)
            .decode(&mut masked.clone())
            .unwrap_err();
        assert_eq!((err.clone(), err.close_code()), (WsError::Masked, 1002));
    }

    #[test]
    fn unmasked_data_and_close_are_1002() {
        let mut frame = ClientFrame::new(BINARY, b"abc");
        frame.mask = None;
        assert_eq!(error_of(&[frame]), WsError::Unmasked);
        let mut frame = ClientFrame::new(CLOSE, b"");
        frame.mask = None;
        assert_eq!(error_of(&[frame]), WsError::Unmasked);
    }
}
