//! Blocking test clients for the game server: whole frames in and out, every read bounded
//! by a timeout, packets built and parsed by hand (independently of the generated code).

#![allow(dead_code, unreachable_pub)]

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
