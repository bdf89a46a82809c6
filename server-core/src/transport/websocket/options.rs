//! The public face of the WebSocket transport: the settings of a
//! [`listen_ws`](crate::Service::listen_ws) port ([`WsOptions`]), the answer to a plain HTTP
//! request on it ([`HttpResponse`]), and where [`connect_ws`](crate::Service::connect_ws)
//! goes ([`WsUrl`]).

use super::config::WsConfig;
use super::handshake::{reason_phrase, HttpRequest};
use crate::config::ConfigError;
use crate::listener::ListenOptions;
use bytes::Bytes;
use std::borrow::Cow;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// The hook answering plain HTTP requests on a WebSocket port.
pub(crate) type HttpHook = Arc<dyn Fn(&HttpRequest) -> HttpResponse + Send + Sync>;

/// Settings of a WebSocket port, for [`Service::listen_ws`](crate::Service::listen_ws):
/// the path that upgrades, the codec's limits, the listener limits shared with TCP ports,
/// and a hook answering plain HTTP requests on every other path (a web page, a 404).
///
/// Every limit is checked by `listen_ws`; a value out of range is an error naming the
/// setting, never silently clamped.
///
/// # Examples
/// ```
/// use server_core::{HttpResponse, ListenOptions, WsOptions};
/// use std::time::Duration;
///
/// const PAGE: &str = "<!doctype html><title>game</title>";
///
/// let options = WsOptions::new()
///     .path("/ws")
///     .max_message_size(64 * 1024)
///     .handshake_timeout(Duration::from_secs(5))
///     .listen_options(ListenOptions::new().max_sessions(2_000))
///     .http(|request| match request.path() {
///         "/" => HttpResponse::ok("text/html; charset=utf-8", PAGE),
///         _ => HttpResponse::not_found(),
///     });
/// # let _ = options;
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct WsOptions {
    pub(crate) config: WsConfig,
    /// `None`: the service's defaults, as [`Service::listen`](crate::Service::listen).
    pub(crate) listen: Option<ListenOptions>,
    /// `None`: every other path is answered 404.
    pub(crate) http: Option<HttpHook>,
}

impl WsOptions {
    /// The defaults: path `/ws`, messages up to 1 MiB, request heads up to 8 KiB and 32
    /// headers, a 10 s handshake timeout, the service's listener limits, 404 elsewhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// The request path (without query) that upgrades to the game socket (default `/ws`).
    /// A query string is allowed on the request and ignored.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.config.handshake.path = path.into();
        self
    }

    /// Largest message from a client, over all its fragments, in payload bytes (default
    /// 1 MiB; at least 1). Judged from each frame header before its payload is read; a
    /// larger message closes with code 1009. A message may hold several game frames, and
    /// a game frame may span messages; payload streams into the receive buffer, so this
    /// bounds how long one message may run, not memory.
    pub fn max_message_size(mut self, bytes: u64) -> Self {
        self.config.max_message_size = bytes;
        self
    }

    /// Most bytes a request head may take (default 8 KiB; 512 to 65,536). A longer head
    /// is answered 431.
    pub fn max_head_bytes(mut self, bytes: usize) -> Self {
        self.config.handshake.max_head_bytes = bytes;
        self
    }

    /// Most headers a request may carry (default 32; 8 to 128). More is answered 431.
    pub fn max_headers(mut self, headers: usize) -> Self {
        self.config.handshake.max_headers = headers;
        self
    }

    /// How long a connection may take to send a complete request head (default 10 s;
    /// more than zero, at most 600 s). A slower one is answered 408 and closed.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake.timeout = timeout;
        self
    }

    /// Session limit, rate limit and in-flight limit of this port (default: the service's,
    /// as for [`Service::listen`](crate::Service::listen)). They apply to WebSocket
    /// sessions exactly as to TCP ones: the rate limit counts game frames.
    pub fn listen_options(mut self, options: ListenOptions) -> Self {
        self.listen = Some(options);
        self
    }

    /// Answers plain HTTP `GET` and `HEAD` requests for every path other than the
    /// WebSocket path (default: 404 for all). The hook runs on an I/O thread, through the
    /// same guard as every hook: a panic is logged and answered 500. Keep it quick; it
    /// serves small, ready-made responses (an embedded page, a script). The connection is
    /// closed after the response (`Connection: close`).
    pub fn http<F>(mut self, hook: F) -> Self
    where
        F: Fn(&HttpRequest) -> HttpResponse + Send + Sync + 'static,
    {
        self.http = Some(Arc::new(hook));
        self
    }

    /// Checks every setting, naming the bad one as its setter is named.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.config.validate().map_err(|e| {
            use super::config::WsConfigError;
            let (setting, reason) = match &e {
                WsConfigError::Path(_) => (
                    "path",
                    "must start with '/' and hold only visible ASCII, without '?' or '#'",
                ),
                WsConfigError::Subprotocol(_) => ("subprotocol", "must be an HTTP token"),
                WsConfigError::OutOfRange { name, allowed, .. } => (*name, *allowed),
            };
            let value = match e {
                WsConfigError::Path(v) | WsConfigError::Subprotocol(v) => format!("{v:?}"),
                WsConfigError::OutOfRange { value, .. } => value,
            };
            ConfigError {
                setting,
                value,
                reason,
            }
        })
    }
}

