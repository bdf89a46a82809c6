//! The WebSocket transport's settings: where the socket lives, how much a handshake may
//! cost, how large a message may grow. Every limit is checked by [`WsConfig::validate`]; a
//! value out of range is an error with the reason, never silently clamped.

use std::time::Duration;
use thiserror::Error;

/// Default [`HandshakeConfig::path`]: the one path that upgrades to the game socket.
pub(crate) const DEFAULT_PATH: &str = "/ws";
/// Default [`HandshakeConfig::max_head_bytes`]: a browser's upgrade request is 400 to 800
/// bytes, more with cookies; 8 KiB is what nginx allows a request head by default.
pub(crate) const DEFAULT_MAX_HEAD_BYTES: usize = 8 * 1024;
/// Default [`HandshakeConfig::max_headers`]: browsers send 10 to 20.
pub(crate) const DEFAULT_MAX_HEADERS: usize = 32;
/// Default [`HandshakeConfig::timeout`]: a real client sends its request head in one
/// round trip; a client still silent after this is stalled or hostile.
pub(crate) const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`WsConfig::max_message_size`]: far above any game message, far below what a
/// hostile client could use to keep a session busy forever.
pub(crate) const DEFAULT_MAX_MESSAGE_SIZE: u64 = 1024 * 1024;

/// Accepted range of [`HandshakeConfig::max_head_bytes`]: below 512 a plain browser
/// request does not fit; above 64 KiB a connection that has not even upgraded pins memory.
pub(crate) const MAX_HEAD_BYTES_RANGE: std::ops::RangeInclusive<usize> = 512..=64 * 1024;
/// Accepted range of [`HandshakeConfig::max_headers`]: a browser's upgrade carries at least
/// Host, Connection, Upgrade, Origin, User-Agent and three `Sec-WebSocket-*` headers; the
/// upper bound is the size of the header array on the stack of the parser.
pub(crate) const MAX_HEADERS_RANGE: std::ops::RangeInclusive<usize> = 8..=MAX_HEADERS_CAP;
/// The header array the parser keeps on the stack; no configuration can exceed it.
pub(crate) const MAX_HEADERS_CAP: usize = 128;
/// Longest accepted [`HandshakeConfig::timeout`]: the runtime adds it to `Instant::now()`,
/// and a handshake that needs longer is not a game client.
pub(crate) const MAX_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(600);

/// What the HTTP upgrade accepts. Used by
/// [`parse_request`](super::handshake::parse_request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HandshakeConfig {
    /// The request path (query string excluded) that upgrades to the game socket; every
    /// other path is an ordinary HTTP request the caller may serve (a web page, a 404).
    pub(crate) path: String,
    /// A subprotocol to echo in `Sec-WebSocket-Protocol` when the client offers it. `None`
    /// (the default) never sends the header: browsers only need it when their page asks.
    pub(crate) subprotocol: Option<String>,
    /// Most bytes a request head (request line plus headers, up to the blank line) may
    /// take. A head not complete within this many bytes is answered 431.
    pub(crate) max_head_bytes: usize,
    /// Most headers a request may carry; more is answered 431.
    pub(crate) max_headers: usize,
    /// How long a connection may take to send a complete request head. Enforced by the
    /// runtime, which owns the clock; the parser only sees bytes.
    pub(crate) timeout: Duration,
}

impl Default for HandshakeConfig {
    fn default() -> Self {
        Self {
            path: DEFAULT_PATH.to_owned(),
            subprotocol: None,
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// Everything the WebSocket transport is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WsConfig {
    /// The HTTP upgrade: path, subprotocol and the handshake's limits.
    pub(crate) handshake: HandshakeConfig,
    /// Largest message, in payload bytes over all its fragments. Checked from each frame
    /// header before its payload is read (close code 1009). Payload streams straight into
    /// the game stream, so this bounds how long one message may run, not memory.
    pub(crate) max_message_size: u64,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            handshake: HandshakeConfig::default(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// A [`WsConfig`] value that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum WsConfigError {
    /// The path is not an absolute request path.
    #[error(
        "websocket path {0:?} must start with '/' and hold only visible ASCII, without '?' or '#'"
    )]
    Path(String),
    /// The subprotocol is not an HTTP token, so it could not be sent in a header.
    #[error("websocket subprotocol {0:?} must be a non-empty HTTP token (letters, digits, !#$%&'*+-.^_`|~)")]
    Subprotocol(String),
    /// A numeric limit is outside its accepted range.
    #[error("websocket {name} = {value} is out of range: {allowed}")]
    OutOfRange {
        /// The field.
        name: &'static str,
        /// The rejected value, as written.
        value: String,
        /// The accepted range and why.
        allowed: &'static str,
    },
}

impl WsConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// The first field out of range, as a [`WsConfigError`] naming it.
    pub(crate) fn validate(&self) -> Result<(), WsConfigError> {
        self.handshake.validate()?;
        if self.max_message_size == 0 {
            return Err(WsConfigError::OutOfRange {
                name: "max_message_size",
                value: "0".to_owned(),
                allowed: "at least 1 byte",
            });
        }
        Ok(())
    }
}

