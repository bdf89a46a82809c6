//! The client side (RFC 6455 sections 4.1 and 5.3), for load testers and bots
//! ([`Service::connect_ws`](crate::Service::connect_ws)): the upgrade request, the check of
//! the server's answer, and the masking of everything a client sends.
//!
//! Masking keys come from a per-connection xorshift generator seeded from the operating
//! system (`getrandom`), a fresh key per frame. Masking exists so a hostile script in a
//! browser cannot choose the bytes a proxy sees (section 10.3); keys a peer cannot predict
//! without the seed are what that needs, and a native client runs no such script anyway.

use super::frame::{apply_mask, write_header, OpCode, MAX_SERVER_HEADER_LEN};
use super::handshake::{derive_accept_key, Quoted};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Most headers a server's 101 answer may carry (they send 3 to 6).
const MAX_RESPONSE_HEADERS: usize = 32;

/// The request to send and the accept key the answer must carry.
#[derive(Debug, Clone)]
pub(crate) struct ClientHandshake {
    /// `GET path HTTP/1.1` with the upgrade headers and a fresh key.
    pub(crate) request: Bytes,
    /// `Sec-WebSocket-Accept` the server must answer with.
    pub(crate) accept: [u8; 28],
}

impl ClientHandshake {
    /// A request for `path` (with its query, if any) on `host` (the `Host` header, e.g.
    /// `127.0.0.1:7780`), with a key from `key_bytes`.
    pub(crate) fn new(host: &str, path: &str, key_bytes: [u8; 16]) -> Self {
        let mut key = [0u8; 24];
        // 16 bytes always encode to exactly 24 characters.
        let _ = BASE64.encode_slice(key_bytes, &mut key);
        let mut request = Vec::with_capacity(160 + host.len() + path.len());
        request.extend_from_slice(b"GET ");
        request.extend_from_slice(path.as_bytes());
        request.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        request.extend_from_slice(host.as_bytes());
        request.extend_from_slice(
            b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ",
        );
        request.extend_from_slice(&key);
        request.extend_from_slice(b"\r\n\r\n");
        Self {
            request: Bytes::from(request),
            accept: derive_accept_key(&key),
        }
    }
}

/// Why a server's answer to the upgrade is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum ResponseError {
    /// Not an HTTP/1.1 response.
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    /// No complete response head within the limit.
    #[error("HTTP response head larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// A status other than 101.
    #[error("the server answered {status} {reason} instead of 101 Switching Protocols")]
    Refused {
        /// The status.
        status: u16,
        /// Its reason phrase, quoted.
        reason: Quoted,
    },
    /// A required header is absent or wrong.
    #[error("bad {0} header in the server's 101 answer")]
    BadHeader(&'static str),
}