impl fmt::Debug for WsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsOptions")
            .field("config", &self.config)
            .field("listen", &self.listen)
            .field("http", &self.http.as_ref().map(|_| "hook"))
            .finish()
    }
}

/// The answer of a [`WsOptions::http`] hook: a status, a content type and a body. The
/// response also carries `Content-Length` and `Connection: close`; to a `HEAD` request the
/// body is left out.
///
/// # Examples
/// ```
/// use server_core::HttpResponse;
///
/// let page = HttpResponse::ok("text/html; charset=utf-8", "<!doctype html><p>hi</p>");
/// assert_eq!(page.status(), 200);
/// assert_eq!(HttpResponse::not_found().status(), 404);
/// let teapot = HttpResponse::new(418, "text/plain", bytes::Bytes::from_static(b"short and stout"));
/// assert_eq!(teapot.body().len(), 15);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    status: u16,
    content_type: Cow<'static, str>,
    body: Bytes,
}

impl HttpResponse {
    /// A response with any status from 200 to 599. A status outside that range, or a
    /// content type holding anything but visible ASCII and spaces, is replaced by a 500
    /// when the response is sent (and logged), so a hook cannot break the HTTP framing.
    pub fn new(
        status: u16,
        content_type: impl Into<Cow<'static, str>>,
        body: impl Into<Bytes>,
    ) -> Self {
        Self {
            status,
            content_type: content_type.into(),
            body: body.into(),
        }
    }

    /// `200 OK` with this body.
    pub fn ok(content_type: impl Into<Cow<'static, str>>, body: impl Into<Bytes>) -> Self {
        Self::new(200, content_type, body)
    }

    /// `404 Not Found`, as plain text.
    #[must_use]
    pub fn not_found() -> Self {
        Self::new(404, "text/plain; charset=utf-8", "not found\n")
    }

    /// `500 Internal Server Error`, as plain text.
    #[must_use]
    pub(crate) fn internal_error() -> Self {
        Self::new(500, "text/plain; charset=utf-8", "internal server error\n")
    }

    /// The status code.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The `Content-Type`.
    #[must_use]
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Why this response cannot be sent as it is, if it cannot.
    pub(crate) fn defect(&self) -> Option<&'static str> {
        if !(200..=599).contains(&self.status) {
            return Some("status outside 200..=599");
        }
        let visible = |b: u8| b == b' ' || b.is_ascii_graphic();
        if self.content_type.is_empty() || !self.content_type.bytes().all(visible) {
            return Some("content type empty or not visible ASCII");
        }
        None
    }

    /// The whole response to `request`, ready to write.
    pub(crate) fn encode(&self, request: &HttpRequest) -> Bytes {
        request.response(
            self.status,
            reason_phrase(self.status),
            &self.content_type,
            &self.body,
        )
    }
}

/// Where [`Service::connect_ws`](crate::Service::connect_ws) connects: an address, the
/// `Host` header to send and the request path (query included).
///
/// Parsed from `ws://HOST:PORT/PATH` (the port defaults to 80, the path to `/`); a host
/// name is resolved with the system resolver when parsing, and the first address is used.
/// `wss://` is not spoken: put TLS in front with a proxy (see docs/websocket.md).
///
/// # Examples
/// ```
/// use server_core::WsUrl;
///
/// let url: WsUrl = "ws://127.0.0.1:7780/ws".parse()?;
/// assert_eq!(url.addr(), "127.0.0.1:7780".parse()?);
/// assert_eq!((url.host(), url.path()), ("127.0.0.1:7780", "/ws"));
/// assert_eq!(url.to_string(), "ws://127.0.0.1:7780/ws");
///
/// assert!("wss://127.0.0.1/ws".parse::<WsUrl>().is_err(), "TLS belongs to a proxy");
/// let direct = WsUrl::new("127.0.0.1:7780".parse()?, "/ws?name=kim")?;
/// assert_eq!(direct.path(), "/ws?name=kim");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    addr: SocketAddr,
    host: String,
    path: String,
}

