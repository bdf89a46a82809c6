//! Micro-benchmarks of the hot pieces: JobQueue push/run, framing, encoding into the
//! SendBuffer arena. Run with `cargo bench -p server-core`; results in docs/benchmarks.md.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use server_core::frame::{check_frame, header};
use server_core::{JobQueue, SendBuffer, Service};
use std::hint::black_box;
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

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = job_queue, framing, encoding
}
criterion_main!(benches);
