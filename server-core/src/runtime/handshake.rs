//! A WebSocket connection's upgrade on its loop. A server connection starts without a
//! handler: once its request head is complete it is upgraded (the listener's factory runs,
//! then `on_connected`), answered by the port's `http` hook (a page, a 404), or refused with
//! the HTTP status the codec chose. Either way no hook runs for a connection that never
//! upgraded. A client connection upgrades when the server's 101 checks out, or fails its
//! connect. The handshake timeout bounds both.

use super::event_loop::EventLoop;
use crate::guard;
use crate::session::{DisconnectReason, Hook, SessionId};
use crate::transport::websocket::handshake::{Handshake, HandshakeError, HttpRequest};
use crate::transport::websocket::HttpResponse;
use bytes::Bytes;
use log::error;
use std::io;
use std::sync::atomic::Ordering;

impl EventLoop {
    /// A server handshake reached a decision; returns whether the session may read on.
    pub(super) fn handshake_request(
        &mut self,
        key: usize,
        decided: Result<Handshake, HandshakeError>,
    ) -> bool {
        match decided {
            Ok(Handshake::Upgrade {
                consumed, response, ..
            }) => self.upgrade(key, consumed, response),
            Ok(Handshake::Request { request, .. }) => {
                self.serve_http(key, &request);
                false
            }
            Ok(Handshake::Incomplete) => true,
            Err(error) => {
                let reason = DisconnectReason::Handshake {
                    status: error.status(),
                    reason: error.to_string(),
                };
                self.answer(key, error.response(), reason);
                false
            }
        }
    }

    /// Makes the handler with the listener's factory, sends the 101, runs `on_connected`,
    /// then decodes whatever frames came right behind the request.
    fn upgrade(&mut self, key: usize, consumed: usize, response: Bytes) -> bool {
        let Some(entry) = self.sessions.get_mut(key) else {
            return false;
        };
        let Some(listener) = entry.listener.clone() else {
            return false;
        };
        match guard::catch(|| (listener.factory)()) {
            Ok(handler) => {
                entry.handler = Some(handler);
                entry.conn.upgrade(consumed, response, self.now);
            }
            Err(message) => {
                let peer = entry.session.peer_addr();
                self.count_hook_panic();
                error!(
                    "listener {}: {} panicked ({message}); refusing the upgrade of {peer}",
                    listener.local_addr,
                    Hook::Factory
                );
                let response = HttpResponse::internal_error();
                let reason = DisconnectReason::Panicked {
                    hook: Hook::Factory,
                    message,
                };
                self.answer(key, encode_plain(&response), reason);
                return false;
            }
        }
        self.opened(key);
        let Some(entry) = self.sessions.get_mut(key) else {
            return false;
        };
        let input = entry.conn.decode_pending(&entry.limits, self.now);
        self.on_input(key, input)
    }

    /// Answers a plain HTTP request with the port's `http` hook (404 without one), through
    /// the guard: a panic, or a response that cannot be sent, is logged and answered 500.
    fn serve_http(&mut self, key: usize, request: &HttpRequest) {
        let Some(entry) = self.sessions.get(key) else {
            return;
        };
        let peer = entry.session.peer_addr();
        let hook = entry
            .listener
            .as_ref()
            .and_then(|l| l.ws.as_ref())
            .and_then(|ws| ws.http.clone());
        let response = match hook {
            None => HttpResponse::not_found(),
            Some(hook) => match guard::catch(|| hook(request)) {
                Ok(response) => response,
                Err(message) => {
                    self.count_hook_panic();
                    error!(
                        "{} for {} from {peer} panicked: {message}",
                        Hook::HttpRequest,
                        request.path()
                    );
                    HttpResponse::internal_error()
                }
            },
        };
        let response = match response.defect() {
            None => response,
            Some(defect) => {
                error!(
                    "{} for {} returned a response that cannot be sent ({defect}); answering 500",
                    Hook::HttpRequest,
                    request.path()
                );
                HttpResponse::internal_error()
            }
        };
        let reason = DisconnectReason::HttpServed {
            status: response.status(),
            path: request.path().to_owned(),
        };
        self.answer(key, response.encode(request), reason);
    }

    /// Queues the handshake's answer and closes after it.
    fn answer(&mut self, key: usize, response: Bytes, reason: DisconnectReason) {
        if let Some(entry) = self.sessions.get_mut(key) {
            entry.conn.answer(response, reason);
            self.closing_by_transport(key);
        }
    }

    /// A client's handshake was accepted: the session opens, then the frames that came
    /// with the 101 are decoded.
    pub(super) fn upgraded(&mut self, key: usize) -> bool {
        self.opened(key);
        let Some(entry) = self.sessions.get_mut(key) else {
            return false;
        };
        let input = entry.conn.decode_pending(&entry.limits, self.now);
        self.on_input(key, input)
    }

    /// The handshake timer fired: a server answers 408 to a connection still without a
    /// complete request head; a client's connect fails.
    pub(super) fn handshake_timed_out(&mut self, key: usize, id: SessionId) {
        let Some(entry) = self.sessions.get_mut(key) else {
            return;
        };
        let handshaking = matches!(entry.conn.phase(), crate::connection::Phase::Handshaking);
        if entry.session.id() != id || !handshaking {
            return;
        }
        if entry.conn.is_client_handshake() {
            let error = io::Error::new(io::ErrorKind::TimedOut, "websocket handshake timed out");
            self.fail_connect(key, error);
            return;
        }
        let after = entry.conn.handshake_timeout().unwrap_or_default();
        entry.conn.handshake_timed_out(after);
        self.closing_by_transport(key);
    }

    fn count_hook_panic(&self) {
        self.shared
            .stats
            .hook_panics
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// A response for a request we did not parse as a GET (the upgrade itself): with a body.
fn encode_plain(response: &HttpResponse) -> Bytes {
    crate::transport::websocket::handshake::http_response(
        response.status(),
        crate::transport::websocket::handshake::reason_phrase(response.status()),
        response.content_type(),
        response.body(),
    )
}
