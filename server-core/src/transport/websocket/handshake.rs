//! The opening handshake (RFC 6455 section 4.2): an HTTP/1.1 request head parsed from the
//! bytes received so far, and the response to send. `httparse` does the HTTP syntax into a
//! fixed header array on the stack; this file judges the upgrade.
//!
//! One port serves the game socket and ordinary requests, so the answer is one of three:
//! not complete yet, an upgrade (send the 101 and switch to frames), or a plain `GET`/`HEAD`
//! for another path that the caller serves itself (a page, a 404). Anything else is a
//! [`HandshakeError`] carrying the HTTP status and a response to send before closing.

use super::config::{HandshakeConfig, MAX_HEADERS_CAP};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use sha1::{Digest as _, Sha1};
use std::fmt;
use thiserror::Error;

/// The GUID every server appends to the client's key before hashing (section 1.3).
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Longest piece of a peer's bytes quoted in an error message: enough to recognise it in a
/// log, not enough for a peer to fill the log.
const QUOTE_LIMIT: usize = 64;

/// What the request head received so far amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Handshake {
    /// The head is not complete and still within the byte limit: read more (the caller
    /// also enforces [`HandshakeConfig::timeout`]).
    Incomplete,
    /// A valid WebSocket upgrade on the configured path. Send `response`, then everything
    /// after `buf[..consumed]` is already WebSocket frames.
    Upgrade {
        /// Bytes of the request head; the rest of the buffer belongs to the frame decoder.
        consumed: usize,
        /// The `101 Switching Protocols` response, with the accept key.
        response: Bytes,
        /// The query string of the upgrade request (after `?`), for the application
        /// (e.g. a token or a player name); `None` if there was no `?`.
        query: Option<String>,
        /// The subprotocol echoed in the response, if one was configured and offered.
        subprotocol: Option<String>,
    },
    /// A well-formed `GET` or `HEAD` for another path: the caller answers it (see
    /// [`HttpRequest::response`]) and closes.
    Request {
        /// Bytes of the request head.
        consumed: usize,
        /// What was asked for.
        request: HttpRequest,
    },
}

/// The two methods served on the non-WebSocket paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HttpMethod {
    /// `GET`: headers and body.
    Get,
    /// `HEAD`: the headers a `GET` would get, no body.
    Head,
}

/// An ordinary request on the WebSocket port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpRequest {
    /// `GET` or `HEAD`.
    pub(crate) method: HttpMethod,
    /// The path, without the query string; always starts with `/`.
    pub(crate) path: String,
    /// The query string after `?`, undecoded; `None` if there was no `?`.
    pub(crate) query: Option<String>,
}

impl HttpRequest {
    /// The response to this request: as [`http_response`], without the body for `HEAD`
    /// (whose `Content-Length` still says what a `GET` would get, as RFC 9110 asks).
    pub(crate) fn response(
        &self,
        status: u16,
        reason: &str,
        content_type: &str,
        body: &[u8],
    ) -> Bytes {
        let mut response = response_head(status, reason, content_type, body.len(), &[]);
        if self.method == HttpMethod::Get {
            response.extend_from_slice(body);
        }
        Bytes::from(response)
    }
}

