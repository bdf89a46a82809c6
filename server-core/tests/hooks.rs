//! A panic in any user hook is contained: on a service with ONE I/O thread (so a lost
//! thread would take everyone with it), the panicking session is closed with
//! `DisconnectReason::Panicked`, a bystander session on the same thread keeps echoing, new
//! connections are still accepted, and the panic is counted. Hooks without a session
//! (factory, `on_connect_failed`, `on_disconnected`, drop) are logged and counted.

mod util;

use bytes::Bytes;
use server_core::{
    DisconnectKind, DisconnectReason, HandlerError, Hook, JobQueue, Listener, Service, Session,
    SessionHandler,
};
use std::collections::VecDeque;
use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use util::{closed_by_server, connect, frame, read_frame, wait_until, write_all, TIMEOUT};

/// Where a [`Probe`] panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PanicIn {
    Nothing,
    Factory,
    Connected,
    Packet,
    Send,
    Disconnected,
    ConnectFailed,
    Drop,
}

/// Echoes frames; reports its disconnect reason; panics where it was told to. Packet id 7
/// arms the `on_send` panic.
struct Probe {
    panic_in: PanicIn,
    armed_send: bool,
    events: Sender<String>,
}

impl SessionHandler for Probe {
    fn on_connected(&mut self, _: &Session) {
        if self.panic_in == PanicIn::Connected {
            panic!("boom in on_connected");
        }
    }

    fn on_packet(&mut self, session: &Session, f: &[u8]) -> Result<(), HandlerError> {
        if self.panic_in == PanicIn::Packet {
            panic!("boom in on_packet");
        }
        if self.panic_in == PanicIn::Send && server_core::frame::packet_id(f) == Some(7) {
            self.armed_send = true;
        }
        session.send(Bytes::copy_from_slice(f));
        Ok(())
    }

    fn on_send(&mut self, _: &Session, _: usize) {
        if self.armed_send {
            panic!("boom in on_send");
        }
    }

    fn on_disconnected(&mut self, _: &Session, reason: &DisconnectReason) {
        let _ = self.events.send(reason.to_string());
        if self.panic_in == PanicIn::Disconnected {
            panic!("boom in on_disconnected");
        }
    }

    fn on_connect_failed(&mut self, error: &std::io::Error) {
        let _ = self.events.send(format!("connect failed: {error}"));
        if self.panic_in == PanicIn::ConnectFailed {
            panic!("boom in on_connect_failed");
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if self.panic_in == PanicIn::Drop && !std::thread::panicking() {
            panic!("boom in drop");
        }
    }
}

struct Setup {
    service: Service,
    listener: Listener,
    /// What the next accepted connections do, in order (then `Nothing`).
    plan: Arc<Mutex<VecDeque<PanicIn>>>,
    events: Receiver<String>,
    tx: Sender<String>,
}

fn one_loop_service() -> Setup {
    let service = Service::builder().threads(1).build().unwrap();
    let plan = Arc::new(Mutex::new(VecDeque::new()));
    let (tx, events) = mpsc::channel();
    let (factory_plan, factory_tx) = (Arc::clone(&plan), tx.clone());
    let listener = service
        .listen("127.0.0.1:0".parse().unwrap(), move || {
            let panic_in = factory_plan
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(PanicIn::Nothing);
            if panic_in == PanicIn::Factory {
                panic!("boom in the factory");
            }
            Probe {
                panic_in,
                armed_send: false,
                events: factory_tx.clone(),
            }
        })
        .unwrap();
    Setup {
        service,
        listener,
        plan,
        events,
        tx,
    }
}

impl Setup {
    fn next_connection(&self, panic_in: PanicIn) -> TcpStream {
        self.plan.lock().unwrap().push_back(panic_in);
        connect(&self.listener)
    }

    /// The bystander and a newcomer both still get their echo.
    fn everyone_else_is_served(&self, bystander: &mut TcpStream) {
        write_all(bystander, &frame(1, b"still here"));
        assert_eq!(read_frame(bystander).unwrap(), frame(1, b"still here"));
        let mut newcomer = self.next_connection(PanicIn::Nothing);
        write_all(&mut newcomer, &frame(2, b"new"));
        assert_eq!(read_frame(&mut newcomer).unwrap(), frame(2, b"new"));
    }

