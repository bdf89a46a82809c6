//! Blocking test clients for the game server: whole frames in and out, every read bounded
//! by a timeout, packets built and parsed by hand (independently of the generated code).

#![allow(dead_code, unreachable_pub)]

pub mod binary;
pub mod http;
pub mod prometheus;
pub mod redis;
pub mod ws;

use game_server::{GameServer, ServerConfig};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Longest wait for a packet that must come.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// How long to listen for a packet that must not come.
pub const QUIET: Duration = Duration::from_millis(150);

/// A server on a free port with `tweak` applied to the test defaults (2 I/O threads).
pub fn server(tweak: impl FnOnce(&mut ServerConfig)) -> GameServer {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut config = ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        ws_addr: Some("127.0.0.1:0".parse().unwrap()),
        threads: Some(2),
        ..ServerConfig::default()
    };
    tweak(&mut config);
    game_server::start(config).expect("server starts")
}

/// Polls `cond` every few milliseconds for up to [`TIMEOUT`].
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A decoded server packet.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Enter { id: i32, pos: [f32; 3] },
    Leave { id: i32 },
    List(Vec<Entry>),
    Move { id: i32, pos: [f32; 3] },
    Chat { id: i32, text: String },
}

/// One `S_PlayerList` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub is_self: bool,
    pub id: i32,
    pub pos: [f32; 3],
}

/// A blocking client.
pub struct Client {
    pub stream: TcpStream,
    /// Set by [`Client::enter`].
    pub id: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Self { stream, id: 0 }
    }

    /// Connects and reads the S_PlayerList (one packet) and its own S_BroadcastEnterGame;
    /// returns the client (with its id) and the list.
    pub fn enter(addr: SocketAddr) -> (Self, Vec<Entry>) {
        let mut client = Self::connect(addr);
        let Msg::List(list) = client.msg() else {
            panic!("first packet is not S_PlayerList")
        };
        let me = list.iter().find(|e| e.is_self).expect("an isSelf entry");
        client.id = me.id;
        let first = list.first().unwrap();
        assert!(first.is_self, "the newcomer comes first");
        assert_eq!(
            client.msg(),
            Msg::Enter {
                id: client.id,
                pos: [0.0; 3]
            },
            "own S_BroadcastEnterGame"
        );
        (client, list)
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// One whole frame, header included.
    pub fn frame(&mut self) -> Vec<u8> {
        let mut header = [0u8; 4];
        self.stream
            .read_exact(&mut header)
            .expect("frame header within the timeout");
        let size = usize::from(u16::from_le_bytes([header[0], header[1]]));
        assert!(size >= 4, "frame size {size}");
        let mut frame = header.to_vec();
        frame.resize(size, 0);
        self.stream
            .read_exact(&mut frame[4..])
            .expect("frame body within the timeout");
        frame
    }

    pub fn msg(&mut self) -> Msg {
        parse(&self.frame())
    }

    /// Asserts nothing arrives for [`QUIET`] and the connection stays open.
    pub fn expect_quiet(&mut self) {
        self.stream.set_read_timeout(Some(QUIET)).unwrap();
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => panic!("connection closed, expected it open and quiet"),
            Ok(_) => panic!("unexpected data: {byte:?}"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read error: {e}"),
        }
        self.stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    }

    /// Asserts the server closes the connection (after any packets still in flight).
    pub fn expect_closed(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        let mut buf = [0u8; 4096];
        loop {
            assert!(Instant::now() < deadline, "connection not closed in time");
            match self.stream.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
                Err(e) => panic!("connection not closed: {e}"),
            }
        }
    }

    pub fn move_to(&mut self, pos: [f32; 3]) {
        self.send(&c_move(pos));
    }

    pub fn chat(&mut self, text: &str) {
        self.send(&c_chat(text));
    }

    pub fn leave(&mut self) {
        self.send(&C_LEAVE_GAME);
    }
}

/// `C_LeaveGame`: size 4, id 2, no body.
pub const C_LEAVE_GAME: [u8; 4] = [4, 0, 2, 0];

