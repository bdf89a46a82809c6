//! One connection's WebSocket state, owned by the connection core (boxed, so a TCP
//! session does not carry it): which side it is, the decoder once upgraded, the message
//! being filled for the next flush, and how far the close handshake has come.

use super::client::{masked_control, MaskKeys};
use super::config::WsConfig;
use super::decoder::WsDecoder;
use super::frame::{encode_binary_header, MAX_CONTROL_PAYLOAD};
use super::options::HttpHook;
use crate::connection::OpenMessage;
use crate::session::DisconnectReason;
use bytes::Bytes;
use std::borrow::Cow;
use std::sync::Arc;

/// What a `listen_ws` port shares with all its connections.
pub(crate) struct WsServer {
    pub(crate) config: WsConfig,
    /// Answers plain HTTP requests; `None`: 404.
    pub(crate) http: Option<HttpHook>,
}

impl std::fmt::Debug for WsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsServer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Which end of the connection we are.
#[derive(Debug)]
pub(crate) enum Side {
    Server(Arc<WsServer>),
    Client {
        /// The `Sec-WebSocket-Accept` the server's 101 must carry.
        accept: [u8; 28],
        /// A fresh masking key per frame sent.
        keys: MaskKeys,
    },
}

/// The per-connection state.
#[derive(Debug)]
pub(crate) struct WsTransport {
    pub(crate) side: Side,
    /// `None` during the handshake; the frame decoder once upgraded.
    pub(crate) decoder: Option<WsDecoder>,
    /// Packets queued since the last flush, sealed into one message at the next.
    pub(crate) open: Option<OpenMessage>,
    /// A close frame (or the final HTTP answer) is queued or sent: nothing may follow it.
    pub(crate) close_queued: bool,
    /// The last write stopped inside a message: the peer must get the rest of it before
    /// anything else, so a connection dropped now cannot add a close frame.
    pub(crate) mid_message: bool,
    /// The write side is shut down after the last bytes; input is read and discarded until
    /// the peer closes, so closing never resets a connection with unread bytes (which
    /// could destroy the answer before the peer reads it).
    pub(crate) draining: bool,
    /// A client's upgrade request, queued by the connection core when it is made.
    pub(crate) pending_request: Option<Bytes>,
}

/// Longest response head a client accepts.
pub(crate) const CLIENT_MAX_HEAD_BYTES: usize = 8 * 1024;

impl WsTransport {
    pub(crate) fn server(server: Arc<WsServer>) -> Self {
        Self::with_side(Side::Server(server))
    }

    pub(crate) fn client(accept: [u8; 28], keys: MaskKeys) -> Self {
        Self::with_side(Side::Client { accept, keys })
    }

    fn with_side(side: Side) -> Self {
        Self {
            side,
            decoder: None,
            open: None,
            close_queued: false,
            mid_message: false,
            draining: false,
            pending_request: None,
        }
    }

    pub(crate) fn is_client(&self) -> bool {
        matches!(self.side, Side::Client { .. })
    }

    /// The most bytes a handshake head may take on this side.
    pub(crate) fn max_head_bytes(&self) -> usize {
        match &self.side {
            Side::Server(server) => server.config.handshake.max_head_bytes,
            Side::Client { .. } => CLIENT_MAX_HEAD_BYTES,
        }
    }

    /// A whole control frame (pong, close) as this side sends it: a client masks it.
    pub(crate) fn control(&mut self, frame: Bytes) -> Bytes {
        match &mut self.side {
            Side::Server(_) => frame,
            Side::Client { keys, .. } => masked_control(&frame, keys.next_key()),
        }
    }
}

/// The header of a server message of `len` payload bytes. Messages up to 125 bytes (most
/// flushes of a chat) take a 2-byte header from a static table; longer ones a small
/// allocation, still no copy of the payload.
pub(crate) fn message_header(len: usize) -> Bytes {
    static SMALL: [[u8; 2]; MAX_CONTROL_PAYLOAD + 1] = small_headers();
    match SMALL.get(len) {
        Some(header) => Bytes::from_static(header),
        None => Bytes::copy_from_slice(encode_binary_header(len).as_bytes()),
    }
}

const fn small_headers() -> [[u8; 2]; MAX_CONTROL_PAYLOAD + 1] {
    let mut table = [[0x82, 0]; MAX_CONTROL_PAYLOAD + 1];
    let mut len = 0;
    while len <= MAX_CONTROL_PAYLOAD {
        table[len][1] = len as u8;
        len += 1;
    }
    table
}

/// The close code and reason to send when a session ends for `reason` (section 7.4.1:
/// 1000 normal, 1001 going away, 1008 policy violation, 1011 internal error), or `None`
/// when no close frame is due (the peer is gone, or it closed first).
pub(crate) fn close_code(reason: &DisconnectReason) -> Option<(u16, Cow<'static, str>)> {
    use DisconnectReason as R;
    Some(match reason {
        R::Local => (1000, Cow::Borrowed("")),
        R::Shutdown => (1001, Cow::Borrowed("server shutting down")),
        R::IdleTimeout(_) => (1001, Cow::Owned(reason.to_string())),
        // A bad game frame, a packet the game refused, a flood or a peer that cannot keep
        // up: the peer broke the service's rules.
        R::Framing(_)
        | R::Handler(_)
        | R::RateLimited { .. }
        | R::SlowReader { .. }
        | R::SendQueueOverflow { .. } => (1008, Cow::Owned(reason.to_string())),
        // Never a panic message on the wire: it is the server's business.
        R::Panicked { .. } | R::LoopDied => (1011, Cow::Borrowed("internal error")),
        R::WebSocket { code, reason } => (*code, Cow::Owned(reason.clone())),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_small_and_large() {
        assert_eq!(&message_header(0)[..], [0x82, 0]);
        assert_eq!(&message_header(125)[..], [0x82, 125]);
        assert_eq!(&message_header(126)[..], [0x82, 126, 0, 126]);
        assert_eq!(
            &message_header(70_000)[..],
            encode_binary_header(70_000).as_bytes()
        );
    }

    #[test]
    fn close_codes_for_reasons() {
        let code = |r: DisconnectReason| close_code(&r).map(|(c, _)| c);
        assert_eq!(code(DisconnectReason::Local), Some(1000));
        assert_eq!(code(DisconnectReason::Shutdown), Some(1001));
        assert_eq!(
            code(DisconnectReason::RateLimited {
                refused: 1,
                over: std::time::Duration::ZERO
            }),
            Some(1008)
        );
        let panicked = DisconnectReason::Panicked {
            hook: crate::Hook::OnPacket,
            message: "secret".into(),
        };
        assert_eq!(
            close_code(&panicked),
            Some((1011, Cow::Borrowed("internal error")))
        );
        assert_eq!(code(DisconnectReason::PeerClosed), None);
    }
}