    fn reason(&self) -> String {
        self.events
            .recv_timeout(TIMEOUT)
            .expect("a disconnect report")
    }
}

fn echo(stream: &mut TcpStream) {
    write_all(stream, &frame(1, b"hi"));
    assert_eq!(read_frame(stream).unwrap(), frame(1, b"hi"));
}

fn assert_closed_by_panic(setup: &Setup, mut faulty: TcpStream, hook: Hook) {
    assert!(
        closed_by_server(&mut faulty, TIMEOUT),
        "{hook}: the panicking session is closed"
    );
    let reason = setup.reason();
    assert!(
        reason.starts_with(&format!("{hook} panicked: boom")),
        "{reason}"
    );
    let stats = setup.service.stats();
    assert_eq!(stats.hook_panics, 1, "{hook}");
    assert_eq!(stats.disconnects.get(DisconnectKind::Panicked), 1, "{hook}");
}

#[test]
fn a_panic_in_on_connected_closes_only_that_session() {
    let setup = one_loop_service();
    let mut bystander = setup.next_connection(PanicIn::Nothing);
    echo(&mut bystander);
    let faulty = setup.next_connection(PanicIn::Connected);
    assert_closed_by_panic(&setup, faulty, Hook::OnConnected);
    setup.everyone_else_is_served(&mut bystander);
}

#[test]
fn a_panic_in_on_packet_closes_only_that_session() {
    let setup = one_loop_service();
    let mut bystander = setup.next_connection(PanicIn::Nothing);
    echo(&mut bystander);
    let mut faulty = setup.next_connection(PanicIn::Packet);
    write_all(&mut faulty, &frame(1, b"x"));
    assert_closed_by_panic(&setup, faulty, Hook::OnPacket);
    setup.everyone_else_is_served(&mut bystander);
}

#[test]
fn a_panic_in_on_send_closes_only_that_session() {
    let setup = one_loop_service();
    let mut bystander = setup.next_connection(PanicIn::Nothing);
    echo(&mut bystander);
    let mut faulty = setup.next_connection(PanicIn::Send);
    write_all(&mut faulty, &frame(7, b"arm"));
    assert_closed_by_panic(&setup, faulty, Hook::OnSend);
    setup.everyone_else_is_served(&mut bystander);
}

#[test]
fn a_panic_in_with_handler_closes_only_that_session() {
    let setup = one_loop_service();
    let mut bystander = setup.next_connection(PanicIn::Nothing);
    echo(&mut bystander);

    // A room (JobQueue) learns of the session and calls back into its handler.
    let room = JobQueue::new(&setup.service.handle(), Vec::<Session>::new());
    struct Join(JobQueue<Vec<Session>>);
    impl SessionHandler for Join {
        fn on_packet(&mut self, s: &Session, _: &[u8]) -> Result<(), HandlerError> {
            let s = s.clone();
            self.0.push(move |members| {
                members.push(s.clone());
                s.with_handler(|_: &mut Join, _| panic!("boom in a call from the room"))
                    .expect("the session is open");
            });
            Ok(())
        }
        fn on_disconnected(&mut self, s: &Session, _: &DisconnectReason) {
            let s = s.clone();
            self.0.push(move |members| members.retain(|m| *m != s));
        }
    }
    let room_for_factory = room.clone();
    let joiners = setup
        .service
        .listen("127.0.0.1:0".parse().unwrap(), move || {
            Join(room_for_factory.clone())
        })
        .unwrap();
    let mut faulty = connect(&joiners);
    write_all(&mut faulty, &frame(1, b"join"));
    assert!(closed_by_server(&mut faulty, TIMEOUT));
    assert!(wait_until(TIMEOUT, || {
        setup
            .service
            .stats()
            .disconnects
            .get(DisconnectKind::Panicked)
            == 1
    }));
    assert_eq!(setup.service.stats().hook_panics, 1);
    setup.everyone_else_is_served(&mut bystander);
}

#[test]
fn a_panic_in_on_disconnected_is_logged_and_the_thread_goes_on() {
    let setup = one_loop_service();
    let mut bystander = setup.next_connection(PanicIn::Nothing);
    echo(&mut bystander);
    let faulty = setup.next_connection(PanicIn::Disconnected);
    assert!(wait_until(TIMEOUT, || setup.service.stats().sessions == 2));
    drop(faulty);
    assert_eq!(setup.reason(), "closed by peer");
    assert!(wait_until(TIMEOUT, || setup.service.stats().hook_panics == 1));
    setup.everyone_else_is_served(&mut bystander);
}

#[test]
fn a_panic_while_dropping_a_handler_is_logged_and_the_thread_goes_on() {
    let setup = one_loop_service();
    let mut bystander = setup.next_connection(PanicIn::Nothing);
    echo(&mut bystander);
    let faulty = setup.next_connection(PanicIn::Drop);
    assert!(wait_until(TIMEOUT, || setup.service.stats().sessions == 2));
    drop(faulty);
    assert_eq!(setup.reason(), "closed by peer");
    assert!(wait_until(TIMEOUT, || setup.service.stats().hook_panics == 1));
    setup.everyone_else_is_served(&mut bystander);
}

#[test]
fn a_panic_in_the_factory_refuses_that_connection_only() {
    let setup = one_loop_service();
    let mut bystander = setup.next_connection(PanicIn::Nothing);
    echo(&mut bystander);
    let mut refused = setup.next_connection(PanicIn::Factory);
    assert!(closed_by_server(&mut refused, TIMEOUT));
    assert!(wait_until(TIMEOUT, || setup.service.stats().hook_panics == 1));
    assert_eq!(setup.listener.active_sessions(), 1, "its slot went back");
    setup.everyone_else_is_served(&mut bystander);
}

#[test]
fn a_panic_in_on_connect_failed_is_logged_and_the_thread_goes_on() {
    let setup = one_loop_service();
    let mut bystander = setup.next_connection(PanicIn::Nothing);
    echo(&mut bystander);
    // A port nobody listens on: bind, note the port, close.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let handler = Probe {
        panic_in: PanicIn::ConnectFailed,
        armed_send: false,
        events: setup.tx.clone(),
    };
    setup.service.connect(closed_port, handler).unwrap();
    assert!(setup.reason().starts_with("connect failed"));
    assert!(wait_until(TIMEOUT, || setup.service.stats().hook_panics == 1));
    setup.everyone_else_is_served(&mut bystander);
}