/// Parses the server's answer at the start of `buf`: `Ok(None)` while incomplete,
/// `Ok(Some(consumed))` for a valid 101 (the bytes after `consumed` are frames).
///
/// # Errors
/// A [`ResponseError`]: the connection fails.
pub(crate) fn parse_response(
    buf: &[u8],
    accept: &[u8; 28],
    max_head_bytes: usize,
) -> Result<Option<usize>, ResponseError> {
    let window = &buf[..buf.len().min(max_head_bytes)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let consumed = match response.parse(window) {
        Ok(httparse::Status::Complete(consumed)) => consumed,
        Ok(httparse::Status::Partial) if buf.len() >= max_head_bytes => {
            return Err(ResponseError::TooLarge {
                limit: max_head_bytes,
            })
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ResponseError::Malformed("too many headers"))
        }
        Err(_) => return Err(ResponseError::Malformed("invalid response head")),
    };
    let status = response.code.unwrap_or_default();
    if status != 101 {
        return Err(ResponseError::Refused {
            status,
            reason: Quoted::new(response.reason.unwrap_or_default().as_bytes()),
        });
    }
    let has = |name: &str, token: &str| {
        response.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case(name)
                && h.value
                    .split(|&b| b == b',')
                    .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    if !has("Upgrade", "websocket") {
        return Err(ResponseError::BadHeader("Upgrade"));
    }
    if !has("Connection", "upgrade") {
        return Err(ResponseError::BadHeader("Connection"));
    }
    let accepted = response
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Accept"))
        .map(|h| h.value.trim_ascii())
        .collect::<Vec<_>>();
    if accepted != [&accept[..]] {
        return Err(ResponseError::BadHeader("Sec-WebSocket-Accept"));
    }
    Ok(Some(consumed))
}

/// Fresh masking keys for one connection: xorshift64* over a seed from the OS.
#[derive(Debug, Clone)]
pub(crate) struct MaskKeys(u64);

impl MaskKeys {
    /// A generator seeded from the OS, and the 16 bytes of a handshake key from the same
    /// source.
    ///
    /// # Errors
    /// The OS refused randomness (getrandom's error, as text).
    pub(crate) fn seeded() -> Result<(Self, [u8; 16]), String> {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness from the OS: {e}"))?;
        let (seed, key) = bytes.split_at(8);
        let mut seed_bytes = [0u8; 8];
        seed_bytes.copy_from_slice(seed);
        let mut key_bytes = [0u8; 16];
        key_bytes.copy_from_slice(key);
        // xorshift must not start at zero.
        Ok((Self(u64::from_le_bytes(seed_bytes) | 1), key_bytes))
    }

    /// The next key.
    pub(crate) fn next_key(&mut self) -> [u8; 4] {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let [a, b, c, d, ..] = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        [a, b, c, d]
    }
}

/// One final, masked binary frame holding `parts` (`len` bytes in all): the client's copy
/// of what one flush sends, since masking cannot be done in the shared `Bytes`.
pub(crate) fn masked_message(
    parts: &mut dyn Iterator<Item = &[u8]>,
    len: usize,
    key: [u8; 4],
) -> Bytes {
    let mut header = [0u8; MAX_SERVER_HEADER_LEN];
    let header_len = write_header(true, OpCode::Binary, len as u64, &mut header);
    header[1] |= 0x80;
    let mut frame = BytesMut::with_capacity(header_len + 4 + len);
    frame.put_slice(&header[..header_len]);
    frame.put_slice(&key);
    let start = frame.len();
    for part in parts {
        frame.put_slice(part);
    }
    apply_mask(&mut frame[start..], key, 0);
    frame.freeze()
}

/// The masked form of a whole unmasked control frame (as [`pong_frame`] and
/// [`close_frame`] make them for a server): a client must mask those too.
///
/// [`pong_frame`]: super::frame::pong_frame
/// [`close_frame`]: super::frame::close_frame
pub(crate) fn masked_control(frame: &[u8], key: [u8; 4]) -> Bytes {
    let [b0, b1, payload @ ..] = frame else {
        return Bytes::copy_from_slice(frame);
    };
    let mut out = Vec::with_capacity(6 + payload.len());
    out.extend_from_slice(&[*b0, b1 | 0x80]);
    out.extend_from_slice(&key);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key, 0);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::websocket::config::HandshakeConfig;
    use crate::transport::websocket::decoder::WsDecoder;
    use crate::transport::websocket::handshake::{parse_request, Handshake};

    #[test]
    fn our_request_upgrades_on_our_server_and_its_answer_is_accepted() {
        let client = ClientHandshake::new("127.0.0.1:7780", "/ws?name=kim", [7; 16]);
        let Ok(Handshake::Upgrade {
            consumed,
            response,
            query,
            ..
        }) = parse_request(&client.request, &HandshakeConfig::default())
        else {
            panic!("{:?}", std::str::from_utf8(&client.request));
        };
        assert_eq!(consumed, client.request.len());
        assert_eq!(query.as_deref(), Some("name=kim"));
        let mut answer = response.to_vec();
        answer.extend_from_slice(&[0x82, 0]);
        assert_eq!(
            parse_response(&answer, &client.accept, 4096),
            Ok(Some(response.len()))
        );
        for n in 0..response.len() {
            assert_eq!(parse_response(&answer[..n], &client.accept, 4096), Ok(None));
        }
    }

    #[test]
    fn wrong_answers_are_refused() {
        let client = ClientHandshake::new("h", "/ws", [1; 16]);
        let refused = parse_response(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            &client.accept,
            4096,
        )
        .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the server answered 404 \"Not Found\" instead of 101 Switching Protocols"
        );
        let wrong_key = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(
            parse_response(wrong_key, &client.accept, 4096),
            Err(ResponseError::BadHeader("Sec-WebSocket-Accept"))
        );
        assert_eq!(
            parse_response(&[b'H'; 100], &client.accept, 100),
            Err(ResponseError::Malformed("invalid response head"))
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 101 OK\r\nX: y", &client.accept, 20),
            Err(ResponseError::TooLarge { limit: 20 })
        );
    }

    #[test]
    fn masked_messages_decode_on_the_server() {
        let mut keys = MaskKeys(0x1234_5678);
        let parts = [&b"hello "[..], &b"world"[..], &[0u8; 300][..]];
        let frame = masked_message(&mut parts.iter().copied(), 311, keys.next_key());
        let mut raw = frame.to_vec();
        let d = WsDecoder::new(1 << 20).decode(&mut raw).unwrap();
        assert_eq!((d.produced, d.consumed), (311, frame.len()));
        assert_eq!(&raw[..11], b"hello world");

        let pong = masked_control(&[0x8A, 2, b'h', b'i'], keys.next_key());
        let mut raw = pong.to_vec();
        let d = WsDecoder::new(1 << 20).decode(&mut raw).unwrap();
        assert_eq!(d.consumed, 8, "a pong is dropped by the decoder");
    }

    #[test]
    fn keys_change_every_frame() {
        let (mut keys, _) = MaskKeys::seeded().unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            seen.insert(keys.next_key());
        }
        assert!(seen.len() > 990);
    }
}
