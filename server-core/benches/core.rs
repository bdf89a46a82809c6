//! Micro-benchmarks of the hot pieces: JobQueue push/run, framing, encoding into the
//! SendBuffer arena, a broadcast's fan-out into 500 sessions, the kernel's price of one
//! loopback send, which bounds everything else, and how late a timer fires. Run with `cargo bench -p server-core`;
//! results in docs/benchmarks.md.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mio::{Events, Interest, Poll, Token};
use server_core::frame::{check_frame, header};
use server_core::{HandlerError, Session, SessionHandler};
use server_core::{JobQueue, SendBuffer, Service};
use std::hint::black_box;
use std::io::{IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn job_queue(c: &mut Criterion) {
    let service = Service::builder().threads(1).build().unwrap();
    let mut group = c.benchmark_group("job_queue");
    const JOBS: u64 = 10_000;
    group.throughput(Throughput::Elements(JOBS));
    group.bench_function("push_run_1_thread", |b| {
        let q = JobQueue::new(&service.handle(), 0u64);
        b.iter(|| {
            for _ in 0..JOBS {
                q.push(|n| *n += 1);
            }
        });
    });
    group.bench_function("push_run_2_threads", |b| {
        let q = JobQueue::new(&service.handle(), 0u64);
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let pushers: Vec<_> = (0..2)
                    .map(|_| {
                        let q = q.clone();
                        std::thread::spawn(move || {
                            for _ in 0..JOBS / 2 {
                                q.push(|n| *n += 1);
                            }
                        })
                    })
                    .collect();
                for p in pushers {
                    p.join().unwrap();
                }
            }
            start.elapsed()
        });
    });
    group.finish();
}

fn framing(c: &mut Criterion) {
    // 1,000 chat-sized frames back to back, as one large read would hold them.
    let mut stream = Vec::new();
    for i in 0..1_000u16 {
        let body = vec![b'x'; 16 + usize::from(i % 32)];
        stream.extend_from_slice(&header(7, body.len()).unwrap());
        stream.extend_from_slice(&body);
    }
    let mut group = c.benchmark_group("framing");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("split_1000_frames", |b| {
        b.iter(|| {
            let mut rest = black_box(&stream[..]);
            let mut frames = 0;
            while let Ok(Some(len)) = check_frame(rest, 65_535) {
                rest = &rest[len..];
                frames += 1;
            }
            frames
        });
    });
    group.finish();
}

