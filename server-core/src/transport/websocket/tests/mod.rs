//! Tests across the codec: a reference client-frame encoder written independently of
//! `frame.rs`, a harness that drives the decoder the way the connection core will (one
//! receive buffer, reads of any size), the model-based property tests and the seeded fuzz.

mod fuzz;
mod model;

use super::config::HandshakeConfig;
use super::decoder::{CloseFrame, Control, WsDecoder, WsError, MAX_UNCONSUMED};
use super::frame::{ControlPayload, FrameError, FrameHeader, OpCode};
use super::handshake::{parse_request, Handshake, HandshakeError};
use proptest::prelude::{Rng as _, RngExt as _};
use proptest::test_runner::{RngAlgorithm, TestRng};

/// A client frame for the reference encoder.
#[derive(Debug, Clone)]
pub(super) struct ClientFrame {
    pub(super) fin: bool,
    /// RSV1..3 as the three bits below FIN.
    pub(super) rsv: u8,
    pub(super) opcode: u8,
    pub(super) mask: Option<[u8; 4]>,
    pub(super) payload: Vec<u8>,
}

impl ClientFrame {
    /// A final, masked frame.
    pub(super) fn new(opcode: u8, payload: &[u8]) -> Self {
        Self {
            fin: true,
            rsv: 0,
            opcode,
            mask: Some([0x37, 0xFA, 0x21, 0x3D]),
            payload: payload.to_vec(),
        }
    }

    pub(super) fn fin(mut self, fin: bool) -> Self {
        self.fin = fin;
        self
    }

    /// Encodes the frame the way RFC 6455 section 5.2 spells it out, byte by byte.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = vec![(u8::from(self.fin) << 7) | (self.rsv << 4) | self.opcode];
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let len = self.payload.len();
        if len < 126 {
            out.push(mask_bit | len as u8);
        } else if len < 65_536 {
            out.push(mask_bit | 126);
            out.push((len >> 8) as u8);
            out.push(len as u8);
        } else {
            out.push(mask_bit | 127);
            for shift in (0..8).rev() {
                out.push(((len as u64) >> (shift * 8)) as u8);
            }
        }
        match self.mask {
            Some(key) => {
                out.extend_from_slice(&key);
                out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            }
            None => out.extend_from_slice(&self.payload),
        }
        out
    }
}

/// Concatenated encodings.
pub(super) fn encode_all(frames: &[ClientFrame]) -> Vec<u8> {
    frames.iter().flat_map(ClientFrame::encode).collect()
}

/// What the decoder made of a byte stream.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Outcome {
    /// The game stream: all payload produced, in order.
    pub(super) stream: Vec<u8>,
    /// Each control frame with the length of the game stream when it was returned.
    pub(super) controls: Vec<(usize, Control)>,
    /// The violation that ended decoding, if any.
    pub(super) error: Option<WsError>,
}

/// Feeds `input` to `decoder` in chunks whose sizes `next_chunk` picks (each at least 1),
/// through one receive buffer laid out as the connection core will lay it out:
/// `[ game stream | raw not decoded ]`. Checks the decoder's contract after every call:
/// `produced <= consumed <= raw.len()`, and a call that returned no control frame left nothing it could have
/// decoded: the unprocessed tail is shorter than `MAX_UNCONSUMED` and calling again at once
/// does nothing.
pub(super) fn feed(
    decoder: &mut WsDecoder,
    input: &[u8],
    mut next_chunk: impl FnMut() -> usize,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut decoded = 0;
    let mut rest = input;
    while !rest.is_empty() {
        let n = next_chunk().clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            let raw_len = buf.len() - decoded;
            let d = match decoder.decode(&mut buf[decoded..]) {
                Ok(d) => d,
                Err(e) => {
                    outcome.error = Some(e);
                    outcome.stream = buf[..decoded].to_vec();
                    return outcome;
                }
            };
            assert!(d.produced <= d.consumed && d.consumed <= raw_len, "{d:?}");
            let tail = raw_len - d.consumed;
            buf.copy_within(decoded + d.consumed.., decoded + d.produced);
            buf.truncate(decoded + d.produced + tail);
            decoded += d.produced;
            match d.control {
                Some(control) => outcome.controls.push((decoded, control)),
                None => {
                    // Only a control frame stops a call early; otherwise what is left is
                    // an incomplete header or control frame.
                    assert!(tail < MAX_UNCONSUMED, "tail of {tail} bytes");
                    let again = decoder.decode(&mut buf[decoded..]);
                    let idle = matches!(again, Ok(ref a) if a.produced == 0 && a.consumed == 0 && a.control.is_none());
                    assert!(idle, "progress left behind: {again:?}");
                    break;
                }
            }
        }
    }
    outcome.stream = buf[..decoded].to_vec();
    outcome
}