/// Why a request head was refused, each with the HTTP status it is answered with
/// ([`HandshakeError::status`]) and the response to send before closing
/// ([`HandshakeError::response`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum HandshakeError {
    /// Not HTTP/1.x syntax (400).
    #[error("malformed HTTP request: {0}")]
    Malformed(&'static str),
    /// No complete head within the byte limit (431).
    #[error("HTTP request head larger than {limit} bytes")]
    TooLarge {
        /// The configured `max_head_bytes`.
        limit: usize,
    },
    /// More headers than the limit (431).
    #[error("HTTP request with more than {limit} headers")]
    TooManyHeaders {
        /// The configured `max_headers`.
        limit: usize,
    },
    /// A method other than `GET` on the WebSocket path, or other than `GET`/`HEAD`
    /// elsewhere (405).
    #[error("method {method} not allowed on {path}")]
    MethodNotAllowed {
        /// The method, quoted for the log.
        method: Quoted,
        /// The path, quoted for the log.
        path: Quoted,
        /// What the `Allow` header of the response lists.
        allow: &'static str,
    },
    /// A WebSocket upgrade over HTTP/1.0 (400): section 4.1 asks for 1.1 at least.
    #[error("WebSocket upgrade needs HTTP/1.1, got HTTP/1.0")]
    HttpVersion,
    /// A required header is absent (400): `Host` on any HTTP/1.1 request, and the
    /// upgrade headers on the WebSocket path.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header that must appear once appeared again (400).
    #[error("duplicate {0} header")]
    DuplicateHeader(&'static str),
    /// A header with a value the upgrade cannot accept (400).
    #[error("bad {name} header {value}: {expected}")]
    BadHeader {
        /// The header.
        name: &'static str,
        /// Its value, quoted for the log.
        value: Quoted,
        /// What it should have been.
        expected: &'static str,
    },
    /// A WebSocket version other than 13 (426, with `Sec-WebSocket-Version: 13` so the
    /// client knows what to retry with).
    #[error("unsupported Sec-WebSocket-Version {0}, this server speaks 13")]
    UnsupportedVersion(Quoted),
    /// A `GET` or `HEAD` announcing a body (400): neither has one, and a body we do not
    /// read would be taken for frames or a next request.
    #[error("{0} on a GET or HEAD request: a body is not accepted")]
    BodyNotAllowed(&'static str),
}

impl HandshakeError {
    /// The HTTP status this error is answered with.
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::TooLarge { .. } | Self::TooManyHeaders { .. } => 431,
            Self::MethodNotAllowed { .. } => 405,
            Self::UnsupportedVersion(_) => 426,
            Self::Malformed(_)
            | Self::HttpVersion
            | Self::MissingHeader(_)
            | Self::DuplicateHeader(_)
            | Self::BadHeader { .. }
            | Self::BodyNotAllowed(_) => 400,
        }
    }

    /// The whole response to send before closing: status line, `Connection: close`, the
    /// header the status asks for (`Allow` for 405, `Sec-WebSocket-Version` for 426), and
    /// this error's message as a `text/plain` body.
    pub(crate) fn response(&self) -> Bytes {
        let status = self.status();
        let body = format!("{self}\n");
        let mut extra: Vec<(&str, &str)> = Vec::new();
        if let Self::MethodNotAllowed { allow, .. } = self {
            extra.push(("Allow", allow));
        }
        let mut response = response_head(
            status,
            reason_phrase(status),
            "text/plain; charset=utf-8",
            body.len(),
            &extra,
        );
        response.extend_from_slice(body.as_bytes());
        Bytes::from(response)
    }
}

/// A piece of a peer's bytes for a log line: lossy UTF-8, escaped, cut at 64 characters.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Quoted(String);

impl Quoted {
    fn new(bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes);
        let mut quoted: String = text.chars().take(QUOTE_LIMIT).collect();
        if text.chars().nth(QUOTE_LIMIT).is_some() {
            quoted.push('…');
        }
        Self(quoted)
    }
}

