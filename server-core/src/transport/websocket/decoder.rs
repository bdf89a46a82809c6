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
        /// The frame's masking key.
        mask: [u8; 4],
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
    state: State,
    /// A fragmented binary message is open: its last frame had FIN clear.
    in_message: bool,
    /// Payload bytes of the open message announced so far, for the size limit.
    message_len: u64,
}

impl WsDecoder {
    /// A decoder for a freshly upgraded connection.
    pub(crate) fn new(max_message_size: u64) -> Self {
        Self {
            max_message_size,
            state: State::Header,
            in_message: false,
            message_len: 0,
        }
    }

    /// Whether a close frame was received (later input is discarded).
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
                    apply_mask(&mut raw[produced..produced + n], mask, (done % 4) as usize);
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
                    apply_mask(payload, mask, 0);
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
    fn check(&mut self, header: &FrameHeader) -> Result<[u8; 4], WsError> {
        let rsv = u8::from(header.rsv1) << 2 | u8::from(header.rsv2) << 1 | u8::from(header.rsv3);
        if rsv != 0 {
            return Err(WsError::ReservedBits(rsv));
        }
        let mask = header.mask.ok_or(WsError::Unmasked)?;
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