fn encoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_24_byte_packet");
    let body = [7u8; 20];
    group.bench_function("send_buffer_arena", |b| {
        let mut arena = SendBuffer::new(16 * 1024);
        b.iter(|| {
            arena
                .write(|buf| {
                    buf.extend_from_slice(&header(6, body.len()).unwrap());
                    buf.extend_from_slice(&body);
                    Ok::<_, ()>(())
                })
                .unwrap()
        });
    });
    group.bench_function("fresh_allocation", |b| {
        b.iter_batched(
            || (),
            |()| {
                let mut buf = bytes::BytesMut::with_capacity(24);
                buf.extend_from_slice(&header(6, body.len()).unwrap());
                buf.extend_from_slice(&body);
                buf.freeze()
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// A thread that reads and discards whatever arrives on `sockets`, sleeping in epoll when
/// all are empty (as a real peer does), until `stop` is set.
fn drain_in_background(sockets: Vec<TcpStream>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut poll = Poll::new().unwrap();
        let mut socks: Vec<mio::net::TcpStream> = sockets
            .into_iter()
            .map(|s| {
                s.set_nonblocking(true).unwrap();
                mio::net::TcpStream::from_std(s)
            })
            .collect();
        for (i, s) in socks.iter_mut().enumerate() {
            poll.registry()
                .register(s, Token(i), Interest::READABLE)
                .unwrap();
        }
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; 64 * 1024];
        while !stop.load(Ordering::Relaxed) {
            poll.poll(&mut events, Some(Duration::from_millis(50)))
                .unwrap();
            for event in &events {
                let s = &mut socks[event.token().0];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            }
        }
    })
}

/// `n` connected loopback pairs: the client ends, and a thread draining the server ends.
fn loopback_pairs(n: usize, stop: Arc<AtomicBool>) -> (Vec<TcpStream>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..n {
        let w = TcpStream::connect(addr).unwrap();
        w.set_nodelay(true).unwrap();
        writers.push(w);
        readers.push(listener.accept().unwrap().0);
    }
    (writers, drain_in_background(readers, stop))
}

/// What the kernel charges the sender for one small loopback send (the whole TCP path and
/// the reader's wake-up run on the sender's CPU): the floor under any server's cost per
/// write on this machine. One "tick" is 12 chat-sized frames (~340 bytes) in one call, the
/// size a 500-player room's 5 ms flush carries; `writev` (std's `write_vectored`, what
/// server-core uses) against `sendmsg`, which skips the file layer but measured no faster.
fn loopback_send(c: &mut Criterion) {
    let stop = Arc::new(AtomicBool::new(false));
    let (mut writers, drain) = loopback_pairs(64, Arc::clone(&stop));
    let frame = [7u8; 28];
    let tick: Vec<IoSlice<'_>> = (0..12).map(|_| IoSlice::new(&frame)).collect();
    let mut group = c.benchmark_group("loopback_send_340_bytes");
    group.throughput(Throughput::Elements(1));
    let mut next = 0;
    group.bench_function("writev", |b| {
        b.iter(|| {
            next = (next + 1) % writers.len();
            writers[next].write_vectored(&tick).unwrap()
        });
    });
    group.bench_function("sendmsg", |b| {
        b.iter(|| {
            next = (next + 1) % writers.len();
            socket2::SockRef::from(&writers[next])
                .send_vectored_with_flags(&tick, libc::MSG_NOSIGNAL)
                .unwrap()
        });
    });
    group.finish();
    stop.store(true, Ordering::Relaxed);
    drop(writers);
    drain.join().unwrap();
}

/// A room's broadcast: code on an I/O thread (where room jobs run) hands the same `Bytes` to
/// 500 sessions: the staged path, a `Vec` push per session, then one hand-off per I/O
/// thread. Timed inside the task, so the writes that follow are not part of it
/// (`loopback_send` prices those).
fn fanout(c: &mut Criterion) {
    const MEMBERS: usize = 500;
    let service = Service::builder().threads(2).build().unwrap();
    let (tx, rx) = mpsc::channel();
    let addr = service
        .listen("127.0.0.1:0".parse().unwrap(), move || {
            let tx = tx.clone();
            struct Announce(mpsc::Sender<Session>);
            impl SessionHandler for Announce {
                fn on_connected(&mut self, session: &Session) {
                    let _ = self.0.send(session.clone());
                }
                fn on_packet(&mut self, _: &Session, _: &[u8]) -> Result<(), HandlerError> {
                    Ok(())
                }
            }
            Announce(tx)
        })
        .unwrap()
        .local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    // Clients that drain what the server writes, so send queues stay short.
    let clients: Vec<TcpStream> = (0..MEMBERS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let sessions: Arc<Vec<Session>> = Arc::new(
        (0..MEMBERS)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect(),
    );
    let drain = drain_in_background(clients, Arc::clone(&stop));
    let handle = service.handle();
    let frame = Bytes::from(vec![7u8; 28]);
    let mut group = c.benchmark_group("fanout");
    group.throughput(Throughput::Elements(MEMBERS as u64));
    group.bench_function("broadcast_to_500_sessions", |b| {
        b.iter_custom(|iters| {
            // One task per broadcast, as one room job per flush; at most 64 in flight, so
            // the sends staged in one loop iteration stay bounded.
            let total = Arc::new(Mutex::new(Duration::ZERO));
            let (done_tx, done_rx) = mpsc::channel();
            for i in 0..iters {
                let (sessions, frame, total) =
                    (Arc::clone(&sessions), frame.clone(), Arc::clone(&total));
                let last_of_batch = i % 64 == 63 || i + 1 == iters;
                let done = last_of_batch.then(|| done_tx.clone());
                let broadcast = move || {
                    let start = Instant::now();
                    for s in sessions.iter() {
                        s.send(frame.clone());
                    }
                    *total.lock().unwrap() += start.elapsed();
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                };
                if handle.spawn(broadcast).is_err() {
                    panic!("service stopped");
                }
                if last_of_batch {
                    done_rx.recv().unwrap();
                }
            }
            let elapsed = *total.lock().unwrap();
            elapsed
        });
    });
    group.finish();
    stop.store(true, Ordering::Relaxed);
    drain.join().unwrap();
}

/// A timer 1.2 ms out, from setting it to its task running on an idle I/O thread: the
/// time minus 1.2 ms is how late the loop wakes (sub-millisecond waits are what a paced
/// room flush needs).
fn timers(c: &mut Criterion) {
    let service = Service::builder().threads(1).build().unwrap();
    let handle = service.handle();
    let mut group = c.benchmark_group("timer");
    group.sample_size(50);
    group.bench_function("spawn_after_1200us", |b| {
        b.iter(|| {
            let (tx, rx) = mpsc::channel();
            handle
                .spawn_after(Duration::from_micros(1200), move || tx.send(()).unwrap())
                .unwrap();
            rx.recv().unwrap();
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = job_queue, framing, encoding, fanout, loopback_send, timers
}
criterion_main!(benches);
