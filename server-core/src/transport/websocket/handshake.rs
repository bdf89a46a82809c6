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

/// The two methods served on the non-WebSocket paths of a
/// [`listen_ws`](crate::Service::listen_ws) port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpMethod {
    /// `GET`: headers and body.
    Get,
    /// `HEAD`: the headers a `GET` would get, no body.
    Head,
}

/// An ordinary request on a [`listen_ws`](crate::Service::listen_ws) port: a `GET` or
/// `HEAD` for a path other than the WebSocket path, handed to the
/// [`WsOptions::http`](crate::WsOptions::http) hook.
///
/// # Examples
/// ```
/// use server_core::{HttpRequest, HttpResponse};
///
/// fn route(request: &HttpRequest) -> HttpResponse {
///     match request.path() {
///         "/" => HttpResponse::ok("text/plain; charset=utf-8", "hello\n"),
///         _ => HttpResponse::not_found(),
///     }
/// }
/// # let _ = route;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET` or `HEAD`.
    pub(crate) method: HttpMethod,
    /// The path, without the query string; always starts with `/`.
    pub(crate) path: String,
    /// The query string after `?`, undecoded; `None` if there was no `?`.
    pub(crate) query: Option<String>,
}

impl HttpRequest {
    /// `GET` or `HEAD` (a `HEAD` is answered with the headers of the `GET`, no body).
    #[must_use]
    pub fn method(&self) -> HttpMethod {
        self.method
    }

    /// The path, without the query string; always starts with `/`. Not percent-decoded.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The query string after `?`, not decoded; `None` if there was no `?`.
    #[must_use]
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

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
    pub(crate) fn new(bytes: &[u8]) -> Self {
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

/// The usual reason phrase of a status; empty (which HTTP/1.1 allows) for others.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The request of RFC 6455 section 1.2, with its sample key.
    const RFC_REQUEST: &str = "GET /ws HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn parse(request: &str) -> Result<Handshake, HandshakeError> {
        parse_request(request.as_bytes(), &HandshakeConfig::default())
    }

    /// `RFC_REQUEST` with one header line replaced (or removed when `with` is empty).
    fn edited(name: &str, with: &str) -> String {
        RFC_REQUEST
            .split_inclusive("\r\n")
            .map(|line| {
                if line.starts_with(&format!("{name}:")) {
                    with.to_owned()
                } else {
                    line.to_owned()
                }
            })
            .collect()
    }

