//! WebSocket (RFC 6455) as a byte codec in front of the connection core, for browser and
//! WebGL clients that cannot open a TCP socket. No I/O, no clock: bytes in, bytes and
//! decisions out, so every rule is unit- and property-tested without sockets.
//!
//! A server connection goes through two phases:
//!
//! ```text
//!   accept ──> Handshaking ── parse_request ──┬─ Incomplete: read more (bounded by
//!                  │                          │  max_head_bytes and the timeout)
//!                  │                          ├─ Request: an ordinary GET/HEAD; the `http`
//!                  │                          │  hook answers (page, 404) and it closes
//!                  │                          ├─ Err: send err.response() (400/405/426/431),
//!                  │                          │  close
//!                  │                          └─ Upgrade: send the 101 response; the bytes
//!                  v                             after `consumed` are already frames
//!               Open ── WsDecoder::decode ────┬─ game-stream bytes, in place
//!                                             ├─ Ping: queue pong_frame
//!                                             ├─ Close: queue reply, flush, close socket
//!                                             └─ Err: queue close_frame(err.close_code(),
//!                                                reason), flush, close socket
//! ```
//!
//! A client connection ([`client`]) sends the upgrade request, checks the 101 and its
//! accept key, then decodes the server's unmasked frames and masks its own.
//!
//! In the open phase, the receive buffer is shared with the game framer. The decoder turns
//! the raw bytes behind the game stream into more game stream, in place:
//!
//! ```text
//!  recv buffer: [ game stream, decoded | raw from the socket, not decoded | free ]
//!                read ............ decoded ............................ write
//!
//!  decode(&mut buf[decoded..write]) -> Decoded { produced, consumed, control }
//!    buf[decoded .. decoded+produced]  game stream: decoded += produced
//!    buf[decoded+consumed .. write]    unprocessed tail (< MAX_UNCONSUMED bytes):
//!                                      moved down to buf[decoded+produced..]
//! ```
//!
//! Outgoing, the server sends whole binary frames: [`frame::encode_binary_header`] goes in
//! front of the game frames queued in one flush, written with `writev` behind the shared
//! `Bytes`, so a broadcast is encoded once and only the few header bytes differ.
//!
//! `httparse` parses the request head, RustCrypto's `sha1` with `base64` make the accept
//! key, `getrandom` seeds a client's masking keys; frame headers, masking and the decoder
//! are ours, because they are the hot path and must work in place on the connection's
//! buffer without owning it.

pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod decoder;
pub(crate) mod frame;
pub(crate) mod handshake;
pub(crate) mod options;
pub(crate) mod state;

#[cfg(test)]
mod tests;

pub(crate) use decoder::MAX_UNCONSUMED;
pub use handshake::{HttpMethod, HttpRequest};
pub use options::{HttpResponse, WsOptions, WsUrl, WsUrlError};
pub(crate) use state::{WsServer, WsTransport};
