//! A fault inside server-core itself (injected with the `fault-injection` feature: the loop
//! panics outside every guard) stops one I/O thread, and nothing is lost silently: its
//! sessions are reported disconnected (`LoopDied`), its listener, timers and JobQueue
//! hand-offs move to a live thread, the service reports the dead loop, and work routed
//! afterwards either runs or gets an `Err`.

mod util;

use bytes::Bytes;
use server_core::{
    DisconnectKind, DisconnectReason, HandlerError, JobQueue, Service, Session, SessionHandler,
    SpawnError,
};
use std::sync::mpsc::{self, Sender};
use std::time::Duration;
use util::{closed_by_server, connect, frame, read_frame, wait_until, write_all, TIMEOUT};

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

#[test]
fn a_dead_loop_hands_over_its_work_and_reports_its_sessions() {
    let service = Service::builder()
        .threads(2)
        .job_budget(Duration::ZERO) // every JobQueue job hands off to an I/O thread
        .build()
        .unwrap();
    let handle = service.handle();
    let (tx, reasons) = mpsc::channel();
    let listener = service
        .listen("127.0.0.1:0".parse().unwrap(), move || Echo(tx.clone()))
        .unwrap();
    let mut clients: Vec<_> = (0..6).map(|_| connect(&listener)).collect();
    for c in &mut clients {
        write_all(c, &frame(1, b"hi"));
        assert_eq!(read_frame(c).unwrap(), frame(1, b"hi"));
    }
    let on_loop_0 = handle.loop_status()[0].sessions;
    assert_eq!(on_loop_0, 3, "accepted sessions are spread over both loops");

    // Work already accepted by both loops when the fault hits.
    let (fired_tx, fired) = mpsc::channel();
    for i in 0..10 {
        let fired_tx = fired_tx.clone();
        handle
            .spawn_after(Duration::from_millis(100), move || {
                fired_tx.send(i).unwrap()
            })
            .unwrap();
    }
    assert!(handle.inject_loop_fault(0));

    // Its sessions hear about it, and their clients are closed.
    for _ in 0..on_loop_0 {
        let reason = reasons.recv_timeout(TIMEOUT).unwrap();
        assert_eq!(reason, DisconnectReason::LoopDied.to_string());
    }
    let mut survivors: Vec<_> = clients
        .into_iter()
        .filter_map(|mut c| (!closed_by_server(&mut c, Duration::from_millis(300))).then_some(c))
        .collect();
    assert_eq!(
        survivors.len(),
        6 - on_loop_0,
        "exactly the dead loop's clients are closed"
    );
    let stats = service.stats();
    assert_eq!((stats.loops, stats.loops_alive), (2, 1));
    assert_eq!(
        stats.disconnects.get(DisconnectKind::LoopDied),
        on_loop_0 as u64
    );
    assert!(!handle.loop_status()[0].alive);

    // Every timer accepted before the fault still fires.
    let mut seen: Vec<i32> = (0..10)
        .map(|_| fired.recv_timeout(TIMEOUT).expect("a timer fired"))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());

    // Work routed afterwards runs on the live loop.
    for i in 10..20 {
        let fired_tx = fired_tx.clone();
        handle.spawn(move || fired_tx.send(i).unwrap()).unwrap();
    }
    for _ in 10..20 {
        fired.recv_timeout(TIMEOUT).expect("a task ran");
    }
    let counter = JobQueue::new(&handle, 0u32);
    for _ in 0..200 {
        counter.push(|n| *n += 1);
    }
    let (count_tx, count) = mpsc::channel();
    counter.push(move |n| count_tx.send(*n).unwrap());
    assert_eq!(
        count.recv_timeout(TIMEOUT).unwrap(),
        200,
        "no hand-off stranded"
    );

    // The listener still accepts (wherever it lives now) and the survivors still echo.
    let mut newcomer = connect(&listener);
    write_all(&mut newcomer, &frame(2, b"new"));
    assert_eq!(read_frame(&mut newcomer).unwrap(), frame(2, b"new"));
    for c in &mut survivors {
        c.set_read_timeout(Some(TIMEOUT)).unwrap();
        write_all(c, &frame(3, b"again"));
        assert_eq!(read_frame(c).unwrap(), frame(3, b"again"));
    }
    assert!(wait_until(TIMEOUT, || service.stats().sessions == survivors.len() + 1));
}

#[test]
fn with_every_loop_dead_work_is_refused_not_lost() {
    let service = Service::builder().threads(1).build().unwrap();
    let handle = service.handle();
    let (tx, _reasons) = mpsc::channel();
    let listener = service
        .listen("127.0.0.1:0".parse().unwrap(), move || Echo(tx.clone()))
        .unwrap();
    let (ran_tx, ran) = mpsc::channel();
    let early = ran_tx.clone();
    handle
        .spawn_after(Duration::from_secs(60), move || {
            early.send("late timer").unwrap()
        })
        .unwrap();
    assert!(handle.inject_loop_fault(0));
    assert!(wait_until(TIMEOUT, || service.stats().loops_alive == 0));

    assert_eq!(handle.spawn(|| {}), Err(SpawnError::NoLiveLoop));
    assert_eq!(
        handle.spawn_after(Duration::from_millis(1), || {}),
        Err(SpawnError::NoLiveLoop)
    );
    let queue = JobQueue::new(&handle, 0u32);
    assert_eq!(
        queue.push_after(Duration::from_millis(1), |_| {}),
        Err(SpawnError::NoLiveLoop)
    );
    // A JobQueue still runs what is pushed to it: on the pushing thread.
    queue.push(move |n| {
        *n += 1;
        ran_tx.send("job").unwrap();
    });
    assert_eq!(ran.recv_timeout(TIMEOUT).unwrap(), "job");
    assert!(service
        .listen("127.0.0.1:0".parse().unwrap(), || Echo(mpsc::channel().0))
        .is_err());
    assert!(service
        .connect(listener.local_addr(), Echo(mpsc::channel().0))
        .is_err());
    // The timer accepted before the fault had nowhere to go: reported in the log, not run.
    assert!(ran.recv_timeout(Duration::from_millis(100)).is_err());
}