impl fmt::Display for Quoted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Debug for Quoted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Parses the request head at the start of `buf` (everything received so far).
///
/// Stateless: call it again with the longer buffer after each read. A decision, once made
/// on a prefix, is the same for any longer buffer. Bytes after the head (`buf[consumed..]`)
/// are not looked at.
///
/// # Errors
/// A [`HandshakeError`]; send its [`response`](HandshakeError::response) and close.
/// [`HandshakeError::TooLarge`] comes as soon as `buf` holds `max_head_bytes` bytes
/// without a complete head, so the caller never buffers more than that.
pub(crate) fn parse_request(
    buf: &[u8],
    config: &HandshakeConfig,
) -> Result<Handshake, HandshakeError> {
    let limit = config.max_head_bytes;
    let max_headers = config.max_headers.min(MAX_HEADERS_CAP);
    let window = &buf[..buf.len().min(limit)];
    let mut header_storage = [httparse::EMPTY_HEADER; MAX_HEADERS_CAP];
    let mut request = httparse::Request::new(&mut header_storage[..max_headers]);
    let consumed = match request.parse(window) {
        Ok(httparse::Status::Complete(consumed)) => consumed,
        Ok(httparse::Status::Partial) if buf.len() >= limit => {
            return Err(HandshakeError::TooLarge { limit })
        }
        Ok(httparse::Status::Partial) => return Ok(Handshake::Incomplete),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HandshakeError::TooManyHeaders { limit: max_headers })
        }
        Err(e) => return Err(HandshakeError::Malformed(http_error_text(e))),
    };
    // A complete parse always fills these three; the fallbacks only keep this panic-free.
    let method = request.method.unwrap_or_default();
    let target = request.path.unwrap_or_default();
    let http_1_1 = request.version == Some(1);
    let headers = Headers(request.headers);

    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (target, None),
    };
    if !path.starts_with('/') {
        return Err(HandshakeError::Malformed(
            "request target is not an absolute path",
        ));
    }
    if http_1_1 && headers.count("Host") == 0 {
        return Err(HandshakeError::MissingHeader("Host"));
    }
    check_no_body(&headers)?;

    if path != config.path {
        let method = match method {
            "GET" => HttpMethod::Get,
            "HEAD" => HttpMethod::Head,
            other => {
                return Err(HandshakeError::MethodNotAllowed {
                    method: Quoted::new(other.as_bytes()),
                    path: Quoted::new(path.as_bytes()),
                    allow: "GET, HEAD",
                })
            }
        };
        let request = HttpRequest {
            method,
            path: path.to_owned(),
            query,
        };
        return Ok(Handshake::Request { consumed, request });
    }

    if method != "GET" {
        return Err(HandshakeError::MethodNotAllowed {
            method: Quoted::new(method.as_bytes()),
            path: Quoted::new(path.as_bytes()),
            allow: "GET",
        });
    }
    if !http_1_1 {
        return Err(HandshakeError::HttpVersion);
    }
    check_token_header(&headers, "Upgrade", "websocket")?;
    check_token_header(&headers, "Connection", "upgrade")?;
    let version = headers.single("Sec-WebSocket-Version")?;
    if version.trim_ascii() != b"13" {
        return Err(HandshakeError::UnsupportedVersion(Quoted::new(version)));
    }
    let key = headers.single("Sec-WebSocket-Key")?.trim_ascii();
    if !is_valid_key(key) {
        return Err(HandshakeError::BadHeader {
            name: "Sec-WebSocket-Key",
            value: Quoted::new(key),
            expected: "the base64 encoding of 16 bytes (24 characters)",
        });
    }
    let subprotocol = config
        .subprotocol
        .as_deref()
        .filter(|wanted| headers.has_token("Sec-WebSocket-Protocol", wanted, false))
        .map(str::to_owned);
    let response = upgrade_response(&derive_accept_key(key), subprotocol.as_deref());
    Ok(Handshake::Upgrade {
        consumed,
        response,
        query,
        subprotocol,
    })
}

/// The request's headers, looked up by case-insensitive name.
struct Headers<'h, 'b>(&'h [httparse::Header<'b>]);

impl<'b> Headers<'_, 'b> {
    fn values(&self, name: &'static str) -> impl Iterator<Item = &'b [u8]> + '_ {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    fn count(&self, name: &'static str) -> usize {
        self.values(name).count()
    }

    /// The value of a header that must appear exactly once.
    fn single(&self, name: &'static str) -> Result<&'b [u8], HandshakeError> {
        let mut values = self.values(name);
        let first = values.next().ok_or(HandshakeError::MissingHeader(name))?;
        if values.next().is_some() {
            return Err(HandshakeError::DuplicateHeader(name));
        }
        Ok(first)
    }

    /// Whether a comma-separated token list, over all instances of the header, holds
    /// `token` (compared case-insensitively when `ignore_case`).
    fn has_token(&self, name: &'static str, token: &str, ignore_case: bool) -> bool {
        self.values(name).any(|value| {
            value.split(|&b| b == b',').any(|item| {
                let item = item.trim_ascii();
                if ignore_case {
                    item.eq_ignore_ascii_case(token.as_bytes())
                } else {
                    item == token.as_bytes()
                }
            })
        })
    }
}

