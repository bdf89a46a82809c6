//! A deliberately small HTTP/1.1 server for the operations endpoints (`/metrics`,
//! `/healthz`, `/readyz`): one thread, one `mio::Poll`, `GET` and `HEAD` only, one request
//! per connection.
//!
//! Everything a peer can send is bounded:
//!
//! * at most [`Limits::max_connections`] at once; one more is answered `503` and closed at
//!   once, so a flood costs nothing that is kept;
//! * a request head larger than [`Limits::max_head`] bytes or with more than
//!   [`MAX_HEADERS`] headers is answered `431`; the head is parsed (by `httparse`) from one
//!   fixed buffer per connection, so no byte from the network makes anything grow;
//! * a head that is not complete within [`Limits::head_timeout`] (a slow trickle, a head
//!   without its blank line) is answered `408`; a response not taken within
//!   [`Limits::write_timeout`] is dropped with its connection;
//! * bodies are never read: the connection closes after the response.
//!
//! Malformed heads get `400`, other methods `405`, unknown paths `404`.

use log::{debug, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Headers one request may carry (a scraper sends about five).
pub(crate) const MAX_HEADERS: usize = 32;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// Connection `i` is registered as `Token(FIRST_CONNECTION + i)`.
const FIRST_CONNECTION: usize = 2;
/// Pause before accepting again after `accept` failed (out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What one connection may cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Connections served at once.
    pub(crate) max_connections: usize,
    /// Bytes of a request head (request line and headers), the size of each connection's
    /// buffer.
    pub(crate) max_head: usize,
    /// Time from accept until the head is complete.
    pub(crate) head_timeout: Duration,
    /// Time to write the response and see the peer close.
    pub(crate) write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 16,
            max_head: 8 * 1024,
            // Prometheus sends its whole request at once; 5 s is generous for any client
            // and short for a slowloris.
            head_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
        }
    }
}

/// A response: status, content type and body (`HEAD` sends the same without the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// A short `text/plain` response.
    pub(crate) fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n").into_bytes(),
        }
    }
}

/// The pages the server serves.
pub(crate) trait Routes: Send + 'static {
    /// The response to `GET path` (query string removed), or `None` for `404`.
    fn get(&self, path: &str) -> Option<Response>;
}

