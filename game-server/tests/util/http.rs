//! A blocking HTTP/1.1 client for the operations endpoint: one request per connection.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

/// A response as the test sees it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The header lines, as sent.
    pub head: String,
    pub body: String,
}

/// `METHOD path` on `addr`; reads until the server closes.
pub fn request(addr: SocketAddr, method: &str, path: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).expect("connect to the endpoint");
    stream.set_read_timeout(Some(super::TIMEOUT)).unwrap();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("send request");
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw) {
        assert_eq!(
            e.kind(),
            ErrorKind::ConnectionReset,
            "reading the answer: {e}"
        );
    }
    let raw = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .expect("a blank line after the head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// `GET path` on `addr`.
pub fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path)
}