/// Feeds the whole input at once.
pub(super) fn feed_all(decoder: &mut WsDecoder, input: &[u8]) -> Outcome {
    feed(decoder, input, || usize::MAX)
}

/// A header parser written the long way round from section 5.2, to check `parse_header`
/// against. `Err(())` where any error is expected.
pub(super) fn reference_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ()> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let op = buf[0] & 0xF;
    let opcode = match op {
        0 => OpCode::Continuation,
        1 => OpCode::Text,
        2 => OpCode::Binary,
        8 => OpCode::Close,
        9 => OpCode::Ping,
        10 => OpCode::Pong,
        _ => return Err(()),
    };
    let fin = buf[0] >= 0x80;
    let len7 = buf[1] % 128;
    if op >= 8 && (!fin || len7 > 125) {
        return Err(());
    }
    let ext = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    if buf.len() < 2 + ext {
        return Ok(None);
    }
    let mut len = u64::from(len7);
    if ext > 0 {
        len = 0;
        for b in &buf[2..2 + ext] {
            len = len * 256 + u64::from(*b);
        }
        if ext == 8 && buf[2] >= 0x80 {
            return Err(());
        }
    }
    let masked = buf[1] >= 0x80;
    let total = 2 + ext + if masked { 4 } else { 0 };
    if buf.len() < total {
        return Ok(None);
    }
    let mask = masked.then(|| [buf[2 + ext], buf[3 + ext], buf[4 + ext], buf[5 + ext]]);
    Ok(Some((
        FrameHeader {
            fin,
            rsv1: buf[0] & 0x40 != 0,
            rsv2: buf[0] & 0x20 != 0,
            rsv3: buf[0] & 0x10 != 0,
            opcode,
            mask,
            payload_len: len,
        },
        total,
    )))
}

/// The decoder's rules applied to a whole input at once, frame after frame, without
/// streaming: what `feed` must agree with. A data frame cut short by the end of the input
/// contributes the payload bytes that are there (the decoder streams partial payloads);
/// a cut control frame or header contributes nothing. Errors are compared by kind only
/// where `FrameError` carries details the model does not compute.
pub(super) fn reference_decode(input: &[u8], max_message_size: u64) -> Outcome {
    let mut out = Outcome::default();
    let mut pos = 0;
    let mut in_message = false;
    let mut message_len = 0u64;
    while pos < input.len() {
        let (header, header_len) = match reference_header(&input[pos..]) {
            Ok(Some(found)) => found,
            Ok(None) => break,
            Err(()) => {
                // The exact FrameError: the real parser's, which the header model already
                // agrees with on error versus not.
                let real = super::frame::parse_header(&input[pos..]).err();
                out.error = Some(WsError::Frame(
                    real.unwrap_or(FrameError::ReservedOpcode(0xFF)),
                ));
                return out;
            }
        };
        let rsv = (input[pos] >> 4) & 0x7;
        if rsv != 0 {
            out.error = Some(WsError::ReservedBits(rsv));
            return out;
        }
        let Some(mask) = header.mask else {
            out.error = Some(WsError::Unmasked);
            return out;
        };
        let start = pos + header_len;
        let len = header.payload_len;
        let error = match header.opcode {
            OpCode::Text => Some(WsError::TextFrame),
            OpCode::Binary if in_message => Some(WsError::MessageNotFinished),
            OpCode::Continuation if !in_message => Some(WsError::UnexpectedContinuation),
            OpCode::Binary | OpCode::Continuation => {
                message_len = if header.opcode == OpCode::Binary {
                    len
                } else {
                    message_len.saturating_add(len)
                };
                in_message = !header.fin;
                (message_len > max_message_size).then_some(WsError::MessageTooLarge {
                    size: message_len,
                    max: max_message_size,
                })
            }
            _ => None,
        };
        if let Some(error) = error {
            out.error = Some(error);
            return out;
        }
        let available = (input.len() - start) as u64;
        let unmask = |bytes: &[u8]| -> Vec<u8> {
            bytes
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect()
        };
        if !header.opcode.is_control() {
            let take = len.min(available) as usize;
            out.stream.extend(unmask(&input[start..start + take]));
            pos = start + take;
            continue;
        }
        if available < len {
            break;
        }
        let payload = unmask(&input[start..start + len as usize]);
        pos = start + len as usize;
        match header.opcode {
            OpCode::Ping => out.controls.push((
                out.stream.len(),
                Control::Ping(ControlPayload::new(&payload).unwrap()),
            )),
            OpCode::Close => {
                let code = match payload.len() {
                    0 => None,
                    1 => {
                        out.error = Some(WsError::CloseTruncated);
                        return out;
                    }
                    _ => Some(u16::from(payload[0]) << 8 | u16::from(payload[1])),
                };
                if let Some(code) = code {
                    let valid = (1000..=1003).contains(&code)
                        || (1007..=1014).contains(&code)
                        || (3000..5000).contains(&code);
                    if !valid {
                        out.error = Some(WsError::InvalidCloseCode(code));
                        return out;
                    }
                    if std::str::from_utf8(&payload[2..]).is_err() {
                        out.error = Some(WsError::CloseReasonNotUtf8);
                        return out;
                    }
                }
                out.controls.push((
                    out.stream.len(),
                    Control::Close(close_frame(code, &payload)),
                ));
                break; // everything after a close is discarded
            }
            _ => {} // pong
        }
    }
    out
}