/// Why a text is not a usable `ws://` URL.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WsUrlError {
    /// Not `ws://...` (`wss://` included: TLS belongs to a proxy in front).
    #[error("{0:?} is not a ws:// URL (wss:// is not spoken here: put TLS in a proxy in front)")]
    Scheme(String),
    /// The host or port part is unusable.
    #[error("bad host or port in {0:?}")]
    HostPort(String),
    /// The path holds characters a request line cannot carry.
    #[error("bad path {0:?}: visible ASCII starting with '/', without '#'")]
    Path(String),
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host and port.
        host: String,
        /// The resolver's error.
        reason: String,
    },
}

impl WsUrl {
    /// A URL for `addr` itself (sent as the `Host` header) and `path` (query included).
    ///
    /// # Errors
    /// [`WsUrlError::Path`] if `path` does not start with `/` or holds anything but visible
    /// ASCII (or a `#`).
    pub fn new(addr: SocketAddr, path: &str) -> Result<Self, WsUrlError> {
        check_path(path)?;
        Ok(Self {
            addr,
            host: addr.to_string(),
            path: path.to_owned(),
        })
    }

    /// The address connected to.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `Host` header sent.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The request path, query included.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }
}

fn check_path(path: &str) -> Result<(), WsUrlError> {
    let ok = path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
    if ok {
        Ok(())
    } else {
        Err(WsUrlError::Path(path.to_owned()))
    }
}

impl FromStr for WsUrl {
    type Err = WsUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("ws://")
            .ok_or_else(|| WsUrlError::Scheme(s.to_owned()))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, "/"),
        };
        check_path(path)?;
        let bad_host = || WsUrlError::HostPort(s.to_owned());
        if authority.is_empty() || authority.contains('@') {
            return Err(bad_host());
        }
        // "[::1]:7780", "host:7780", or no port (80).
        let has_port = match authority.rfind(':') {
            Some(colon) => !authority[colon..].contains(']'),
            None => false,
        };
        let with_port = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let (name, port) = with_port.rsplit_once(':').ok_or_else(bad_host)?;
        let port: u16 = port.parse().map_err(|_| bad_host())?;
        let name = name.trim_start_matches('[').trim_end_matches(']');
        if name.is_empty() {
            return Err(bad_host());
        }
        let addr = (name, port)
            .to_socket_addrs()
            .map_err(|e| WsUrlError::Resolve {
                host: authority.to_owned(),
                reason: e.to_string(),
            })?
            .next()
            .ok_or_else(|| WsUrlError::Resolve {
                host: authority.to_owned(),
                reason: "no address".to_owned(),
            })?;
        Ok(Self {
            addr,
            host: authority.to_owned(),
            path: path.to_owned(),
        })
    }
}

impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ws://{}{}", self.host, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let url: WsUrl = "ws://localhost:7780".parse().unwrap();
        assert!(url.addr().ip().is_loopback());
        assert_eq!((url.host(), url.path()), ("localhost:7780", "/"));
        let url: WsUrl = "ws://[::1]:9/a?b=c".parse().unwrap();
        assert_eq!(url.addr(), "[::1]:9".parse().unwrap());
        assert_eq!(url.path(), "/a?b=c");
        let url: WsUrl = "ws://127.0.0.1/x".parse().unwrap();
        assert_eq!(url.addr().port(), 80);
        for bad in [
            "http://127.0.0.1/",
            "wss://127.0.0.1/",
            "ws://",
            "ws://:80/",
            "ws://127.0.0.1:99999/",
            "ws://127.0.0.1:1/a b",
            "ws://u@127.0.0.1/",
        ] {
            assert!(bad.parse::<WsUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_settings_name_their_setter() {
        let setting = |o: WsOptions| o.validate().unwrap_err().setting;
        assert_eq!(setting(WsOptions::new().path("ws")), "path");
        assert_eq!(
            setting(WsOptions::new().max_message_size(0)),
            "max_message_size"
        );
        assert_eq!(
            setting(WsOptions::new().max_head_bytes(10)),
            "max_head_bytes"
        );
        assert_eq!(setting(WsOptions::new().max_headers(1000)), "max_headers");
        assert_eq!(
            setting(WsOptions::new().handshake_timeout(Duration::ZERO)),
            "handshake_timeout"
        );
        let message = WsOptions::new()
            .max_headers(1000)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(message.contains("max_headers"), "{message}");
        assert_eq!(WsOptions::new().validate(), Ok(()));
    }

    #[test]
    fn defective_responses_are_caught() {
        assert_eq!(HttpResponse::ok("text/plain", "x").defect(), None);
        assert!(HttpResponse::new(101, "text/plain", "").defect().is_some());
        assert!(HttpResponse::new(200, "text/plain\r\nX: y", "")
            .defect()
            .is_some());
        assert!(HttpResponse::new(200, "", "").defect().is_some());
    }
}
