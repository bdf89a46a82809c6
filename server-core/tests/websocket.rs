//! The WebSocket transport over real sockets: a raw client written here from RFC 6455
//! (std `TcpStream`, bytes by hand) against `listen_ws`, hostile input of every kind, plain
//! HTTP on the same port, limits shared with TCP, and `connect_ws` against `listen_ws`.

mod util;

use bytes::Bytes;
use server_core::{
    DisconnectKind, DisconnectReason, Excess, HandlerError, HttpResponse, ListenOptions, Listener,
    RateLimit, Service, Session, SessionHandler, Transport, WsOptions, WsUrl,
};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use util::{frame, wait_until, TIMEOUT};

/// The RFC's sample key and the accept key it must get.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// What the server's sessions report.
#[derive(Debug)]
enum Event {
    Connected(Transport),
    Disconnected(DisconnectReason),
}

/// Echoes every frame and reports its life on a channel.
struct Echo(Sender<Event>);

impl SessionHandler for Echo {
    fn on_connected(&mut self, session: &Session) {
        let _ = self.0.send(Event::Connected(session.transport()));
    }
    fn on_packet(&mut self, session: &Session, frame: &[u8]) -> Result<(), HandlerError> {
        match frame.get(2) {
            // Id 99: "close me" (a local disconnect after the echo).
            Some(99) => {
                session.send(Bytes::copy_from_slice(frame));
                session.disconnect();
            }
            _ => session.send(Bytes::copy_from_slice(frame)),
        }
        Ok(())
    }
    fn on_disconnected(&mut self, _: &Session, reason: &DisconnectReason) {
        let _ = self.0.send(Event::Disconnected(clone_reason(reason)));
    }
}

fn clone_reason(reason: &DisconnectReason) -> DisconnectReason {
    match reason {
        DisconnectReason::WebSocket { code, reason } => DisconnectReason::WebSocket {
            code: *code,
            reason: reason.clone(),
        },
        DisconnectReason::WebSocketClosed { code, reason } => DisconnectReason::WebSocketClosed {
            code: *code,
            reason: reason.clone(),
        },
        DisconnectReason::RateLimited { refused, over } => DisconnectReason::RateLimited {
            refused: *refused,
            over: *over,
        },
        other => DisconnectReason::Handshake {
            status: 0,
            reason: other.to_string(),
        },
    }
}

struct Server {
    service: Service,
    listener: Listener,
    events: Receiver<Event>,
    /// Handlers made by the factory.
    made: Arc<AtomicUsize>,
}

fn server(options: WsOptions) -> Server {
    let _ = env_logger::builder().is_test(true).try_init();
    let service = Service::builder().threads(2).build().unwrap();
    let (tx, events) = mpsc::channel();
    let made = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&made);
    let listener = service
        .listen_ws("127.0.0.1:0".parse().unwrap(), options, move || {
            counter.fetch_add(1, Ordering::Relaxed);
            Echo(tx.clone())
        })
        .unwrap();
    Server {
        service,
        listener,
        events,
        made,
    }
}

impl Server {
    fn addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// The next disconnect reason reported by a handler.
    fn disconnected(&self) -> DisconnectReason {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left).expect("a disconnect") {
                Event::Disconnected(reason) => return reason,
                Event::Connected(_) => {}
            }
        }
    }

    fn count(&self, kind: DisconnectKind) -> u64 {
        self.service.stats().disconnects.get(kind)
    }
}

/// A blocking WebSocket client written from the RFC, for tests: masks what it sends,
/// reads the server's frames whole.
struct Client {
    stream: TcpStream,
    /// Bytes read and not yet parsed.
    buf: Vec<u8>,
}