/// The `CloseFrame` the decoder builds for a received close payload.
pub(super) fn close_frame(code: Option<u16>, payload: &[u8]) -> CloseFrame {
    CloseFrame::for_tests(code, payload.get(2..).unwrap_or_default())
}

/// A seeded generator for the fuzz loops and chunk sizes: proptest's own, so one seed
/// reproduces a run.
pub(super) struct Rng(TestRng);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        Self(TestRng::from_seed(RngAlgorithm::XorShift, &bytes))
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// In `0..n` (`n > 0`).
    pub(super) fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n)
    }

    pub(super) fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut bytes = vec![0; n];
        self.0.fill_bytes(&mut bytes);
        bytes
    }
}

/// Where a request head ends, by the HTTP/1.1 grammar alone: after the first empty line
/// that follows the request line (leading empty lines are skipped, as servers should).
/// `None` if the bytes hold no such line yet.
pub(super) fn reference_head_end(buf: &[u8]) -> Option<usize> {
    let mut start = 0;
    loop {
        if buf[start..].starts_with(b"\r\n") {
            start += 2;
        } else if buf[start..].starts_with(b"\n") {
            start += 1;
        } else {
            break;
        }
    }
    (start..buf.len()).find_map(|i| {
        if buf[i] != b'\n' {
            None
        } else if buf[i + 1..].starts_with(b"\n") {
            Some(i + 2)
        } else if buf[i + 1..].starts_with(b"\r\n") {
            Some(i + 3)
        } else {
            None
        }
    })
}

/// A valid upgrade request as browsers and libraries vary it: header order, name case,
/// token lists, extra headers, a query string. Returns the request and its key.
pub(super) fn valid_upgrade(rng: &mut Rng) -> (String, String) {
    let key_bytes = rng.bytes(16);
    let mut key = [0u8; 24];
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode_slice(&key_bytes, &mut key)
    };
    assert_eq!(encoded, Ok(24));
    let key = String::from_utf8(key.to_vec()).unwrap();
    let mut headers = vec![
        format!("Host: 127.0.0.1:{}", rng.below(65_536)),
        pick(
            rng,
            &[
                "Upgrade: websocket",
                "upgrade: WebSocket",
                "UPGRADE: h2c, websocket",
            ],
        )
        .to_owned(),
        pick(
            rng,
            &[
                "Connection: Upgrade",
                "connection: keep-alive, Upgrade",
                "Connection: upgrade",
            ],
        )
        .to_owned(),
        format!(
            "{}: {key}",
            pick(rng, &["Sec-WebSocket-Key", "sec-websocket-key"])
        ),
        format!(
            "{}: 13",
            pick(rng, &["Sec-WebSocket-Version", "sec-websocket-version"])
        ),
    ];
    for _ in 0..rng.below(6) {
        headers.push(
            pick(
                rng,
                &[
                    "Origin: http://127.0.0.1:7780",
                    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0",
                    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
                    "Accept-Encoding: gzip, deflate, br",
                    "Cache-Control: no-cache",
                    "Sec-WebSocket-Protocol: game, chat",
                    "Content-Length: 0",
                ],
            )
            .to_owned(),
        );
    }
    // Fisher-Yates, so the required headers come in any order.
    for i in (1..headers.len()).rev() {
        headers.swap(i, rng.below(i + 1));
    }
    let target = pick(rng, &["/ws", "/ws?name=kim", "/ws?", "/ws?a=1&b=%20"]);
    let newline = pick(rng, &["\r\n", "\r\n", "\n"]);
    let mut request = format!("GET {target} HTTP/1.1{newline}");
    for header in headers {
        request.push_str(&header);
        request.push_str(newline);
    }
    request.push_str(newline);
    (request, key)
}

