//! Flow control over real sockets: in-flight guards pause and resume reading, rate limits
//! throttle / drop / disconnect, and the send cap judges the reader, not the burst.

mod util;

use bytes::Bytes;
use server_core::{
    DisconnectKind, DisconnectReason, Excess, HandlerError, InFlight, ListenOptions, RateLimit,
    Service, Session, SessionHandler,
};
use std::io::{Read, Write};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use util::{closed_by_server, connect, frame, read_frame, wait_until, write_all, TIMEOUT};

/// Echoes, and reports its disconnect reason.
struct Echo(Sender<String>);

impl SessionHandler for Echo {
    fn on_packet(&mut self, s: &Session, f: &[u8]) -> Result<(), HandlerError> {
        s.send(Bytes::copy_from_slice(f));
        Ok(())
    }
    fn on_disconnected(&mut self, _: &Session, reason: &DisconnectReason) {
        let _ = self.0.send(reason.to_string());
    }
}

fn burst(count: u16) -> Vec<u8> {
    (0..count).flat_map(|i| frame(i, b"m")).collect()
}

#[test]
fn in_flight_guards_pause_reading_until_the_work_is_done() {
    /// Keeps a guard per packet, as a room would until it has run the player's job, and
    /// notes the most guards it ever saw alive.
    struct Holder(Arc<Mutex<(Vec<InFlight>, u32)>>);
    impl SessionHandler for Holder {
        fn on_packet(&mut self, s: &Session, _: &[u8]) -> Result<(), HandlerError> {
            let mut held = self.0.lock().unwrap();
            held.0.push(s.in_flight());
            held.1 = held.1.max(s.in_flight_count());
            Ok(())
        }
    }
    let service = Service::builder().threads(1).build().unwrap();
    let held = Arc::new(Mutex::new((Vec::new(), 0)));
    let for_factory = Arc::clone(&held);
    let listener = service
        .listen_with(
            "127.0.0.1:0".parse().unwrap(),
            ListenOptions::new().max_in_flight(4),
            move || Holder(Arc::clone(&for_factory)),
        )
        .unwrap();
    let mut c = connect(&listener);
    write_all(&mut c, &burst(20));
    assert!(wait_until(TIMEOUT, || held.lock().unwrap().0.len() == 5));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        held.lock().unwrap().0.len(),
        5,
        "paused once more than 4 were in flight"
    );
    assert_eq!(service.stats().packets_in, 5, "the other 15 wait, unread");

    // The work finishes, on another thread, again and again: reading resumes by itself.
    assert!(wait_until(TIMEOUT, || {
        let done: Vec<InFlight> = std::mem::take(&mut held.lock().unwrap().0);
        std::thread::spawn(move || drop(done)).join().unwrap();
        service.stats().packets_in == 20
    }));
    assert_eq!(
        held.lock().unwrap().1,
        5,
        "never more than the limit + 1 alive"
    );
    assert!(service.stats().read_pauses >= 4);
}

#[test]
fn throttling_slows_a_fast_sender_and_loses_nothing() {
    let service = Service::builder()
        .threads(1)
        .rate_limit(Some(RateLimit::new(100, 1 << 20).packet_burst(10)))
        .build()
        .unwrap();
    let (tx, _reasons) = mpsc::channel();
    let listener = service
        .listen("127.0.0.1:0".parse().unwrap(), move || Echo(tx.clone()))
        .unwrap();
    let mut c = connect(&listener);
    let started = Instant::now();
    write_all(&mut c, &burst(60));
    for i in 0..60 {
        assert_eq!(
            read_frame(&mut c).unwrap(),
            frame(i, b"m"),
            "in order, none lost"
        );
    }
    // 10 at once, then 50 at 100/s: at least 0.5 s (a lower bound of the limiter's
    // arithmetic, not a performance claim).
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    let stats = service.stats();
    assert!(stats.rate_limited_packets >= 1);
    assert_eq!(stats.rate_limit_episodes, 1, "one episode, logged once");
    assert_eq!(stats.sessions, 1, "throttled, not cut");
}

#[test]
fn dropping_discards_the_excess_and_counts_it() {
    let service = Service::builder()
        .threads(1)
        .rate_limit(Some(
            RateLimit::new(10, 1 << 20)
                .packet_burst(10)
                .on_excess(Excess::Drop),
        ))
        .build()
        .unwrap();
    let (tx, _reasons) = mpsc::channel();
    let listener = service
        .listen("127.0.0.1:0".parse().unwrap(), move || Echo(tx.clone()))
        .unwrap();
    let mut c = connect(&listener);
    write_all(&mut c, &burst(100));
    write_all(&mut c, &frame(999, b"last"));
    assert!(wait_until(TIMEOUT, || service.stats().packets_in
        + service.stats().rate_limited_packets
        == 101));
    let stats = service.stats();
    assert!(
        (10..=13).contains(&stats.packets_in),
        "the burst of 10 (and what refilled meanwhile): {}",
        stats.packets_in
    );
    for i in 0..10 {
        assert_eq!(read_frame(&mut c).unwrap(), frame(i, b"m"));
    }
}

