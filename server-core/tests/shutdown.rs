//! Shutdown stops accepting, flushes what is queued, closes sessions and joins the threads.

mod util;

use bytes::Bytes;
use server_core::{DisconnectReason, HandlerError, JobQueue, Service, Session, SessionHandler};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use util::*;

#[test]
fn shutdown_flushes_queued_packets_then_closes() {
    struct Burst(mpsc::Sender<String>);
    impl SessionHandler for Burst {
        fn on_packet(&mut self, s: &Session, _: &[u8]) -> Result<(), HandlerError> {
            for i in 0..100u16 {
                s.send(Bytes::from(frame(i, &[0; 100])));
            }
            Ok(())
        }
        fn on_disconnected(&mut self, _: &Session, r: &DisconnectReason) {
            let _ = self.0.send(r.to_string());
        }
    }
    let service = Service::builder().threads(2).build().unwrap();
    let (tx, rx) = mpsc::channel();
    let listener = service
        .listen("127.0.0.1:0".parse().unwrap(), move || Burst(tx.clone()))
        .unwrap();
    let addr = listener.local_addr();
    let mut c = connect(&listener);
    write_all(&mut c, &frame(1, b"go"));
    assert_eq!(read_frame(&mut c).unwrap(), frame(0, &[0; 100]));
    let started = Instant::now();
    service.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the linger time"
    );
    for i in 1..100u16 {
        assert_eq!(
            read_frame(&mut c).unwrap(),
            frame(i, &[0; 100]),
            "queued packet {i} delivered"
        );
    }
    assert!(closed_by_server(&mut c, TIMEOUT));
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), "service shutting down");
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "no longer accepting"
    );
}

#[test]
fn dropping_the_service_stops_it() {
    let (service, listener) = echo_server(Service::builder().threads(2));
    let mut c = connect(&listener);
    drop(service);
    assert!(closed_by_server(&mut c, TIMEOUT));
}

#[test]
fn shutdown_is_prompt_even_if_a_peer_never_reads() {
    struct Flood;
    impl SessionHandler for Flood {
        fn on_connected(&mut self, s: &Session) {
            let p = Bytes::from(frame(1, &[0; 60_000]));
            for _ in 0..50 {
                s.send(p.clone());
            }
        }
        fn on_packet(&mut self, _: &Session, _: &[u8]) -> Result<(), HandlerError> {
            Ok(())
        }
    }
    let service = Service::builder()
        .threads(1)
        .linger(Duration::from_millis(300))
        .build()
        .unwrap();
    let listener = service
        .listen("127.0.0.1:0".parse().unwrap(), || Flood)
        .unwrap();
    let _never_reads = connect(&listener);
    assert!(wait_until(TIMEOUT, || service.stats().sessions == 1));
    let started = Instant::now();
    service.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn timers_and_jobs_run_on_the_service_and_stop_with_the_queue() {
    let service = Service::builder().threads(2).build().unwrap();
    let queue = JobQueue::new(&service.handle(), Vec::<u32>::new());
    let (tx, rx) = mpsc::channel();
    queue
        .push_after(Duration::from_millis(30), |v| v.push(2))
        .unwrap();
    queue.push(|v| v.push(1));
    let tx2 = tx.clone();
    queue
        .push_after(Duration::from_millis(60), move |v| {
            tx2.send(v.clone()).unwrap()
        })
        .unwrap();
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), vec![1, 2]);
    // A timer whose queue is gone does nothing.
    let tx3 = tx.clone();
    queue
        .push_after(Duration::from_millis(20), move |_| {
            tx3.send(vec![99]).unwrap()
        })
        .unwrap();
    drop(queue);
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
}