impl HandshakeConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// The first field out of range, as a [`WsConfigError`] naming it.
    pub(crate) fn validate(&self) -> Result<(), WsConfigError> {
        let path_ok = self.path.starts_with('/')
            && self
                .path
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
        if !path_ok {
            return Err(WsConfigError::Path(self.path.clone()));
        }
        if let Some(protocol) = &self.subprotocol {
            if protocol.is_empty() || !protocol.bytes().all(is_token_byte) {
                return Err(WsConfigError::Subprotocol(protocol.clone()));
            }
        }
        if !MAX_HEAD_BYTES_RANGE.contains(&self.max_head_bytes) {
            return Err(WsConfigError::OutOfRange {
                name: "max_head_bytes",
                value: self.max_head_bytes.to_string(),
                allowed: "512..=65536: below, a browser's request does not fit; above, an un-upgraded connection pins too much memory",
            });
        }
        if !MAX_HEADERS_RANGE.contains(&self.max_headers) {
            return Err(WsConfigError::OutOfRange {
                name: "max_headers",
                value: self.max_headers.to_string(),
                allowed: "8..=128: browsers send at least 8 headers on an upgrade; 128 is the parser's fixed header array",
            });
        }
        if self.timeout.is_zero() || self.timeout > MAX_HANDSHAKE_TIMEOUT {
            return Err(WsConfigError::OutOfRange {
                name: "handshake_timeout",
                value: format!("{:?}", self.timeout),
                allowed: "more than zero and at most 600 s",
            });
        }
        Ok(())
    }
}

/// An HTTP token character (RFC 9110 `tchar`): what header names, methods and
/// subprotocol names are made of.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let config = WsConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.handshake.path, "/ws");
        assert_eq!(config.handshake.max_head_bytes, 8192);
        assert_eq!(config.handshake.max_headers, 32);
        assert_eq!(config.handshake.timeout, Duration::from_secs(10));
        assert_eq!(config.max_message_size, 1 << 20);
    }

    fn with(edit: impl FnOnce(&mut WsConfig)) -> Result<(), WsConfigError> {
        let mut config = WsConfig::default();
        edit(&mut config);
        config.validate()
    }

    #[test]
    fn bad_paths_are_errors() {
        for path in ["", "ws", "/w s", "/ws?x", "/ws#f", "/ü"] {
            let err = with(|c| c.handshake.path = path.to_owned()).unwrap_err();
            assert_eq!(err, WsConfigError::Path(path.to_owned()));
            assert!(err.to_string().contains("must start with '/'"), "{err}");
        }
        assert_eq!(with(|c| c.handshake.path = "/".to_owned()), Ok(()));
        assert_eq!(with(|c| c.handshake.path = "/game/ws-1".to_owned()), Ok(()));
    }

    #[test]
    fn subprotocol_must_be_a_token() {
        for bad in ["", "a b", "a,b", "é"] {
            let err = with(|c| c.handshake.subprotocol = Some(bad.to_owned())).unwrap_err();
            assert_eq!(err, WsConfigError::Subprotocol(bad.to_owned()));
        }
        assert_eq!(
            with(|c| c.handshake.subprotocol = Some("game.v1".to_owned())),
            Ok(())
        );
    }

    #[test]
    fn limits_out_of_range_are_errors_not_clamps() {
        let name = |r: Result<(), WsConfigError>| match r {
            Err(WsConfigError::OutOfRange { name, .. }) => name,
            other => panic!("expected OutOfRange, got {other:?}"),
        };
        assert_eq!(
            name(with(|c| c.handshake.max_head_bytes = 511)),
            "max_head_bytes"
        );
        assert_eq!(
            name(with(|c| c.handshake.max_head_bytes = 65_537)),
            "max_head_bytes"
        );
        assert_eq!(name(with(|c| c.handshake.max_headers = 7)), "max_headers");
        assert_eq!(name(with(|c| c.handshake.max_headers = 129)), "max_headers");
        assert_eq!(
            name(with(|c| c.handshake.timeout = Duration::ZERO)),
            "handshake_timeout"
        );
        assert_eq!(
            name(with(|c| c.handshake.timeout = Duration::from_secs(601))),
            "handshake_timeout"
        );
        assert_eq!(name(with(|c| c.max_message_size = 0)), "max_message_size");
        let message = with(|c| c.handshake.max_headers = 0)
            .unwrap_err()
            .to_string();
        assert!(message.contains("max_headers = 0"), "{message}");
        assert_eq!(with(|c| c.handshake.max_head_bytes = 512), Ok(()));
        assert_eq!(with(|c| c.handshake.max_headers = 128), Ok(()));
    }
}
