//! The connection core's WebSocket glue: the codec (`crate::transport::websocket`) applied
//! to this connection's receive buffer and send queue. Handshake bytes are parsed from the
//! raw region of the buffer; once upgraded, raw bytes are decoded into game stream in place
//! and control frames answered; at flush the open message is sealed behind one header.

use super::{Connection, Input, Limits, Phase};
use crate::session::DisconnectReason;
use crate::transport::websocket::client::{masked_message, parse_response};
use crate::transport::websocket::decoder::{Control, WsDecoder};
use crate::transport::websocket::frame::{close_frame, pong_frame};
use crate::transport::websocket::handshake::{http_response, parse_request, Handshake};
use crate::transport::websocket::state::{close_code, message_header, Side};
use crate::transport::websocket::WsTransport;
use crate::transport::TransportState;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// A client's limit on one server message: none. The decoder streams payload into the
/// receive buffer without holding a message, so a long one costs time, not memory, and a
/// client trusts the server it chose to connect to.
const CLIENT_MAX_MESSAGE: u64 = u64::MAX >> 1;

/// A new connection's send queue: a client's upgrade request goes first (written once the
/// connect completes).
pub(super) fn with_pending_request(
    mut send: super::SendQueue,
    mut transport: TransportState,
) -> (super::SendQueue, TransportState) {
    if let TransportState::WebSocket(ws) = &mut transport {
        if let Some(request) = ws.pending_request.take() {
            send.push_unit(request);
        }
    }
    (send, transport)
}

impl Connection {
    fn ws(&mut self) -> Option<&mut WsTransport> {
        match &mut self.transport {
            TransportState::WebSocket(ws) => Some(ws),
            TransportState::Tcp => None,
        }
    }

    /// Raw bytes arrived on a WebSocket connection: parse the handshake, or decode frames.
    pub(super) fn ws_received(&mut self, limits: &Limits, now: Instant) -> Input {
        let TransportState::WebSocket(ws) = &mut self.transport else {
            return Input::Frames;
        };
        match self.phase {
            Phase::Handshaking => match &ws.side {
                Side::Server(server) => {
                    match parse_request(self.recv.raw_mut(), &server.config.handshake) {
                        Ok(Handshake::Incomplete) => Input::Frames,
                        decided => Input::Request(decided),
                    }
                }
                Side::Client { accept, .. } => {
                    let limit = ws.max_head_bytes();
                    match parse_response(self.recv.raw_mut(), accept, limit) {
                        Ok(None) => Input::Frames,
                        Ok(Some(consumed)) => {
                            self.recv.skip_raw(consumed);
                            ws.decoder = Some(WsDecoder::for_client(CLIENT_MAX_MESSAGE));
                            Input::Upgraded
                        }
                        Err(e) => Input::Refused(format!("websocket handshake failed: {e}")),
                    }
                }
            },
            Phase::Open => self.decode_pending(limits, now),
            // Closing (a close frame is queued): the peer has nothing more to say to us.
            Phase::Connecting | Phase::Closing(_) => {
                self.recv.clear();
                Input::Frames
            }
        }
    }

    /// Decodes the raw bytes buffered into game stream, answering pings and closes on the
    /// way; stops at a close or a protocol error. Called after each read, and once after
    /// the upgrade for frames that came right behind the handshake.
    pub(crate) fn decode_pending(&mut self, limits: &Limits, now: Instant) -> Input {
        let mut queued = false;
        let mut went_over = false;
        loop {
            let TransportState::WebSocket(ws) = &mut self.transport else {
                return Input::Frames;
            };
            let Some(decoder) = ws.decoder.as_mut() else {
                return Input::Frames;
            };
            let decoded = match decoder.decode(self.recv.raw_mut()) {
                Ok(decoded) => decoded,
                Err(error) => {
                    // Game bytes decoded with the violation are not to be trusted.
                    self.recv.clear();
                    let (code, reason) = (error.close_code(), error.to_string());
                    self.queue_close(close_frame(code, &reason));
                    self.begin_closing(DisconnectReason::WebSocket { code, reason });
                    return Input::Closing;
                }
            };
            self.recv.decoded(decoded.produced, decoded.consumed);
            match decoded.control {
                None if queued => return Input::Queued { went_over },
                None => return Input::Frames,
                Some(Control::Ping(payload)) => {
                    let pong = self.ws_control(pong_frame(&payload));
                    self.seal_message();
                    if self.send.queued_bytes() + pong.len() > limits.hard_send_queue {
                        // A peer that pings and never reads: bounded like any backlog.
                        let queued = self.send.queued_bytes();
                        self.discard_output();
                        return Input::Close(DisconnectReason::SendQueueOverflow {
                            queued,
                            adding: pong.len(),
                            limit: limits.hard_send_queue,
                        });
                    }
                    self.send.push_unit(pong);
                    queued = true;
                    went_over |= self.check_soft_cap(limits, now);
                }
                Some(Control::Close(close)) => {
                    self.queue_close(close.reply());
                    self.begin_closing(DisconnectReason::WebSocketClosed {
                        code: close.code,
                        reason: close.reason().to_owned(),
                    });
                    return Input::Closing;
                }
            }
        }
    }

