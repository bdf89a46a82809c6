//! Many sessions at once, over server-core's own connector.

mod util;

use bytes::Bytes;
use server_core::{DisconnectReason, HandlerError, Service, Session, SessionHandler};
use std::sync::mpsc;
use std::time::Duration;
use util::*;

enum Event {
    Echoed(usize),
    ConnectFailed,
    Disconnected,
}

/// Sends one frame carrying its index when connected and reports the echo.
struct Client {
    index: usize,
    events: mpsc::Sender<Event>,
}

impl SessionHandler for Client {
    fn on_connected(&mut self, session: &Session) {
        session.send(Bytes::from(frame(1, &(self.index as u32).to_le_bytes())));
    }
    fn on_packet(&mut self, _: &Session, f: &[u8]) -> Result<(), HandlerError> {
        let index = u32::from_le_bytes(f[4..8].try_into()?) as usize;
        let _ = self.events.send(Event::Echoed(index));
        Ok(())
    }
    fn on_disconnected(&mut self, _: &Session, _: &DisconnectReason) {
        let _ = self.events.send(Event::Disconnected);
    }
    fn on_connect_failed(&mut self, _: &std::io::Error) {
        let _ = self.events.send(Event::ConnectFailed);
    }
}

#[test]
fn a_thousand_concurrent_sessions_each_get_their_own_echo() {
    const N: usize = 1000;
    let (server, listener) = echo_server(Service::builder().threads(2));
    let client = Service::builder().threads(2).build().unwrap();
    let (tx, rx) = mpsc::channel();
    client
        .connect_many(listener.local_addr(), N, |index| Client {
            index,
            events: tx.clone(),
        })
        .unwrap();
    let mut seen = vec![false; N];
    for _ in 0..N {
        match rx
            .recv_timeout(Duration::from_secs(20))
            .expect("every session echoes")
        {
            Event::Echoed(i) => {
                assert!(!seen[i], "echo {i} delivered twice");
                seen[i] = true;
            }
            Event::ConnectFailed => panic!("connect failed"),
            Event::Disconnected => panic!("unexpected disconnect"),
        }
    }
    assert!(wait_until(TIMEOUT, || server.stats().sessions == N));
    assert_eq!(listener.active_sessions(), N);
    client.shutdown();
    assert!(
        wait_until(TIMEOUT, || server.stats().sessions == 0),
        "server notices every close"
    );
    assert_eq!(listener.active_sessions(), 0);
}

#[test]
fn connect_refused_reaches_the_handler() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let client = Service::builder().threads(1).build().unwrap();
    let (tx, rx) = mpsc::channel();
    client
        .connect(
            port,
            Client {
                index: 0,
                events: tx,
            },
        )
        .unwrap();
    assert!(matches!(rx.recv_timeout(TIMEOUT), Ok(Event::ConnectFailed)));
}

#[test]
fn sends_from_other_threads_are_delivered_in_order() {
    let (_server, listener) = echo_server(Service::builder().threads(2));
    struct Keep(mpsc::Sender<Session>);
    impl SessionHandler for Keep {
        fn on_connected(&mut self, s: &Session) {
            let _ = self.0.send(s.clone());
        }
        fn on_packet(&mut self, _: &Session, _: &[u8]) -> Result<(), HandlerError> {
            Ok(())
        }
    }
    // A server whose handler hands its session to this thread.
    let service = Service::builder().threads(2).build().unwrap();
    let (tx, rx) = mpsc::channel();
    let l = service
        .listen("127.0.0.1:0".parse().unwrap(), move || Keep(tx.clone()))
        .unwrap();
    drop(listener);
    let mut c = connect(&l);
    let session = rx.recv_timeout(TIMEOUT).unwrap();
    let sender = std::thread::spawn(move || {
        for i in 0..500u16 {
            session.send(Bytes::from(frame(i, &[])));
        }
    });
    for i in 0..500u16 {
        assert_eq!(read_frame(&mut c).unwrap(), frame(i, &[]));
    }
    sender.join().unwrap();
}