/// `Upgrade` must list `websocket` and `Connection` must list `upgrade` (section 4.2.1),
/// both as case-insensitive tokens among others (`Connection: keep-alive, Upgrade`).
fn check_token_header(
    headers: &Headers<'_, '_>,
    name: &'static str,
    token: &'static str,
) -> Result<(), HandshakeError> {
    if headers.has_token(name, token, true) {
        return Ok(());
    }
    match headers.values(name).next() {
        None => Err(HandshakeError::MissingHeader(name)),
        Some(value) => Err(HandshakeError::BadHeader {
            name,
            value: Quoted::new(value),
            expected: if token == "websocket" {
                "a list holding \"websocket\""
            } else {
                "a list holding \"upgrade\""
            },
        }),
    }
}

/// `GET` and `HEAD` carry no body: a `Content-Length` other than 0, or any
/// `Transfer-Encoding`, is refused rather than skipped.
fn check_no_body(headers: &Headers<'_, '_>) -> Result<(), HandshakeError> {
    if headers.count("Transfer-Encoding") > 0 {
        return Err(HandshakeError::BodyNotAllowed("Transfer-Encoding"));
    }
    for value in headers.values("Content-Length") {
        if value.trim_ascii() != b"0" {
            return Err(HandshakeError::BodyNotAllowed("Content-Length"));
        }
    }
    Ok(())
}

/// A key is valid when it is the canonical base64 of exactly 16 bytes (section 4.1).
fn is_valid_key(key: &[u8]) -> bool {
    // The decoder's conservative size estimate for 24 characters is 18 bytes.
    let mut decoded = [0u8; 18];
    key.len() == 24 && BASE64.decode_slice(key, &mut decoded) == Ok(16)
}

/// `Sec-WebSocket-Accept` for a client key: base64(SHA-1(key ++ GUID)), section 4.2.2.
/// Returned as the 28 ASCII bytes, without allocating.
pub(crate) fn derive_accept_key(key: &[u8]) -> [u8; 28] {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(ACCEPT_GUID);
    let digest = sha1.finalize();
    let mut accept = [0u8; 28];
    // 20 bytes always encode to exactly 28 characters, so this cannot fail.
    let _ = BASE64.encode_slice(digest, &mut accept);
    accept
}

fn upgrade_response(accept: &[u8; 28], subprotocol: Option<&str>) -> Bytes {
    let mut response = Vec::with_capacity(160);
    response.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    response.extend_from_slice(accept);
    if let Some(protocol) = subprotocol {
        response.extend_from_slice(b"\r\nSec-WebSocket-Protocol: ");
        response.extend_from_slice(protocol.as_bytes());
    }
    response.extend_from_slice(b"\r\n\r\n");
    Bytes::from(response)
}

/// A whole HTTP/1.1 response that closes the connection: status line, `Content-Type`,
/// `Content-Length`, `Connection: close`, for 426 `Sec-WebSocket-Version: 13`, then `body`.
/// For the caller's own answers on the WebSocket port (a page, a 404); for the answer to a
/// `HEAD`, use [`HttpRequest::response`].
pub(crate) fn http_response(status: u16, reason: &str, content_type: &str, body: &[u8]) -> Bytes {
    let mut response = response_head(status, reason, content_type, body.len(), &[]);
    response.extend_from_slice(body);
    Bytes::from(response)
}

fn response_head(
    status: u16,
    reason: &str,
    content_type: &str,
    content_length: usize,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut head = String::with_capacity(160);
    // Writing to a String cannot fail.
    let _ = write!(
        head,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {content_length}\r\nConnection: close\r\n"
    );
    if status == 426 {
        head.push_str("Sec-WebSocket-Version: 13\r\n");
    }
    for (name, value) in extra {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

fn http_error_text(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid method or token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}
