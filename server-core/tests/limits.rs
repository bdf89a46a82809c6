//! Limits that protect the server from its peers: sessions, send queues, idle peers.

mod util;

use bytes::Bytes;
use server_core::{DisconnectReason, HandlerError, Service, Session, SessionHandler};
use std::sync::mpsc;
use std::time::Duration;
use util::*;

#[test]
fn max_sessions_refuses_the_extra_and_keeps_the_rest() {
    let (_service, listener) = echo_server(Service::builder().threads(2).max_sessions(5));
    let mut admitted: Vec<_> = (0..5).map(|_| connect(&listener)).collect();
    assert!(wait_until(TIMEOUT, || listener.active_sessions() == 5));
    let mut extra = connect(&listener);
    assert!(
        closed_by_server(&mut extra, TIMEOUT),
        "the sixth is closed at once"
    );
    assert_eq!(listener.refused_sessions(), 1);
    for (i, c) in admitted.iter_mut().enumerate() {
        let f = frame(i as u16, b"ok");
        write_all(c, &f);
        assert_eq!(read_frame(c).unwrap(), f);
    }
    // A slot frees when a session leaves.
    drop(admitted.pop());
    assert!(wait_until(TIMEOUT, || listener.active_sessions() == 4));
    let mut next = connect(&listener);
    let f = frame(7, b"in");
    write_all(&mut next, &f);
    assert_eq!(read_frame(&mut next).unwrap(), f);
}

/// Floods its peer with 1 KiB frames on connect and reports how the session ended.
struct Flooder(mpsc::Sender<String>);

impl SessionHandler for Flooder {
    fn on_connected(&mut self, session: &Session) {
        let packet = Bytes::from(frame(1, &[0u8; 1020]));
        for _ in 0..20_000 {
            session.send(packet.clone());
        }
    }
    fn on_packet(&mut self, _: &Session, _: &[u8]) -> Result<(), HandlerError> {
        Ok(())
    }
    fn on_disconnected(&mut self, _: &Session, reason: &DisconnectReason) {
        let _ = self.0.send(match reason {
            DisconnectReason::SendQueueOverflow { .. } => "overflow".into(),
            other => other.to_string(),
        });
    }
}

#[test]
fn a_peer_that_never_reads_is_cut_off_at_the_send_queue_cap() {
    let service = Service::builder()
        .threads(1)
        .max_send_queue(256 * 1024)
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let listener = service
        .listen("127.0.0.1:0".parse().unwrap(), move || Flooder(tx.clone()))
        .unwrap();
    let _never_reads = connect(&listener);
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), "overflow");
    assert!(wait_until(TIMEOUT, || service.stats().sessions == 0));
}

#[test]
fn idle_sessions_are_closed() {
    let (_service, listener) = echo_server(
        Service::builder()
            .threads(1)
            .idle_timeout(Some(Duration::from_millis(200))),
    );
    let mut idle = connect(&listener);
    // A partial header counts as silence once it stalls.
    write_all(&mut idle, &[10]);
    assert!(closed_by_server(&mut idle, Duration::from_secs(3)));
}

#[test]
fn a_stalled_partial_frame_then_close_is_reported() {
    let service = Service::builder().threads(1).build().unwrap();
    let (tx, rx) = mpsc::channel();
    struct Report(mpsc::Sender<String>);
    impl SessionHandler for Report {
        fn on_packet(&mut self, _: &Session, _: &[u8]) -> Result<(), HandlerError> {
            Ok(())
        }
        fn on_disconnected(&mut self, _: &Session, reason: &DisconnectReason) {
            let _ = self.0.send(reason.to_string());
        }
    }
    let listener = service
        .listen("127.0.0.1:0".parse().unwrap(), move || Report(tx.clone()))
        .unwrap();
    let mut c = connect(&listener);
    write_all(&mut c, &[0x60, 0xEA, 1, 0, 1, 2, 3]); // promises 60,000 bytes
    drop(c);
    let reason = rx.recv_timeout(TIMEOUT).unwrap();
    assert!(reason.contains("incomplete frame"), "{reason}");
}

#[test]
fn a_handler_error_closes_only_that_session() {
    struct Picky;
    impl SessionHandler for Picky {
        fn on_packet(&mut self, s: &Session, f: &[u8]) -> Result<(), HandlerError> {
            if server_core::frame::packet_id(f) == Some(99) {
                return Err("packet 99 is not allowed".into());
            }
            s.send(Bytes::copy_from_slice(f));
            Ok(())
        }
    }
    let service = Service::builder().threads(2).build().unwrap();
    let listener = service
        .listen("127.0.0.1:0".parse().unwrap(), || Picky)
        .unwrap();
    let mut good = connect(&listener);
    let mut bad = connect(&listener);
    write_all(&mut bad, &frame(99, b""));
    assert!(closed_by_server(&mut bad, TIMEOUT));
    write_all(&mut good, &frame(1, b"x"));
    assert_eq!(read_frame(&mut good).unwrap(), frame(1, b"x"));
}