    /// `frame` (an unmasked control frame) as this side sends it.
    fn ws_control(&mut self, frame: Bytes) -> Bytes {
        match self.ws() {
            Some(ws) => ws.control(frame),
            None => frame,
        }
    }

    /// Seals the open message: its header goes in front (server), or the message becomes
    /// one masked copy (client). Runs before every write.
    pub(super) fn seal_message(&mut self) {
        let TransportState::WebSocket(ws) = &mut self.transport else {
            return;
        };
        let Some(open) = ws.open.take() else {
            return;
        };
        match &mut ws.side {
            Side::Server(_) => self.send.seal(open, message_header(open.bytes)),
            Side::Client { keys, .. } => {
                let key = keys.next_key();
                self.send
                    .seal_into_one(open, |parts| masked_message(parts, open.bytes, key));
            }
        }
    }

    /// Queues a close frame behind everything queued (the message being filled is sealed
    /// first, so the close never lands inside it); nothing is sent after it.
    fn queue_close(&mut self, frame: Bytes) {
        let frame = self.ws_control(frame);
        self.seal_message();
        self.send.push_unit(frame);
        if let Some(ws) = self.ws() {
            ws.close_queued = true;
        }
    }

    /// A graceful close for `reason` (a local disconnect, shutdown): queues the close frame
    /// it calls for, if the session is open and none is queued yet.
    pub(crate) fn queue_close_for(&mut self, reason: &DisconnectReason) {
        let due = self
            .ws()
            .is_some_and(|ws| !ws.close_queued && ws.decoder.is_some());
        if !due || !matches!(self.phase, Phase::Open) {
            return;
        }
        if let Some((code, text)) = close_code(reason) {
            self.queue_close(close_frame(code, &text));
        }
    }

    /// A close frame to write straight to the socket as the connection is dropped without
    /// a flush (a bad game frame, a panic, the idle timeout): only if the peer is not in the
    /// middle of a message and none was queued. Best effort: the connection goes either way.
    pub(crate) fn last_words(&mut self, reason: &DisconnectReason) -> Option<Bytes> {
        let open = matches!(self.phase, Phase::Open | Phase::Closing(_));
        let at_boundary = self.send.at_unit_boundary();
        let ws = self.ws()?;
        if !open || ws.close_queued || ws.mid_message || ws.decoder.is_none() || !at_boundary {
            return None;
        }
        let (code, text) = close_code(reason)?;
        ws.close_queued = true;
        Some(ws.control(close_frame(code, &text)))
    }

    /// The server accepted the upgrade: queues the 101 answer, drops the request head (the
    /// bytes after it are frames) and starts decoding. The session opens now; call
    /// [`decode_pending`](Self::decode_pending) after `on_connected`.
    pub(crate) fn upgrade(&mut self, consumed: usize, response: Bytes, now: Instant) {
        self.recv.skip_raw(consumed);
        self.send.push_unit(response);
        let Some(ws) = self.ws() else {
            return;
        };
        if let Side::Server(server) = &ws.side {
            ws.decoder = Some(WsDecoder::new(server.config.max_message_size));
        }
        self.open(now);
    }

    /// Answers the handshake with `response` (a page, a 404, a refusal) and closes after
    /// it, for `reason`.
    pub(crate) fn answer(&mut self, response: Bytes, reason: DisconnectReason) {
        self.recv.clear();
        self.send.push_unit(response);
        if let Some(ws) = self.ws() {
            ws.close_queued = true;
        }
        self.begin_closing(reason);
    }

    /// The handshake did not complete in time: a server answers 408 and closes.
    pub(crate) fn handshake_timed_out(&mut self, after: Duration) {
        let reason = format!("no complete request head within {after:?}");
        let response = http_response(
            408,
            "Request Timeout",
            "text/plain; charset=utf-8",
            format!("{reason}\n").as_bytes(),
        );
        self.answer(
            response,
            DisconnectReason::Handshake {
                status: 408,
                reason,
            },
        );
    }

    /// Whether this is a client still waiting for the server's 101.
    pub(crate) fn is_client_handshake(&self) -> bool {
        matches!(self.phase, Phase::Handshaking)
            && matches!(&self.transport, TransportState::WebSocket(ws) if ws.is_client())
    }

    /// How long the handshake may take, for a connection that has one.
    pub(crate) fn handshake_timeout(&self) -> Option<Duration> {
        match &self.transport {
            TransportState::WebSocket(ws) => Some(match &ws.side {
                Side::Server(server) => server.config.handshake.timeout,
                Side::Client { .. } => {
                    crate::transport::websocket::config::DEFAULT_HANDSHAKE_TIMEOUT
                }
            }),
            TransportState::Tcp => None,
        }
    }
}