impl Client {
    fn tcp(addr: SocketAddr) -> TcpStream {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    /// Connects and upgrades; checks the 101 and its accept key.
    fn connect(addr: SocketAddr) -> Self {
        let mut stream = Self::tcp(addr);
        write!(
            stream,
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://{addr}\r\n\r\n"
        )
        .unwrap();
        let mut client = Self {
            stream,
            buf: Vec::new(),
        };
        let head = client.read_head();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(
            head.contains(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n")),
            "{head}"
        );
        client
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => false,
            Err(e) => panic!("read: {e}"),
        }
    }

    fn read_head(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return String::from_utf8(head).unwrap();
            }
            assert!(self.fill(), "closed before the response head");
        }
    }

    /// One raw frame as a client would send it (masked unless `mask` is `None`).
    fn send_frame(&mut self, first: u8, payload: &[u8], mask: Option<[u8; 4]>) {
        let mut f = vec![first];
        let bit = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => f.push(bit | n as u8),
            n if n < 65_536 => {
                f.push(bit | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(bit | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(key) => {
                f.extend_from_slice(&key);
                f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            }
            None => f.extend_from_slice(payload),
        }
        self.stream.write_all(&f).unwrap();
    }

    /// A binary message.
    fn send(&mut self, payload: &[u8]) {
        self.send_frame(0x82, payload, Some([0xA1, 0xB2, 0xC3, 0xD4]));
    }

    /// The next frame from the server: (opcode, payload); `None` at end of stream.
    fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 2 {
                assert_eq!(self.buf[1] & 0x80, 0, "server frames are never masked");
                assert_eq!(self.buf[0] & 0x70, 0, "no reserved bits");
                let (len, at) = match self.buf[1] & 0x7F {
                    126 if self.buf.len() >= 4 => (
                        usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                        4,
                    ),
                    127 if self.buf.len() >= 10 => {
                        let mut n = [0u8; 8];
                        n.copy_from_slice(&self.buf[2..10]);
                        (u64::from_be_bytes(n) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (usize::from(n), 2),
                };
                if at > 0 && self.buf.len() >= at + len {
                    assert_ne!(self.buf[0] & 0x80, 0, "the server sends whole messages");
                    let opcode = self.buf[0] & 0x0F;
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return Some((opcode, payload));
                }
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// The next binary message's payload (skipping nothing: anything else fails).
    fn message(&mut self) -> Vec<u8> {
        match self.frame() {
            Some((0x2, payload)) => payload,
            other => panic!("expected a binary message, got {other:?}"),
        }
    }

    /// Reads until the server's close frame; returns its code and reason, then checks
    /// the server closes the TCP connection.
    fn expect_close(&mut self) -> (u16, String) {
        loop {
            match self.frame() {
                Some((0x8, payload)) => {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    let reason = String::from_utf8(payload[2..].to_vec()).unwrap();
                    self.expect_eof();
                    return (code, reason);
                }
                Some((0x2, _)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    fn expect_eof(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        while self.fill() {
            assert!(Instant::now() < deadline, "not closed in time");
        }
    }
}

/// Sends `request` on a fresh connection and reads the whole answer (the server closes).
fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = Client::tcp(addr);
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("read: {e}"),
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(addr: SocketAddr, path: &str) -> String {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
}

#[test]
fn frames_echo_in_every_message_shape() {
    let server = server(WsOptions::new());
    let mut client = Client::connect(server.addr());
    let (a, b) = (frame(1, b"alpha"), frame(2, &[7; 40_000]));

    // Two frames in one message: one message back (one flush).
    client.send(&[a.clone(), b.clone()].concat());
    let mut echoed = Vec::new();
    while echoed.len() < a.len() + b.len() {
        echoed.extend(client.message());
    }
    assert_eq!(echoed, [a.clone(), b.clone()].concat());

    // One frame over two messages, then over three fragments of one message.
    client.send(&a[..3]);
    client.send(&a[3..]);
    assert_eq!(client.message(), a);
    client.send_frame(0x02, &a[..2], Some([1, 2, 3, 4]));
    client.send_frame(0x00, &a[2..5], Some([5, 6, 7, 8]));
    client.send_frame(0x89, b"in between", Some([9, 9, 9, 9])); // a ping between fragments
    client.send_frame(0x80, &a[5..], Some([1, 1, 1, 1]));
    assert_eq!(client.frame(), Some((0xA, b"in between".to_vec())), "pong");
    assert_eq!(client.message(), a);

    assert!(matches!(
        server.events.recv_timeout(TIMEOUT),
        Ok(Event::Connected(Transport::WebSocket))
    ));
    assert_eq!(server.made.load(Ordering::Relaxed), 1);
}

#[test]
fn the_close_handshake_is_honoured_both_ways() {
    let server = server(WsOptions::new());
    // The client closes: the same code comes back, then the server closes TCP.
    let mut client = Client::connect(server.addr());
    client.send_frame(0x88, &[0x03, 0xE8, b'b', b'y', b'e'], Some([4, 3, 2, 1]));
    assert_eq!(client.expect_close(), (1000, String::new()));
    assert!(matches!(
        server.disconnected(),
        DisconnectReason::WebSocketClosed { code: Some(1000), ref reason } if reason == "bye"
    ));
    drop(client);

    // The server disconnects (frame id 99): the echo first, then close 1000.
    let mut client = Client::connect(server.addr());
    client.send(&frame(99, b"bye"));
    assert_eq!(client.message(), frame(99, b"bye"));
    assert_eq!(client.expect_close(), (1000, String::new()));
    drop(client);

    // Shutdown: 1001 "going away"; the service waits for the peer to close (as a browser
    // does after the close handshake), up to its linger time.
    let mut client = Client::connect(server.addr());
    client.send(&frame(1, b"x"));
    client.message();
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| server.service.shutdown());
        assert_eq!(client.expect_close().0, 1001);
        client.send_frame(0x88, &[0x03, 0xE9], Some([1, 2, 3, 4]));
        client.stream.shutdown(std::net::Shutdown::Both).unwrap();
    });
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "not held to the linger time"
    );
}

#[test]
fn hostile_frames_get_their_close_code_and_only_their_connection_closes() {
    let server = server(WsOptions::new().max_message_size(1000));
    let mut bystander = Client::connect(server.addr());
    let mask = Some([0x11, 0x22, 0x33, 0x44]);
    type Attack = fn(&mut Client, Option<[u8; 4]>);
    let attacks: [(&str, Attack, u16); 6] = [
        ("unmasked", |c, _| c.send_frame(0x82, b"game", None), 1002),
        ("text", |c, m| c.send_frame(0x81, b"hello", m), 1003),
        ("reserved bits", |c, m| c.send_frame(0xC2, b"x", m), 1002),
        ("reserved opcode", |c, m| c.send_frame(0x83, b"", m), 1002),
        ("oversized", |c, m| c.send_frame(0x82, &[0; 1001], m), 1009),
        (
            "bad game frame",
            |c, m| c.send_frame(0x82, &[2, 0, 1, 0], m),
            1008,
        ),
    ];
    for (name, attack, code) in attacks {
        let mut hostile = Client::connect(server.addr());
        attack(&mut hostile, mask);
        let (got, reason) = hostile.expect_close();
        assert_eq!(got, code, "{name}: {reason}");
        assert!(!reason.is_empty(), "{name}: a reason is given");
        // Only the offender: the bystander still echoes.
        bystander.send(&frame(5, name.as_bytes()));
        assert_eq!(bystander.message(), frame(5, name.as_bytes()), "{name}");
    }
    assert!(wait_until(TIMEOUT, || server
        .count(DisconnectKind::WebSocket)
        == 5));
    assert_eq!(server.count(DisconnectKind::Framing), 1);
}

#[test]
fn bad_handshakes_get_their_http_status() {
    let options = WsOptions::new().max_head_bytes(1024).max_headers(16);
    let server = server(options);
    let addr = server.addr();
    let upgrade = |extra: &str| {
        format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
        )
    };
    let many: String = (0..20).map(|i| format!("X-{i}: y\r\n")).collect();
    let cases = [
        ("garbage", "\x16\x03\x01\x02\x00hello".to_owned(), 400),
        ("no version", upgrade(""), 400),
        ("old version", upgrade("Sec-WebSocket-Version: 8\r\n"), 426),
        (
            "post",
            upgrade("Sec-WebSocket-Version: 13\r\n").replace("GET", "POST"),
            405,
        ),
        ("too many headers", upgrade(&many), 431),
        (
            "oversized head",
            upgrade(&format!("Cookie: {}\r\n", "c".repeat(4000))),
            431,
        ),
    ];
    for (name, request, status) in cases {
        let answer = http(addr, request.as_bytes());
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{name}: {answer}"
        );
        assert!(answer.contains("Connection: close\r\n"), "{name}");
    }
    assert!(answer_has_version(&http(
        addr,
        upgrade("Sec-WebSocket-Version: 8\r\n").as_bytes()
    )));
    assert!(wait_until(TIMEOUT, || server
        .count(DisconnectKind::Handshake)
        == 7));
    assert_eq!(
        server.made.load(Ordering::Relaxed),
        0,
        "no handler was made"
    );
    assert_eq!(server.service.stats().sessions, 0);
}

fn answer_has_version(answer: &str) -> bool {
    answer.contains("Sec-WebSocket-Version: 13\r\n")
}

#[test]
fn a_slow_handshake_is_answered_408_and_closed() {
    let server = server(WsOptions::new().handshake_timeout(Duration::from_millis(200)));
    let mut silent = Client::tcp(server.addr());
    let mut slow = Client::tcp(server.addr());
    slow.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n").unwrap();
    for stream in [&mut silent, &mut slow] {
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    }
    drop((silent, slow)); // the server drains until we close
    assert!(wait_until(TIMEOUT, || server
        .count(DisconnectKind::Handshake)
        == 2));
}

#[test]
fn plain_http_is_answered_by_the_hook_without_making_a_handler() {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    let options = WsOptions::new().http(move |request| {
        counter.fetch_add(1, Ordering::Relaxed);
        match request.path() {
            "/" => HttpResponse::ok("text/html; charset=utf-8", "<!doctype html><p>hi</p>"),
            "/panic" => panic!("a bug in the page hook"),
            "/bad" => HttpResponse::new(200, "text/html\r\nSet-Cookie: x", "oops"),
            _ => HttpResponse::not_found(),
        }
    });
    let server = server(options);
    let addr = server.addr();
    let page = get(addr, "/?say=hello");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("Content-Type: text/html; charset=utf-8\r\n"));
    assert!(page.ends_with("\r\n\r\n<!doctype html><p>hi</p>"), "{page}");
    let head = http(
        addr,
        format!("HEAD / HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    );
    assert!(
        head.contains("Content-Length: 24\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    assert!(get(addr, "/nope").starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert!(
        get(addr, "/panic").starts_with("HTTP/1.1 500 "),
        "a panic is a 500"
    );
    assert!(
        get(addr, "/bad").starts_with("HTTP/1.1 500 "),
        "a broken response is a 500"
    );
    assert!(get(addr, "/").starts_with("HTTP/1.1 200 "), "still serving");
    assert_eq!(served.load(Ordering::Relaxed), 6);
    assert_eq!(
        server.made.load(Ordering::Relaxed),
        0,
        "no handler for a page"
    );
    assert!(wait_until(TIMEOUT, || server
        .count(DisconnectKind::HttpServed)
        == 6));
    assert_eq!(server.service.stats().hook_panics, 1);

    // Without a hook, every other path is a 404.
    let plain = self::server(WsOptions::new());
    assert!(get(plain.addr(), "/").starts_with("HTTP/1.1 404 "));
}

#[test]
fn a_flood_over_websocket_is_rate_limited_like_tcp() {
    let limit = RateLimit::new(50, 1 << 20)
        .packet_burst(20)
        .on_excess(Excess::Disconnect {
            after: Duration::from_millis(200),
        });
    let options = WsOptions::new().listen_options(ListenOptions::new().rate_limit(Some(limit)));
    let server = server(options);
    let mut flooder = Client::connect(server.addr());
    let mut bystander = Client::connect(server.addr());
    // Many game frames per message: the limit counts frames, not messages.
    let burst: Vec<u8> = (0..100).flat_map(|i| frame(3, &[i as u8; 8])).collect();
    let deadline = Instant::now() + TIMEOUT;
    let reason = loop {
        assert!(Instant::now() < deadline, "the flood was never cut off");
        if flooder.stream.write_all(&masked(&burst)).is_err() {
            break server.disconnected();
        }
        if let Ok(Event::Disconnected(reason)) = server.events.try_recv() {
            break reason;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        matches!(reason, DisconnectReason::RateLimited { .. }),
        "{reason}"
    );
    assert_eq!(flooder.expect_close_lenient(), Some(1008));
    bystander.send(&frame(1, b"still here"));
    assert_eq!(bystander.message(), frame(1, b"still here"));
}

/// A masked binary message, as bytes.
fn masked(payload: &[u8]) -> Vec<u8> {
    let key = [7, 7, 7, 7];
    let mut f = vec![0x82, 0x80 | 126];
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

impl Client {
    /// The close code among whatever echoes arrived first, if the close frame made it.
    fn expect_close_lenient(&mut self) -> Option<u16> {
        loop {
            match self.frame() {
                Some((0x8, payload)) => return Some(u16::from_be_bytes([payload[0], payload[1]])),
                Some(_) => {}
                None => return None,
            }
        }
    }
}

/// A `connect_ws` client: sends frames once connected, reports what comes back.
struct Bot {
    send: Vec<Vec<u8>>,
    events: Sender<Result<Vec<u8>, String>>,
}

impl SessionHandler for Bot {
    fn on_connected(&mut self, session: &Session) {
        assert_eq!(session.transport(), Transport::WebSocket);
        for f in self.send.drain(..) {
            session.send(Bytes::from(f));
        }
    }
    fn on_packet(&mut self, session: &Session, frame: &[u8]) -> Result<(), HandlerError> {
        let _ = self.events.send(Ok(frame.to_vec()));
        if frame[2] == 42 {
            session.disconnect();
        }
        Ok(())
    }
    fn on_disconnected(&mut self, _: &Session, reason: &DisconnectReason) {
        let _ = self.events.send(Err(format!("disconnected: {reason}")));
    }
    fn on_connect_failed(&mut self, error: &std::io::Error) {
        let _ = self.events.send(Err(format!("failed: {error}")));
    }
}

#[test]
fn connect_ws_talks_to_listen_ws() {
    let server = server(WsOptions::new());
    let client = Service::builder().threads(1).build().unwrap();
    let (tx, rx) = mpsc::channel();
    let url: WsUrl = format!("ws://{}/ws", server.addr()).parse().unwrap();
    let big = frame(7, &[9; 60_000]);
    let bot = Bot {
        send: vec![frame(1, b"hi"), big.clone(), frame(42, b"bye")],
        events: tx.clone(),
    };
    client.connect_ws(&url, bot).unwrap();
    let next = || rx.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(next(), Ok(frame(1, b"hi")));
    assert_eq!(next(), Ok(big));
    assert_eq!(next(), Ok(frame(42, b"bye")));
    let end = next().unwrap_err();
    assert!(
        end.starts_with("disconnected: disconnected locally"),
        "{end}"
    );
    assert!(matches!(
        server.disconnected(),
        DisconnectReason::WebSocketClosed {
            code: Some(1000),
            ..
        }
    ));

    // A wrong path is refused with the server's 404; a plain HTTP server's 200 is no
    // upgrade either.
    let lost = WsUrl::new(server.addr(), "/elsewhere").unwrap();
    let bot = |tx: &Sender<_>| Bot {
        send: Vec::new(),
        events: tx.clone(),
    };
    client.connect_ws(&lost, bot(&tx)).unwrap();
    let failed = next().unwrap_err();
    assert!(
        failed.starts_with("failed: ") && failed.contains("404"),
        "{failed}"
    );
    let web = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let wrong = WsUrl::new(web.local_addr().unwrap(), "/ws").unwrap();
    let answering = std::thread::spawn(move || {
        let (mut stream, _) = web.accept().unwrap();
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    });
    client.connect_ws(&wrong, bot(&tx)).unwrap();
    let failed = next().unwrap_err();
    assert!(failed.contains("answered 200"), "{failed}");
    answering.join().unwrap();
}
