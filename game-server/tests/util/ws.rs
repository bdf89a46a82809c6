//! A blocking WebSocket player for the browser port, written from RFC 6455 by hand: the
//! upgrade, masked binary messages out, the server's messages reassembled into the same
//! frame stream the TCP port carries (a message may hold several frames, a frame may span
//! messages).

use super::{c_chat, c_move, parse, Entry, Msg, TIMEOUT};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

/// The RFC's sample key and the accept key the server must answer with.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub struct WsClient {
    pub stream: TcpStream,
    /// Bytes read from the socket and not yet parsed as WebSocket frames.
    raw: Vec<u8>,
    /// Game-stream bytes from binary messages, not yet read as frames.
    game: Vec<u8>,
    /// Set by [`WsClient::enter`].
    pub id: i32,
}

impl WsClient {
    /// Connects to `addr` and upgrades on `/ws`.
    pub fn connect(addr: SocketAddr) -> Self {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        write!(
            stream,
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut client = Self {
            stream,
            raw: Vec::new(),
            game: Vec::new(),
            id: 0,
        };
        let end = loop {
            if let Some(end) = client.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            assert!(client.fill(), "closed during the upgrade");
        };
        let head = String::from_utf8(client.raw.drain(..end).collect()).unwrap();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(head.contains(ACCEPT), "{head}");
        client
    }

    /// Connects and reads the S_PlayerList and its own S_BroadcastEnterGame, as
    /// [`Client::enter`](super::Client::enter) does over TCP.
    pub fn enter(addr: SocketAddr) -> (Self, Vec<Entry>) {
        let mut client = Self::connect(addr);
        let Msg::List(list) = client.msg() else {
            panic!("first packet is not S_PlayerList")
        };
        client.id = list.iter().find(|e| e.is_self).expect("an isSelf entry").id;
        assert_eq!(
            client.msg(),
            Msg::Enter {
                id: client.id,
                pos: [0.0; 3]
            }
        );
        (client, list)
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.raw.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => false,
            Err(e) => panic!("read within the timeout: {e}"),
        }
    }

    /// `frames` as one masked binary message.
    pub fn send(&mut self, frames: &[u8]) {
        let key = [0x5A, 0x17, 0xC3, 0x08];
        let mut message = vec![0x82];
        match frames.len() {
            n if n < 126 => message.push(0x80 | n as u8),
            n => {
                message.push(0x80 | 126);
                message.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
            }
        }
        message.extend_from_slice(&key);
        message.extend(frames.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        self.stream.write_all(&message).expect("send");
    }

    /// Reads server frames until a binary payload arrives; answers nothing else.
    fn next_payload(&mut self) {
        loop {
            if let Some((opcode, payload, used)) = server_frame(&self.raw) {
                self.raw.drain(..used);
                assert_eq!(opcode, 0x2, "a binary message");
                self.game.extend_from_slice(&payload);
                return;
            }
            assert!(self.fill(), "the server closed the connection");
        }
    }

    /// One whole game frame, header included.
    pub fn frame(&mut self) -> Vec<u8> {
        loop {
            if self.game.len() >= 4 {
                let size = usize::from(u16::from_le_bytes([self.game[0], self.game[1]]));
                if self.game.len() >= size {
                    return self.game.drain(..size).collect();
                }
            }
            self.next_payload();
        }
    }

    pub fn msg(&mut self) -> Msg {
        parse(&self.frame())
    }

    pub fn move_to(&mut self, pos: [f32; 3]) {
        self.send(&c_move(pos));
    }

    pub fn chat(&mut self, text: &str) {
        self.send(&c_chat(text));
    }
}

/// The server frame at the start of `raw`: (opcode, payload, bytes used), if whole.
fn server_frame(raw: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let [b0, b1, rest @ ..] = raw else {
        return None;
    };
    assert_eq!(b1 & 0x80, 0, "server frames are not masked");
    assert_ne!(b0 & 0x80, 0, "the server sends whole messages");
    let (len, at) = match b1 & 0x7F {
        126 => (
            usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?])),
            4,
        ),
        127 => {
            let bytes: [u8; 8] = rest.get(..8)?.try_into().ok()?;
            (usize::try_from(u64::from_be_bytes(bytes)).ok()?, 10)
        }
        n => (usize::from(n), 2),
    };
    let payload = raw.get(at..at + len)?;
    Some((b0 & 0x0F, payload.to_vec(), at + len))
}