#[test]
fn panicking_tasks_timers_and_jobs_are_logged_and_the_rest_runs() {
    let service = Service::builder().threads(1).build().unwrap();
    let handle = service.handle();
    let (tx, rx) = mpsc::channel();

    handle.spawn(|| panic!("boom in a task")).unwrap();
    let tx1 = tx.clone();
    handle
        .spawn(move || tx1.send("task after").unwrap())
        .unwrap();
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), "task after");

    handle
        .spawn_after(Duration::from_millis(5), || panic!("boom in a timer"))
        .unwrap();
    let tx2 = tx.clone();
    handle
        .spawn_after(Duration::from_millis(10), move || {
            tx2.send("timer after").unwrap()
        })
        .unwrap();
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), "timer after");

    let room = JobQueue::new(&handle, 0u32);
    room.push_after(Duration::from_millis(5), |_| panic!("boom in a timed job"))
        .unwrap();
    let tx3 = tx.clone();
    room.push_after(Duration::from_millis(10), move |n| {
        *n += 1;
        tx3.send("job after").unwrap();
    })
    .unwrap();
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), "job after");

    let stats = service.stats();
    assert_eq!(stats.task_panics, 2, "the task and the timer");
    assert_eq!(stats.job_panics, 1);
    assert!(stats.job_lag.count() >= 2, "every job's lag is recorded");
}