#[test]
fn sustained_excess_is_disconnected_under_the_disconnect_policy() {
    let grace = Duration::from_millis(300);
    let service = Service::builder()
        .threads(1)
        .rate_limit(Some(
            RateLimit::new(50, 1 << 20)
                .packet_burst(5)
                .on_excess(Excess::Disconnect { after: grace }),
        ))
        .build()
        .unwrap();
    let (tx, reasons) = mpsc::channel();
    let listener = service
        .listen("127.0.0.1:0".parse().unwrap(), move || Echo(tx.clone()))
        .unwrap();
    let mut flooder = connect(&listener);
    let mut honest = connect(&listener);
    let started = Instant::now();
    // Keep flooding (never a quiet second) until cut.
    let cut = loop {
        if flooder.write_all(&burst(100)).is_err() {
            break true;
        }
        if started.elapsed() > TIMEOUT {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(cut || closed_by_server(&mut flooder, TIMEOUT));
    let reason = reasons.recv_timeout(TIMEOUT).unwrap();
    assert!(reason.starts_with("rate limited"), "{reason}");
    assert_eq!(
        service.stats().disconnects.get(DisconnectKind::RateLimited),
        1
    );
    write_all(&mut honest, &frame(1, b"fine"));
    assert_eq!(read_frame(&mut honest).unwrap(), frame(1, b"fine"));
}

/// On its first packet, queues `burst` bytes to its own session at once.
struct Burster {
    burst: usize,
    reasons: Sender<String>,
}

impl SessionHandler for Burster {
    fn on_packet(&mut self, s: &Session, _: &[u8]) -> Result<(), HandlerError> {
        let chunk = Bytes::from(frame(1, &[7; 60_000]));
        for _ in 0..self.burst / chunk.len() {
            s.send(chunk.clone());
        }
        Ok(())
    }
    fn on_disconnected(&mut self, _: &Session, reason: &DisconnectReason) {
        let _ = self.reasons.send(reason.to_string());
    }
}

/// One I/O thread, a 1 MiB send cap and a 500 ms stall timeout, with handlers from
/// `factory`; the handlers report disconnect reasons on the returned channel.
fn slow_reader_service<H: SessionHandler>(
    factory: impl Fn(Sender<String>) -> H + Send + Sync + 'static,
) -> (Service, server_core::Listener, mpsc::Receiver<String>) {
    let service = Service::builder()
        .threads(1)
        .max_send_queue(1 << 20)
        .send_stall_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let (tx, reasons) = mpsc::channel();
    let listener = service
        .listen("127.0.0.1:0".parse().unwrap(), move || factory(tx.clone()))
        .unwrap();
    (service, listener, reasons)
}

fn burster_service(burst: usize) -> (Service, server_core::Listener, mpsc::Receiver<String>) {
    slow_reader_service(move |reasons| Burster { burst, reasons })
}

#[test]
fn a_burst_larger_than_the_cap_reaches_a_reader_that_keeps_up() {
    // Three times the 1 MiB soft cap at once, under the 4 MiB hard cap.
    let (service, listener, reasons) = burster_service(3 << 20);
    let mut reader = connect(&listener);
    write_all(&mut reader, &frame(1, b"go"));
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    while received < (3 << 20) / 60_004 * 60_004 {
        received += reader.read(&mut buf).expect("the reader keeps its session");
    }
    assert!(
        reasons.recv_timeout(Duration::from_millis(700)).is_err(),
        "not cut"
    );
    assert_eq!(service.stats().sessions, 1);
}

#[test]
fn a_reader_that_stays_behind_is_cut_after_the_stall_timeout() {
    /// Streams 64 KB every 20 ms (3.2 MB/s) until its session is closed: once the kernel's
    /// buffers are full, the backlog passes the 1 MiB soft cap and stays there, while the
    /// 4 MiB hard cap is a second away.
    struct Streamer(Sender<String>);
    impl SessionHandler for Streamer {
        fn on_packet(&mut self, s: &Session, _: &[u8]) -> Result<(), HandlerError> {
            let s = s.clone();
            std::thread::spawn(move || {
                let chunk = Bytes::from(frame(1, &[7; 64_000]));
                let deadline = Instant::now() + TIMEOUT;
                while s.is_connected() && Instant::now() < deadline {
                    s.send(chunk.clone());
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
            Ok(())
        }
        fn on_disconnected(&mut self, _: &Session, reason: &DisconnectReason) {
            let _ = self.0.send(reason.to_string());
        }
    }
    let (service, listener, reasons) = slow_reader_service(Streamer);
    let mut never_reads = connect(&listener);
    write_all(&mut never_reads, &frame(1, b"go"));
    let reason = reasons.recv_timeout(TIMEOUT).unwrap();
    assert!(reason.starts_with("slow reader"), "{reason}");
    assert_eq!(
        service.stats().disconnects.get(DisconnectKind::SlowReader),
        1
    );
}

#[test]
fn jobs_reach_handlers_and_wrong_or_closed_sessions_are_errors() {
    #[derive(Default)]
    struct Player {
        room: Option<u32>,
    }
    impl SessionHandler for Player {
        fn on_packet(&mut self, s: &Session, _: &[u8]) -> Result<(), HandlerError> {
            s.send(Bytes::from(frame(5, &[self.room.unwrap_or(0) as u8])));
            Ok(())
        }
    }
    let service = Service::builder().threads(2).build().unwrap();
    let (session_tx, sessions) = mpsc::channel();
    struct Announce(Sender<Session>, Player);
    impl SessionHandler for Announce {
        fn on_connected(&mut self, s: &Session) {
            let _ = self.0.send(s.clone());
        }
        fn on_packet(&mut self, s: &Session, f: &[u8]) -> Result<(), HandlerError> {
            self.1.on_packet(s, f)
        }
    }
    let listener = service
        .listen("127.0.0.1:0".parse().unwrap(), move || {
            Announce(session_tx.clone(), Player::default())
        })
        .unwrap();
    let mut c = connect(&listener);
    let session = sessions.recv_timeout(TIMEOUT).unwrap();

    // From a job on any thread: set the room on the handler, on its own loop.
    let room = server_core::JobQueue::new(&service.handle(), ());
    let (done_tx, done) = mpsc::channel();
    let s = session.clone();
    room.push(move |_| {
        let result = s.with_handler(|announce: &mut Announce, _| announce.1.room = Some(42));
        done_tx.send(result).unwrap();
    });
    done.recv_timeout(TIMEOUT).unwrap().unwrap();
    // Calls run in order: when this one reports, the first has been applied.
    let (seen_tx, seen) = mpsc::channel();
    session
        .with_handler(move |announce: &mut Announce, _| seen_tx.send(announce.1.room).unwrap())
        .unwrap();
    assert_eq!(seen.recv_timeout(TIMEOUT).unwrap(), Some(42));
    write_all(&mut c, &frame(1, b"?"));
    assert_eq!(read_frame(&mut c).unwrap(), frame(5, &[42]));

    let wrong = session.with_handler(|_: &mut Player, _| {});
    assert!(
        matches!(
            wrong,
            Err(server_core::HandlerCallError::WrongHandler { .. })
        ),
        "{wrong:?}"
    );
    drop(c);
    assert!(wait_until(TIMEOUT, || !session.is_connected()));
    let closed = session.with_handler(|_: &mut Announce, _| {});
    assert_eq!(
        closed,
        Err(server_core::HandlerCallError::Closed(session.id()))
    );
}

#[test]
fn a_closed_listener_accepts_nothing_while_its_sessions_go_on() {
    let service = Service::builder().threads(2).build().unwrap();
    let (tx, _reasons) = mpsc::channel();
    let listener = service
        .listen("127.0.0.1:0".parse().unwrap(), move || Echo(tx.clone()))
        .unwrap();
    let mut before = connect(&listener);
    write_all(&mut before, &frame(1, b"a"));
    assert_eq!(read_frame(&mut before).unwrap(), frame(1, b"a"));
    listener.close();
    assert!(wait_until(TIMEOUT, || {
        std::net::TcpStream::connect_timeout(&listener.local_addr(), Duration::from_millis(200))
            .is_err()
    }));
    write_all(&mut before, &frame(2, b"b"));
    assert_eq!(read_frame(&mut before).unwrap(), frame(2, b"b"));
    assert_eq!(listener.active_sessions(), 1);
}

#[test]
fn queued_bytes_shows_a_backlog_before_the_cap_judges_it() {
    let service = Service::builder().threads(1).build().unwrap();
    let (session_tx, sessions) = mpsc::channel();
    struct Announce(Sender<Session>);
    impl SessionHandler for Announce {
        fn on_connected(&mut self, s: &Session) {
            let _ = self.0.send(s.clone());
        }
        fn on_packet(&mut self, _: &Session, _: &[u8]) -> Result<(), HandlerError> {
            Ok(())
        }
    }
    let listener = service
        .listen("127.0.0.1:0".parse().unwrap(), move || {
            Announce(session_tx.clone())
        })
        .unwrap();
    let _never_reads = connect(&listener);
    let session = sessions.recv_timeout(TIMEOUT).unwrap();
    assert_eq!(session.queued_bytes(), 0);
    let chunk = Bytes::from(frame(1, &[0; 60_000]));
    for _ in 0..170 {
        session.send(chunk.clone());
    }
    // 10 MB: the kernel's loopback buffers take a few MB; the rest waits in our queue.
    assert!(wait_until(TIMEOUT, || session.queued_bytes() > 500_000));
    assert!(wait_until(TIMEOUT, || service.stats().queued_bytes > 500_000));
}