/// `C_Move`: size 16, id 5, three f32.
pub fn c_move(pos: [f32; 3]) -> Vec<u8> {
    let mut f = vec![16, 0, 5, 0];
    for v in pos {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f
}

/// A string as the course writes it: u16 byte count, then UTF-16LE.
pub fn utf16(text: &str) -> Vec<u8> {
    let units: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut out = u16::try_from(units.len()).unwrap().to_le_bytes().to_vec();
    out.extend(units);
    out
}

/// `C_Chat`: id 7, one string.
pub fn c_chat(text: &str) -> Vec<u8> {
    frame(7, &utf16(text))
}

/// A frame with `id` and `body`.
pub fn frame(id: u16, body: &[u8]) -> Vec<u8> {
    let size = u16::try_from(body.len() + 4).unwrap();
    let mut f = size.to_le_bytes().to_vec();
    f.extend_from_slice(&id.to_le_bytes());
    f.extend_from_slice(body);
    f
}

/// Parses a server packet by hand; panics on anything malformed.
pub fn parse(frame: &[u8]) -> Msg {
    let size = usize::from(u16::from_le_bytes([frame[0], frame[1]]));
    assert_eq!(size, frame.len(), "size field");
    let id = u16::from_le_bytes([frame[2], frame[3]]);
    let mut r = Reader(&frame[4..]);
    let msg = match id {
        1 => Msg::Enter {
            id: r.i32(),
            pos: r.pos(),
        },
        3 => Msg::Leave { id: r.i32() },
        4 => {
            let n = r.u16();
            Msg::List(
                (0..n)
                    .map(|_| Entry {
                        is_self: match r.u8() {
                            0 => false,
                            1 => true,
                            b => panic!("bool byte {b}"),
                        },
                        id: r.i32(),
                        pos: r.pos(),
                    })
                    .collect(),
            )
        }
        6 => Msg::Move {
            id: r.i32(),
            pos: r.pos(),
        },
        8 => {
            let id = r.i32();
            let len = usize::from(r.u16());
            let units: Vec<u16> = r
                .take(len)
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            Msg::Chat {
                id,
                text: String::from_utf16(&units).unwrap(),
            }
        }
        other => panic!("unexpected packet id {other} from the server"),
    };
    assert!(r.0.is_empty(), "trailing bytes in packet {id}");
    msg
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        assert!(self.0.len() >= n, "packet too short");
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take(2).try_into().unwrap())
    }
    fn i32(&mut self) -> i32 {
        i32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn f32(&mut self) -> f32 {
        f32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn pos(&mut self) -> [f32; 3] {
        [self.f32(), self.f32(), self.f32()]
    }
}

// ---- Reliability helpers (tests/reliability.rs, tests/fuzz.rs, tests/storm.rs) ----------

/// Log lines captured by [`capture_logs`], as `"LEVEL message"`.
static CAPTURED_LOGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// A `log::Log` that keeps info-and-above records in [`CAPTURED_LOGS`] (and echoes
/// warnings and errors to the test's captured stderr).
struct CaptureLogger;

impl log::Log for CaptureLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!("{} {}", record.level(), record.args());
        if record.level() <= log::Level::Warn {
            eprintln!("[log] {line}");
        }
        CAPTURED_LOGS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(line);
    }

    fn flush(&self) {}
}

/// Installs the capturing logger once per test binary; call it before [`server`] (whose
/// `env_logger` then stays out). Returns false if another logger got there first.
pub fn capture_logs() -> bool {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let ok = log::set_logger(&CaptureLogger).is_ok();
        if ok {
            log::set_max_level(log::LevelFilter::Info);
        }
        ok
    })
}

/// Captured log lines containing every one of `needles`.
pub fn logs_matching(needles: &[&str]) -> Vec<String> {
    CAPTURED_LOGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter(|line| needles.iter().all(|n| line.contains(n)))
        .cloned()
        .collect()
}

/// Waits up to `within` for a captured log line containing every one of `needles`.
pub fn wait_for_log(within: Duration, needles: &[&str]) -> Option<String> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(line) = logs_matching(needles).into_iter().next() {
            return Some(line);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The marker server-core puts in its "closed" log line for the session whose peer is
/// `client` (our side of the connection): `(127.0.0.1:PORT) closed:`.
pub fn closed_marker(client: &TcpStream) -> String {
    format!("({}) closed:", client.local_addr().unwrap())
}

/// Reads and discards until the server closes `stream` (EOF or reset); returns how long
/// that took, or `None` if it was still open after `within`.
pub fn time_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let deadline = start + within;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Some(start.elapsed()), // reset: closed with our bytes unread
        }
    }
}

/// Polls `cond` every 2 ms for up to `within`; true if it came to hold.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Resident set size of this process in KiB (`VmRSS` of /proc/self/status).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS line")
}

/// Open file descriptors of this process (entries of /proc/self/fd).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// A small seeded xorshift64* generator: reproducible inputs without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}