/// A running endpoint; dropping it stops the thread.
pub(crate) struct HttpServer {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` and serves `routes` on a thread of its own named `name`.
    pub(crate) fn start(
        name: &str,
        addr: SocketAddr,
        limits: Limits,
        routes: impl Routes,
    ) -> io::Result<Self> {
        let mut listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let stop = Arc::new(AtomicBool::new(false));
        let mut event_loop = EventLoop {
            poll,
            listener,
            limits,
            routes,
            connections: (0..limits.max_connections).map(|_| None).collect(),
            accept_paused_until: None,
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || event_loop.run())?;
        Ok(Self {
            local_addr,
            stop,
            waker,
            thread: Some(thread),
        })
    }

    /// The bound address (with the real port when bound to port 0).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops serving and joins the thread (open connections are dropped). Idempotent.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Err(e) = self.waker.wake() {
            warn!("http {}: cannot wake its thread: {e}", self.local_addr);
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("http {}: its thread panicked", self.local_addr);
            }
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where a connection is in its one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Filling the head buffer until the blank line.
    Reading,
    /// Writing the response.
    Writing,
    /// Response sent and our side shut: discarding input until the peer closes, so a peer
    /// still sending sees the response and not a reset (a "lingering close").
    Draining,
}

struct Connection {
    stream: TcpStream,
    phase: Phase,
    /// The request head so far: `Limits::max_head` bytes, allocated at accept.
    head: Box<[u8]>,
    filled: usize,
    /// The encoded response and how much of it is written.
    out: Vec<u8>,
    written: usize,
    deadline: Instant,
}

struct EventLoop<R> {
    poll: Poll,
    listener: TcpListener,
    limits: Limits,
    routes: R,
    /// Fixed slots: the index is the token, so nothing grows with the number of peers.
    connections: Vec<Option<Connection>>,
    /// Set after `accept` failed for a reason other than `WouldBlock`.
    accept_paused_until: Option<Instant>,
    stop: Arc<AtomicBool>,
}

impl<R: Routes> EventLoop<R> {
    fn run(&mut self) {
        let mut events = Events::with_capacity(64);
        while !self.stop.load(Ordering::Acquire) {
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                warn!("http: poll failed, endpoint stops: {e}");
                return;
            }
            for event in &events {
                match event.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {}
                    Token(t) => self.drive(t - FIRST_CONNECTION),
                }
            }
            if self
                .accept_paused_until
                .is_some_and(|t| t <= Instant::now())
            {
                self.accept_paused_until = None;
                self.accept_all();
            }
            self.expire(Instant::now());
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let connections = self.connections.iter().flatten().map(|c| c.deadline);
        connections.chain(self.accept_paused_until).min()
    }

    /// Accepts until `WouldBlock` (mio is edge-triggered): into a free slot, or answered
    /// `503` and closed when every slot is taken.
    fn accept_all(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("http: accept failed ({e}); retrying in {ACCEPT_BACKOFF:?}");
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            };
            let Some(slot) = self.connections.iter().position(Option::is_none) else {
                debug!(
                    "http: {peer} refused, {} connections open",
                    self.connections.len()
                );
                // Best effort into an empty socket buffer; the peer sees a clear answer.
                let _ = stream.write(&encode(&Response::text(503, "busy"), false));
                continue;
            };
            let token = Token(FIRST_CONNECTION + slot);
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = self.poll.registry().register(&mut stream, token, interest) {
                warn!("http: cannot register {peer}: {e}");
                continue;
            }
            self.connections[slot] = Some(Connection {
                stream,
                phase: Phase::Reading,
                head: vec![0; self.limits.max_head].into_boxed_slice(),
                filled: 0,
                out: Vec::new(),
                written: 0,
                deadline: Instant::now() + self.limits.head_timeout,
            });
        }
    }

    /// Moves connection `slot` as far as its socket allows; closes it when done.
    fn drive(&mut self, slot: usize) {
        let Some(Some(conn)) = self.connections.get_mut(slot) else {
            return; // a stale event for a slot already closed
        };
        let keep = match step(conn, &self.routes, &self.limits) {
            Ok(keep) => keep,
            Err(e) => {
                debug!("http: connection closed: {e}");
                false
            }
        };
        if !keep {
            self.close(slot);
        }
    }

    /// Times out connections past their deadline: `408` to a head still coming, close for
    /// the rest.
    fn expire(&mut self, now: Instant) {
        for slot in 0..self.connections.len() {
            let Some(conn) = &mut self.connections[slot] else {
                continue;
            };
            if conn.deadline > now {
                continue;
            }
            if conn.phase == Phase::Reading {
                debug!("http: request head not complete in time");
                let answer = Response::text(408, "request head not complete in time");
                respond(conn, &answer, false, &self.limits);
                if write_out(conn).is_ok() {
                    continue; // writing or draining, under the write deadline
                }
            }
            self.close(slot);
        }
    }

    fn close(&mut self, slot: usize) {
        if let Some(mut conn) = self.connections[slot].take() {
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
    }
}

/// One readiness event's worth of work; `Ok(false)` when the connection is finished.
fn step(conn: &mut Connection, routes: &impl Routes, limits: &Limits) -> io::Result<bool> {
    if conn.phase == Phase::Reading {
        while conn.phase == Phase::Reading {
            if conn.filled == conn.head.len() {
                let answer = Response::text(431, "request head too large");
                respond(conn, &answer, false, limits);
                break;
            }
            match conn.stream.read(&mut conn.head[conn.filled..]) {
                Ok(0) => return Ok(false), // closed before the head was complete
                Ok(n) => conn.filled += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            match parse_head(&conn.head[..conn.filled]) {
                Head::Incomplete => {}
                Head::Get { path, head_only } => {
                    let answer = route(routes, path_of(&path));
                    respond(conn, &answer, head_only, limits);
                }
                Head::Bad(answer) => respond(conn, &answer, false, limits),
            }
        }
    }
    if conn.phase == Phase::Writing && !write_out(conn)? {
        return Ok(true);
    }
    // Draining: read and drop until the peer closes or the deadline passes.
    let mut sink = [0u8; 4096];
    loop {
        match conn.stream.read(&mut sink) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The routes' answer for `path`: `404` when they have none, `500` if they panic (the
/// endpoint outlives a bug in one page).
fn route(routes: &impl Routes, path: &str) -> Response {
    let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| routes.get(path)));
    match answer {
        Ok(Some(response)) => response,
        Ok(None) => Response::text(404, "not found"),
        Err(_) => {
            warn!("http: the page {path:?} panicked");
            Response::text(500, "internal error")
        }
    }
}

/// Queues `response` and switches the connection to writing.
fn respond(conn: &mut Connection, response: &Response, head_only: bool, limits: &Limits) {
    conn.out = encode(response, head_only);
    conn.written = 0;
    conn.phase = Phase::Writing;
    conn.deadline = Instant::now() + limits.write_timeout;
}

/// Writes what is left of the response; `Ok(true)` once all of it is out (our side is then
/// shut and the connection drains).
fn write_out(conn: &mut Connection) -> io::Result<bool> {
    while conn.written < conn.out.len() {
        match conn.stream.write(&conn.out[conn.written..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => conn.written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    conn.out = Vec::new();
    conn.phase = Phase::Draining;
    let _ = conn.stream.shutdown(Shutdown::Write);
    Ok(true)
}

/// What a request head says so far.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// No blank line yet.
    Incomplete,
    /// A `GET` (or `HEAD`: `head_only`) of `path` (the request target as sent).
    Get { path: String, head_only: bool },
    /// Anything else, with its answer.
    Bad(Response),
}

/// Parses a request head from `buf`; pure, for the tests.
fn parse_head(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Partial) => Head::Incomplete,
        Ok(httparse::Status::Complete(_)) => match (request.method, request.path) {
            (Some(method @ ("GET" | "HEAD")), Some(path)) => Head::Get {
                path: path.to_owned(),
                head_only: method == "HEAD",
            },
            _ => Head::Bad(Response::text(405, "only GET and HEAD")),
        },
        Err(httparse::Error::TooManyHeaders) => {
            Head::Bad(Response::text(431, "too many request headers"))
        }
        Err(e) => Head::Bad(Response::text(400, &format!("bad request: {e}"))),
    }
}

/// The path of a request target, without its query string.
fn path_of(target: &str) -> &str {
    target.split(['?', '#']).next().unwrap_or_default()
}

/// The bytes of `response` (without the body for `HEAD`). Every response closes its
/// connection; a `405` says what is allowed.
fn encode(response: &Response, head_only: bool) -> Vec<u8> {
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    };
    let allow = if response.status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len(),
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(&response.body);
    }
    out
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
