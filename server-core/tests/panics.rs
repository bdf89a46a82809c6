//! Item 8 of `docs/reliability.md`: panics in game code are contained. A real `Service`
//! with a `JobQueue<Room>` (game-server's rooms are exactly this) and sessions over real
//! sockets: a job that panics is logged and the room keeps running later jobs that
//! broadcast; a handler whose `on_packet` panics has its session closed (logged), and the
//! other sessions are unaffected.
//!
//! Protocol of the test handler (packet id → action):
//! 1 join the room; 2 broadcast the body to the room (as id 2); 3 push a job that panics;
//! 4 panic in `on_packet` itself; 5 push a job that panics after changing the room.

mod util;

use bytes::Bytes;
use server_core::{DisconnectReason, HandlerError, JobQueue, Service, Session, SessionHandler};
use std::net::TcpStream;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use util::{closed_by_server, frame, read_frame, write_all};

static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let line = format!("{} {}", r.level(), r.args());
            eprintln!("[log] {line}");
            LOGS.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(line);
        }
    }
    fn flush(&self) {}
}

fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        log::set_logger(&Capture).expect("first logger of this test binary");
        log::set_max_level(log::LevelFilter::Warn);
    });
}

fn wait_for_log(needles: &[&str]) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let found = LOGS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .cloned();
        if found.is_some() || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The room: its members and how many broadcasts it has made.
#[derive(Default)]
struct Room {
    members: Vec<Session>,
    broadcasts: usize,
}

struct Player {
    room: JobQueue<Room>,
}

impl SessionHandler for Player {
    fn on_packet(&mut self, session: &Session, f: &[u8]) -> Result<(), HandlerError> {
        match server_core::frame::packet_id(f) {
            Some(1) => {
                let s = session.clone();
                self.room.push(move |r| r.members.push(s));
            }
            Some(2) => {
                let packet = Bytes::copy_from_slice(f);
                self.room.push(move |r| {
                    r.broadcasts += 1;
                    for m in &r.members {
                        m.send(packet.clone());
                    }
                });
            }
            Some(3) => self.room.push(|_| panic!("boom in a room job")),
            Some(4) => panic!("boom in on_packet"),
            Some(5) => self.room.push(|r| {
                r.broadcasts += 1000;
                panic!("boom after a change");
            }),
            _ => return Err("unknown packet".into()),
        }
        Ok(())
    }

    fn on_disconnected(&mut self, session: &Session, _: &DisconnectReason) {
        let s = session.clone();
        self.room.push(move |r| r.members.retain(|m| *m != s));
    }
}

fn start() -> (Service, std::net::SocketAddr, JobQueue<Room>) {
    capture_logs();
    let service = Service::builder().threads(2).build().expect("service");
    let room = JobQueue::new(&service.handle(), Room::default());
    let factory_room = room.clone();
    let listener = service
        .listen("127.0.0.1:0".parse().unwrap(), move || Player {
            room: factory_room.clone(),
        })
        .expect("listen");
    (service, listener.local_addr(), room)
}

/// Joins and waits until the room has `n` members.
fn join(addr: std::net::SocketAddr, room: &JobQueue<Room>, n: usize) -> TcpStream {
    let listener_addr = addr;
    let mut s = TcpStream::connect(listener_addr).unwrap();
    s.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    write_all(&mut s, &frame(1, &[]));
    let deadline = Instant::now() + util::TIMEOUT;
    loop {
        let (tx, rx) = std::sync::mpsc::channel();
        room.push(move |r| {
            let _ = tx.send(r.members.len());
        });
        if rx.recv_timeout(util::TIMEOUT).unwrap() == n {
            return s;
        }
        assert!(Instant::now() < deadline, "room never had {n} members");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn members_and_broadcasts(room: &JobQueue<Room>) -> (usize, usize) {
    let (tx, rx) = std::sync::mpsc::channel();
    room.push(move |r| {
        let _ = tx.send((r.members.len(), r.broadcasts));
    });
    rx.recv_timeout(util::TIMEOUT)
        .expect("the room still runs jobs")
}

#[test]
fn a_panicking_job_is_logged_and_the_room_keeps_serving() {
    let (service, addr, room) = start();
    let mut a = join(addr, &room, 1);
    let mut b = join(addr, &room, 2);

    // 50 rounds of: a job that panics, then a broadcast. Every broadcast reaches both, in
    // order. (One sender: see docs/reliability.md on the cross-thread ordering bug.)
    for i in 0..50u8 {
        write_all(&mut b, &frame(3, &[]));
        write_all(&mut b, &frame(2, &[i]));
    }
    for s in [&mut a, &mut b] {
        for i in 0..50u8 {
            assert_eq!(read_frame(s).expect("broadcast"), frame(2, &[i]));
        }
    }
    // A job that panics after changing the state: the change stays (no rollback), the
    // queue goes on.
    write_all(&mut b, &frame(5, &[]));
    write_all(&mut b, &frame(2, b"after"));
    assert_eq!(read_frame(&mut b).unwrap(), frame(2, b"after"));
    assert_eq!(members_and_broadcasts(&room), (2, 50 + 1000 + 1));

    assert!(wait_for_log(&["a job panicked: boom in a room job"]).is_some());
    assert!(wait_for_log(&["a job panicked: boom after a change"]).is_some());
    // Panicking jobs do not close the sessions whose packets pushed them.
    assert!(!closed_by_server(&mut a, Duration::from_millis(100)));
    assert_eq!(service.stats().sessions, 2);
}

#[test]
fn a_panicking_on_packet_closes_only_that_session() {
    let (service, addr, room) = start();
    let mut a = join(addr, &room, 1);
    let mut b = join(addr, &room, 2);
    let mut c = join(addr, &room, 3);
    let c_marker = format!("({}) closed:", c.local_addr().unwrap());

    write_all(&mut c, &frame(4, &[]));
    assert!(
        closed_by_server(&mut c, Duration::from_secs(2)),
        "the panicking session is closed within 2 s"
    );
    let line = wait_for_log(&[&c_marker, "on_packet panicked: boom in on_packet"]);
    assert!(
        line.is_some_and(|l| l.starts_with("ERROR")),
        "logged at error with the session id and the panic's message"
    );

    // The others keep talking through the room; c has left it.
    write_all(&mut a, &frame(2, b"still here"));
    for s in [&mut a, &mut b] {
        assert_eq!(read_frame(s).unwrap(), frame(2, b"still here"));
    }
    assert!(util::wait_until(Duration::from_secs(2), || {
        members_and_broadcasts(&room).0 == 2 && service.stats().sessions == 2
    }));
    // New sessions still come in.
    let mut d = connect_listener(addr);
    write_all(&mut d, &frame(1, &[]));
    write_all(&mut d, &frame(2, b"hello"));
    assert_eq!(read_frame(&mut d).unwrap(), frame(2, b"hello"));
}

fn connect_listener(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    s
}
