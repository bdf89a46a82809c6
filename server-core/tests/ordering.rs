//! A JobQueue's output keeps its order while sessions on both I/O threads feed it.
//!
//! This exercises the common path; the race where the queue goes idle on one thread and is
//! picked up by the other before the first has forwarded its staged packets is narrow, and
//! the sharper regression test for it is game-server's
//! `reliability::a_newcomers_first_packet_is_its_player_list_even_in_a_crowd` (it fails
//! without `event_loop::publish_staged`; this one does not reliably).

mod util;

use bytes::Bytes;
use server_core::{HandlerError, JobQueue, Service, Session, SessionHandler};
use std::sync::mpsc;
use util::*;

/// Shared room-like state: the session that observes, and the next sequence number.
#[derive(Default)]
struct Counter {
    observer: Option<Session>,
    next: u32,
}

/// Packet id 1 makes this session the observer; any other packet makes the queue send the
/// observer the next number. Sessions are spread over both I/O threads, so the queue runs
/// on whichever thread pushed to it while it was idle.
struct Pusher {
    queue: JobQueue<Counter>,
    ready: mpsc::Sender<()>,
}

impl SessionHandler for Pusher {
    fn on_packet(&mut self, session: &Session, packet: &[u8]) -> Result<(), HandlerError> {
        if server_core::frame::packet_id(packet) == Some(1) {
            let (session, ready) = (session.clone(), self.ready.clone());
            self.queue.push(move |c| {
                c.observer = Some(session);
                let _ = ready.send(());
            });
        } else {
            self.queue.push(|c| {
                if let Some(observer) = &c.observer {
                    observer.send(Bytes::from(frame(2, &c.next.to_le_bytes())));
                    c.next += 1;
                }
            });
        }
        Ok(())
    }
}

#[test]
fn numbers_sent_by_one_queue_from_two_threads_arrive_in_order() {
    const PUSHERS: usize = 4;
    const EACH: usize = 1_000;
    let service = Service::builder().threads(2).build().unwrap();
    let queue = JobQueue::new(&service.handle(), Counter::default());
    let (ready_tx, ready_rx) = mpsc::channel();
    let listener = service
        .listen("127.0.0.1:0".parse().unwrap(), move || Pusher {
            queue: queue.clone(),
            ready: ready_tx.clone(),
        })
        .unwrap();
    let mut observer = connect(&listener);
    write_all(&mut observer, &frame(1, b""));
    ready_rx.recv_timeout(TIMEOUT).unwrap();
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|_| {
            let mut c = connect(&listener);
            std::thread::spawn(move || {
                let burst: Vec<u8> = (0..EACH).flat_map(|_| frame(3, b"")).collect();
                for chunk in burst.chunks(400) {
                    write_all(&mut c, chunk);
                }
                c
            })
        })
        .collect();
    for expected in 0..(PUSHERS * EACH) as u32 {
        let f = read_frame(&mut observer).expect("every number arrives");
        let got = u32::from_le_bytes(f[4..8].try_into().unwrap());
        assert_eq!(
            got, expected,
            "numbers must arrive in the order the queue sent them"
        );
    }
    for p in pushers {
        drop(p.join().unwrap());
    }
}