pub(super) fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len())]
}

/// A few random edits: byte flips, insertions, deletions, truncation.
pub(super) fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        if bytes.is_empty() {
            bytes.push(rng.next_u64() as u8);
            continue;
        }
        let at = rng.below(bytes.len());
        match rng.below(5) {
            0 => bytes[at] = rng.next_u64() as u8,
            1 => bytes[at] ^= 1 << rng.below(8),
            2 => bytes.insert(
                at,
                pick(rng, &["\r", "\n", ":", " ", ",", "\0", "\u{80}"]).as_bytes()[0],
            ),
            3 => {
                bytes.remove(at);
            }
            _ => bytes.truncate(at),
        }
    }
}

/// Feeds `input` to the request parser as a client sending it in pieces ending at each of
/// `cuts` would, and checks it against the model: once a prefix is decided (upgrade,
/// request, error), every longer prefix gets the same decision; `Incomplete` only while
/// the head has not ended by the grammar and fits the limit; a complete head is never
/// `Incomplete` and `consumed` is where the grammar says it ends.
pub(super) fn check_handshake(input: &[u8], cuts: &[usize], config: &HandshakeConfig) {
    let limit = config.max_head_bytes;
    let mut ends: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    ends.push(input.len());
    ends.sort_unstable();
    let mut decided = None;
    for end in ends {
        let prefix = &input[..end];
        let got = parse_request(prefix, config);
        let head_end = reference_head_end(&prefix[..prefix.len().min(limit)]);
        match &got {
            Ok(Handshake::Incomplete) => {
                assert!(prefix.len() < limit, "Incomplete at {} bytes", prefix.len());
                assert_eq!(head_end, None, "complete head reported Incomplete");
            }
            Ok(Handshake::Upgrade { consumed, .. } | Handshake::Request { consumed, .. }) => {
                assert_eq!(Some(*consumed), head_end);
            }
            Err(HandshakeError::TooLarge { .. }) => {
                assert!(prefix.len() >= limit && head_end.is_none());
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                assert!(matches!(e.status(), 400 | 405 | 426 | 431));
            }
        }
        if let Some(first) = &decided {
            assert_eq!(&got, first, "decision changed with more bytes");
        } else if got != Ok(Handshake::Incomplete) {
            decided = Some(got);
        }
    }
}

/// Feeds `input` to a fresh decoder in chunks drawn from `chunk_seed` and checks it
/// against [`reference_decode`]: the same control frames in the same places, the same
/// error, and the same game stream (up to the call that failed, whose output is dropped).
pub(super) fn check_decoder(input: &[u8], max_message_size: u64, chunk_seed: u64) -> Outcome {
    let expected = reference_decode(input, max_message_size);
    let mut decoder = WsDecoder::new(max_message_size);
    let got = feed(&mut decoder, input, chunker(chunk_seed));
    assert_eq!(got.error, expected.error);
    assert_eq!(got.controls, expected.controls);
    if got.error.is_none() {
        assert_eq!(got.stream, expected.stream);
    } else {
        assert!(expected.stream.starts_with(&got.stream));
    }
    got
}

/// Read sizes a socket might deliver: mostly a few hundred bytes, often tiny.
pub(super) fn chunker(seed: u64) -> impl FnMut() -> usize {
    let mut rng = Rng::new(seed);
    move || match rng.below(4) {
        0 => 1 + rng.below(3),
        1 => 1 + rng.below(20),
        _ => 1 + rng.below(2000),
    }
}
