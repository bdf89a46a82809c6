//! Shared helpers for the black-box tests: an echo handler, blocking frame clients with
//! timeouts, and bounded waiting.
#![allow(dead_code, unreachable_pub)]

use bytes::Bytes;
use server_core::{HandlerError, Listener, Service, ServiceBuilder, Session, SessionHandler};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Sends every frame back unchanged.
pub struct Echo;

impl SessionHandler for Echo {
    fn on_packet(&mut self, session: &Session, frame: &[u8]) -> Result<(), HandlerError> {
        session.send(Bytes::copy_from_slice(frame));
        Ok(())
    }
}

pub fn echo_server(builder: ServiceBuilder) -> (Service, Listener) {
    let service = builder.build().expect("service starts");
    let listener = service
        .listen("127.0.0.1:0".parse().unwrap(), || Echo)
        .expect("listen on loopback");
    (service, listener)
}

pub fn frame(id: u16, body: &[u8]) -> Vec<u8> {
    let mut f = server_core::frame::header(id, body.len()).unwrap().to_vec();
    f.extend_from_slice(body);
    f
}

pub fn connect(listener: &Listener) -> TcpStream {
    let s = TcpStream::connect(listener.local_addr()).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads one whole frame (blocking, with the socket's timeout).
pub fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut header = [0u8; 4];
    s.read_exact(&mut header)?;
    let size = usize::from(u16::from_le_bytes([header[0], header[1]]));
    let mut f = header.to_vec();
    f.resize(size.max(4), 0);
    s.read_exact(&mut f[4..])?;
    Ok(f)
}

/// True once the server has closed `s` (EOF or reset) within the timeout.
pub fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
    false
}

pub fn write_all(s: &mut TcpStream, bytes: &[u8]) {
    s.write_all(bytes).expect("write");
}

/// Polls `cond` every millisecond until it holds or `within` passes.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}