    fn response_text(bytes: &Bytes) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    #[test]
    fn rfc_sample_key_gives_the_rfc_accept_key() {
        assert_eq!(
            &derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn rfc_request_upgrades() {
        let Ok(Handshake::Upgrade {
            consumed,
            response,
            query,
            subprotocol,
        }) = parse(RFC_REQUEST)
        else {
            panic!("{:?}", parse(RFC_REQUEST));
        };
        assert_eq!(consumed, RFC_REQUEST.len());
        assert_eq!((query, subprotocol), (None, None));
        assert_eq!(
            response_text(&response),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }

    #[test]
    fn bytes_after_the_head_are_left_to_the_decoder() {
        let mut buf = RFC_REQUEST.as_bytes().to_vec();
        buf.extend_from_slice(&[0x82, 0x80, 1, 2, 3, 4]);
        let Ok(Handshake::Upgrade { consumed, .. }) =
            parse_request(&buf, &HandshakeConfig::default())
        else {
            panic!()
        };
        assert_eq!(consumed, RFC_REQUEST.len());
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for n in 0..RFC_REQUEST.len() {
            assert_eq!(parse(&RFC_REQUEST[..n]), Ok(Handshake::Incomplete), "{n}");
        }
    }

    #[test]
    fn header_names_and_tokens_are_case_insensitive_lists() {
        let request = edited("Upgrade", "upGRADE: h2c, WebSocket\r\n")
            .replace("Connection: Upgrade", "connection: keep-alive, upgrade")
            .replace("Sec-WebSocket-Key", "sec-websocket-key");
        assert!(matches!(parse(&request), Ok(Handshake::Upgrade { .. })));
        // The token may also come in a second header line.
        let request = edited(
            "Connection",
            "Connection: keep-alive\r\nConnection: Upgrade\r\n",
        );
        assert!(matches!(parse(&request), Ok(Handshake::Upgrade { .. })));
    }

    #[test]
    fn query_string_is_kept_and_does_not_change_the_path() {
        let request = RFC_REQUEST.replace("GET /ws ", "GET /ws?name=kim&room=2 ");
        let Ok(Handshake::Upgrade { query, .. }) = parse(&request) else {
            panic!("{:?}", parse(&request))
        };
        assert_eq!(query.as_deref(), Some("name=kim&room=2"));
    }

    #[test]
    fn configured_subprotocol_is_echoed_when_offered() {
        let upgrade_with = |subprotocol: &str| {
            let config = HandshakeConfig {
                subprotocol: Some(subprotocol.to_owned()),
                ..HandshakeConfig::default()
            };
            match parse_request(RFC_REQUEST.as_bytes(), &config) {
                Ok(Handshake::Upgrade {
                    response,
                    subprotocol,
                    ..
                }) => (response_text(&response).to_owned(), subprotocol),
                other => panic!("{other:?}"),
            }
        };
        let (response, subprotocol) = upgrade_with("superchat");
        assert_eq!(subprotocol.as_deref(), Some("superchat"));
        assert!(response.contains("\r\nSec-WebSocket-Protocol: superchat\r\n"));

        // Configured but not offered: no header, the client decides.
        let (response, subprotocol) = upgrade_with("game");
        assert_eq!(subprotocol, None);
        assert!(!response.contains("Sec-WebSocket-Protocol"));
    }

    #[test]
    fn other_paths_are_plain_requests() {
        let request = "GET /index.html?say=hi HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            parse(request),
            Ok(Handshake::Request {
                consumed: request.len(),
                request: HttpRequest {
                    method: HttpMethod::Get,
                    path: "/index.html".to_owned(),
                    query: Some("say=hi".to_owned()),
                }
            })
        );
        let Ok(Handshake::Request { request, .. }) = parse("HEAD / HTTP/1.0\r\n\r\n") else {
            panic!()
        };
        assert_eq!(
            (request.method, request.path.as_str(), request.query),
            (HttpMethod::Head, "/", None)
        );
    }

    #[test]
    fn head_responses_keep_the_length_and_drop_the_body() {
        let get = HttpRequest {
            method: HttpMethod::Get,
            path: "/".to_owned(),
            query: None,
        };
        let head = HttpRequest {
            method: HttpMethod::Head,
            ..get.clone()
        };
        let full = get.response(200, "OK", "text/html", b"<p>hi</p>");
        let bare = head.response(200, "OK", "text/html", b"<p>hi</p>");
        assert!(response_text(&full).ends_with("\r\n\r\n<p>hi</p>"));
        assert!(response_text(&bare).ends_with("Content-Length: 9\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn http_response_builder() {
        let response = http_response(404, "Not Found", "text/plain", b"no");
        assert_eq!(
            response_text(&response),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"
        );
        let response = http_response(426, "Upgrade Required", "text/plain", b"");
        assert!(response_text(&response).contains("\r\nSec-WebSocket-Version: 13\r\n"));
    }

    /// Asserts the error, its status, and that its response carries both and the message.
    fn assert_refused(request: &str, expected: HandshakeError, status: u16) {
        let err = parse(request).expect_err(request);
        assert_eq!(err, expected, "{request}");
        assert_eq!(err.status(), status, "{err}");
        let response = err.response();
        let text = response_text(&response);
        assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        assert!(text.ends_with(&format!("\r\n\r\n{err}\n")), "{text}");
    }

    #[test]
    fn malformed_requests_are_400() {
        assert_refused(
            "GET /ws HTTP/1.1\r\nHost x\r\n\r\n",
            HandshakeError::Malformed("invalid header name"),
            400,
        );
        assert_refused(
            "GET http://x/ws HTTP/1.1\r\nHost: x\r\n\r\n",
            HandshakeError::Malformed("request target is not an absolute path"),
            400,
        );
        assert_refused(
            "GET /ws HTTP/1.1\r\n\r\n",
            HandshakeError::MissingHeader("Host"),
            400,
        );
    }

    #[test]
    fn a_tls_hello_is_refused_at_once_not_after_the_limit() {
        let hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
        for n in 1..hello.len() {
            let err = parse_request(&hello[..n], &HandshakeConfig::default()).unwrap_err();
            assert_eq!(err, HandshakeError::Malformed("invalid method or token"));
        }
    }

    #[test]
    fn oversized_heads_are_431() {
        let config = HandshakeConfig {
            max_head_bytes: 600,
            ..HandshakeConfig::default()
        };
        let long = format!("GET / HTTP/1.1\r\nHost: x\r\nCookie: {}", "a".repeat(700));
        assert_eq!(
            parse_request(&long.as_bytes()[..599], &config),
            Ok(Handshake::Incomplete)
        );
        let err = parse_request(&long.as_bytes()[..600], &config).unwrap_err();
        assert_eq!(err, HandshakeError::TooLarge { limit: 600 });
        assert_eq!(err.status(), 431);
        assert_eq!(parse_request(long.as_bytes(), &config), Err(err));
        // A head that fits exactly is fine.
        let exact = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", "h".repeat(600 - 26));
        assert_eq!(exact.len(), 600);
        assert!(matches!(
            parse_request(exact.as_bytes(), &config),
            Ok(Handshake::Request { consumed: 600, .. })
        ));
    }

    #[test]
    fn too_many_headers_are_431() {
        let extra: String = (0..40).map(|i| format!("X-{i}: v\r\n")).collect();
        let request = RFC_REQUEST.replace("Origin:", &format!("{extra}Origin:"));
        assert_refused(&request, HandshakeError::TooManyHeaders { limit: 32 }, 431);
    }

    #[test]
    fn wrong_methods_are_405_with_allow() {
        let post = RFC_REQUEST.replace("GET /ws", "POST /ws");
        let err = parse(&post).unwrap_err();
        assert_eq!(err.status(), 405);
        assert!(response_text(&err.response()).contains("\r\nAllow: GET\r\n"));
        assert_eq!(err.to_string(), "method \"POST\" not allowed on \"/ws\"");
        let err = parse("DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n").unwrap_err();
        assert_eq!(err.status(), 405);
        assert!(response_text(&err.response()).contains("\r\nAllow: GET, HEAD\r\n"));
        let err = parse("HEAD /ws HTTP/1.1\r\nHost: h\r\n\r\n").unwrap_err();
        assert_eq!(err.status(), 405);
    }

    #[test]
    fn bad_upgrade_headers_are_400() {
        let bad =
            |name: &'static str, value: &str, expected: &'static str| HandshakeError::BadHeader {
                name,
                value: Quoted::new(value.as_bytes()),
                expected,
            };
        let twice = RFC_REQUEST.replace(
            "Origin:",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin:",
        );
        let cases = [
            (
                edited("Upgrade", ""),
                HandshakeError::MissingHeader("Upgrade"),
            ),
            (
                edited("Upgrade", "Upgrade: h2c\r\n"),
                bad("Upgrade", "h2c", "a list holding \"websocket\""),
            ),
            (
                edited("Connection", "Connection: keep-alive\r\n"),
                bad("Connection", "keep-alive", "a list holding \"upgrade\""),
            ),
            (
                edited("Connection", ""),
                HandshakeError::MissingHeader("Connection"),
            ),
            (
                edited("Sec-WebSocket-Key", ""),
                HandshakeError::MissingHeader("Sec-WebSocket-Key"),
            ),
            (
                edited("Sec-WebSocket-Version", ""),
                HandshakeError::MissingHeader("Sec-WebSocket-Version"),
            ),
            (twice, HandshakeError::DuplicateHeader("Sec-WebSocket-Key")),
            (
                RFC_REQUEST.replace("HTTP/1.1", "HTTP/1.0"),
                HandshakeError::HttpVersion,
            ),
        ];
        for (request, expected) in cases {
            assert_refused(&request, expected, 400);
        }
    }

    #[test]
    fn keys_must_be_base64_of_16_bytes() {
        for key in [
            "dGhlIHNhbXBsZSBub25jZQ",       // unpadded
            "dGhlIHNhbXBsZSBub25jZQ=",      // short padding
            "dGhlIHNhbXBsZSBub25jZR==",     // non-canonical trailing bits
            "dGhlIHNhbXBsZSBub25jZQ==dGhl", // too long
            "dGhlIHNhbXBsZSBub25j****",     // not base64
            "dGhlIHNhbXBsZSBub25jZSE=",     // 17 bytes
        ] {
            let request = edited(
                "Sec-WebSocket-Key",
                &format!("Sec-WebSocket-Key: {key}\r\n"),
            );
            let err = parse(&request).unwrap_err();
            assert!(
                matches!(
                    err,
                    HandshakeError::BadHeader {
                        name: "Sec-WebSocket-Key",
                        ..
                    }
                ),
                "{key}: {err}"
            );
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn other_versions_are_426_naming_13() {
        let request = edited("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8\r\n");
        assert_refused(
            &request,
            HandshakeError::UnsupportedVersion(Quoted::new(b"8")),
            426,
        );
        let response = parse(&request).unwrap_err().response();
        let text = response_text(&response);
        assert!(
            text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{text}");
    }

    #[test]
    fn bodies_on_get_are_400() {
        let request = RFC_REQUEST.replace("Origin:", "Content-Length: 5\r\nOrigin:");
        assert_refused(
            &request,
            HandshakeError::BodyNotAllowed("Content-Length"),
            400,
        );
        let request = RFC_REQUEST.replace("Origin:", "Transfer-Encoding: chunked\r\nOrigin:");
        assert_refused(
            &request,
            HandshakeError::BodyNotAllowed("Transfer-Encoding"),
            400,
        );
        let request = "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n";
        assert_refused(
            request,
            HandshakeError::BodyNotAllowed("Content-Length"),
            400,
        );
        let zero = RFC_REQUEST.replace("Origin:", "Content-Length: 0\r\nOrigin:");
        assert!(matches!(parse(&zero), Ok(Handshake::Upgrade { .. })));
    }

    #[test]
    fn peer_bytes_in_messages_are_escaped_and_cut() {
        // Header values may hold quotes and non-ASCII bytes (control bytes are refused by
        // the HTTP parser already).
        let value = format!("\"é\"{}", "v".repeat(100));
        let request = edited(
            "Sec-WebSocket-Version",
            &format!("Sec-WebSocket-Version: {value}\r\n"),
        );
        let message = parse(&request).unwrap_err().to_string();
        assert!(message.contains(r#""\"é\"vvv"#), "{message}");
        assert!(message.contains('…'), "{message}");
        assert!(message.len() < 150, "{message}");
    }
}
