//! The connection core without sockets: bytes and instants in, frames and decisions out.

use super::*;
use crate::frame::FrameError;
use std::io::IoSlice;

fn limits() -> Limits {
    Limits {
        max_packet_size: 1024,
        recv_buffer_initial: 64,
        max_send_queue: 1000,
        hard_send_queue: Limits::hard_cap(1000),
        send_stall_timeout: Duration::from_secs(2),
        rate_limit: None,
    }
}

fn frame(id: u16, body: &[u8]) -> Vec<u8> {
    let mut f = crate::frame::header(id, body.len()).unwrap().to_vec();
    f.extend_from_slice(body);
    f
}

/// Feeds `bytes` as one read and collects every frame the connection hands out.
fn feed(
    conn: &mut Connection,
    limits: &Limits,
    bytes: &[u8],
    now: Instant,
) -> Result<Vec<Vec<u8>>, DisconnectReason> {
    let mut spare = Vec::new();
    let mut pos = 0;
    let mut frames = Vec::new();
    while pos < bytes.len() {
        let space = conn.read_space(&mut spare);
        let n = space.len().min(bytes.len() - pos);
        space[..n].copy_from_slice(&bytes[pos..pos + n]);
        conn.received(n, now);
        pos += n;
        while let Next::Frame { len, .. } = conn.next_frame(limits, now)? {
            frames.push(conn.frame(len).to_vec());
            conn.consume(len);
        }
    }
    Ok(frames)
}

/// A writer that takes up to `room` bytes, then says `WouldBlock`.
struct Socket {
    written: Vec<u8>,
    room: usize,
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(self.room - n);
            self.written.extend_from_slice(&b[..take]);
            n += take;
            if n == self.room {
                break;
            }
        }
        self.room -= n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn frames_come_out_whole_and_in_order() {
    let l = limits();
    let now = Instant::now();
    let mut conn = Connection::new(&l, Phase::Open, now);
    let mut stream = frame(1, b"hello");
    stream.extend(frame(2, &[7; 300]));
    stream.extend(&frame(3, b"x")[..3]); // a partial third frame
    let frames = feed(&mut conn, &l, &stream, now).unwrap();
    assert_eq!(frames, [frame(1, b"hello"), frame(2, &[7; 300])]);
    assert!(matches!(conn.next_frame(&l, now), Ok(Next::Incomplete)));
    assert!(matches!(
        conn.end_of_input(),
        DisconnectReason::PeerClosedMidFrame { buffered: 3 }
    ));
}

#[test]
fn bad_bytes_are_an_error_and_need_more_bytes_is_not() {
    let l = limits();
    let now = Instant::now();
    let mut conn = Connection::new(&l, Phase::Open, now);
    assert_eq!(
        feed(&mut conn, &l, &[9], now).unwrap(),
        Vec::<Vec<u8>>::new()
    );
    let mut conn = Connection::new(&l, Phase::Open, now);
    let err = feed(&mut conn, &l, &[2, 0], now).unwrap_err();
    assert!(matches!(
        err,
        DisconnectReason::Framing(FrameError::TooSmall { size: 2 })
    ));
    let mut conn = Connection::new(&l, Phase::Open, now);
    let err = feed(&mut conn, &l, &2000u16.to_le_bytes(), now).unwrap_err();
    assert!(matches!(
        err,
        DisconnectReason::Framing(FrameError::TooLarge {
            size: 2000,
            max: 1024
        })
    ));
}

#[test]
fn idle_time_counts_from_the_last_bytes_and_not_while_paused() {
    let l = limits();
    let t0 = Instant::now();
    let mut conn = Connection::new(&l, Phase::Open, t0);
    assert_eq!(conn.idle_since(), Some(t0));
    let t1 = t0 + Duration::from_secs(3);
    feed(&mut conn, &l, &[4], t1).unwrap();
    assert_eq!(
        conn.idle_since(),
        Some(t1),
        "a partial header is still bytes"
    );
    conn.block(Blocked::IN_FLIGHT);
    assert_eq!(
        conn.idle_since(),
        None,
        "paused by us: not the peer's silence"
    );
    assert!(conn.unblock(Blocked::IN_FLIGHT));
    assert_eq!(conn.idle_since(), Some(t1));
}

#[test]
fn reading_resumes_only_when_the_last_cause_clears() {
    let l = limits();
    let mut conn = Connection::new(&l, Phase::Open, Instant::now());
    assert!(conn.wants_read());
    conn.block(Blocked::THROTTLED);
    conn.block(Blocked::IN_FLIGHT);
    assert!(!conn.wants_read());
    assert!(
        !conn.unblock(Blocked::THROTTLED),
        "still paused for in-flight work"
    );
    assert!(
        !conn.unblock(Blocked::THROTTLED),
        "clearing twice changes nothing"
    );
    assert!(conn.unblock(Blocked::IN_FLIGHT));
    assert!(conn.wants_read());
    assert!(matches!(
        conn.next_frame(&l, Instant::now()),
        Ok(Next::Incomplete)
    ));
}

#[test]
fn throttle_holds_the_frame_until_the_bucket_refills() {
    let mut l = limits();
    l.rate_limit = Some(RateLimit::new(10, 1_000_000).packet_burst(2));
    let t0 = Instant::now();
    let mut conn = Connection::new(&l, Phase::Open, t0);
    let stream: Vec<u8> = (0..3).flat_map(|i| frame(i, b"m")).collect();
    let frames = feed(&mut conn, &l, &stream, t0).unwrap();
    assert_eq!(frames.len(), 2, "the burst");
    assert!(!conn.wants_read(), "throttled: the socket is left alone");
    let Ok(Next::Blocked) = conn.next_frame(&l, t0) else {
        panic!("blocked while throttled");
    };
    assert!(conn.unblock(Blocked::THROTTLED));
    let t1 = t0 + Duration::from_millis(100);
    let Ok(Next::Frame { len, ended: None }) = conn.next_frame(&l, t1) else {
        panic!("one packet per 100 ms");
    };
    assert_eq!(conn.frame(len), frame(2, b"m"), "held, not lost");
}

#[test]
fn drop_discards_the_excess_and_disconnect_waits_for_its_grace() {
    let t0 = Instant::now();
    let stream: Vec<u8> = (0..5).flat_map(|i| frame(i, b"m")).collect();

    let mut l = limits();
    l.rate_limit = Some(
        RateLimit::new(10, 1_000_000)
            .packet_burst(2)
            .on_excess(Excess::Drop),
    );
    let mut conn = Connection::new(&l, Phase::Open, t0);
    let frames = feed(&mut conn, &l, &stream, t0).unwrap();
    assert_eq!(
        frames,
        [frame(0, b"m"), frame(1, b"m")],
        "the other three dropped"
    );
    assert!(conn.wants_read(), "dropping never pauses reading");

    let grace = Duration::from_secs(1);
    l.rate_limit = Some(
        RateLimit::new(10, 1_000_000)
            .packet_burst(2)
            .on_excess(Excess::Disconnect { after: grace }),
    );
    let mut conn = Connection::new(&l, Phase::Open, t0);
    assert_eq!(
        feed(&mut conn, &l, &stream, t0).unwrap().len(),
        2,
        "within grace: dropped"
    );
    // The flood goes on (every 300 ms, never a quiet second): cut once it has lasted the grace.
    let flood: Vec<u8> = (0..50).flat_map(|i| frame(i, b"m")).collect();
    let mut cut_at = None;
    for step in 1..=5u32 {
        let at = t0 + Duration::from_millis(300) * step;
        if let Err(err) = feed(&mut conn, &l, &flood, at) {
            assert!(matches!(err, DisconnectReason::RateLimited { .. }), "{err}");
            cut_at = Some(at - t0);
            break;
        }
    }
    assert_eq!(
        cut_at,
        Some(Duration::from_millis(1200)),
        "the first flood after 1 s of excess"
    );
}

#[test]
fn a_large_burst_is_judged_by_how_it_drains_not_by_its_size() {
    let l = limits();
    let t0 = Instant::now();
    let mut conn = Connection::new(&l, Phase::Open, t0);
    // 1,500 bytes at once: over the soft cap (1,000), under the hard cap (4,000).
    assert!(matches!(
        conn.queue(Bytes::from(vec![1; 1500]), &l, t0),
        Ok(true)
    ));
    assert!(!conn.wants_read(), "its own backlog pauses its reads");
    let mut socket = Socket {
        written: Vec::new(),
        room: 1200,
    };
    let written = conn.write_to(&mut socket, &l).unwrap();
    assert_eq!(written.flushed.bytes, 1200);
    assert!(written.resume_reading, "below half the cap again");
    assert!(conn.wants_read());
    assert!(
        conn.stalled(&l, t0 + Duration::from_secs(10)).is_none(),
        "drained in time"
    );
}

#[test]
fn a_reader_that_stays_behind_is_closed_after_the_stall_timeout() {
    let l = limits();
    let t0 = Instant::now();
    let mut conn = Connection::new(&l, Phase::Open, t0);
    assert!(matches!(
        conn.queue(Bytes::from(vec![1; 1200]), &l, t0),
        Ok(true)
    ));
    let mut socket = Socket {
        written: Vec::new(),
        room: 100,
    };
    conn.write_to(&mut socket, &l).unwrap();
    assert!(conn.stalled(&l, t0 + Duration::from_secs(1)).is_none());
    let reason = conn.stalled(&l, t0 + Duration::from_secs(2)).unwrap();
    assert!(matches!(
        reason,
        DisconnectReason::SlowReader {
            queued: 1100,
            limit: 1000,
            ..
        }
    ));
}

#[test]
fn the_hard_cap_closes_at_once_and_frees_the_queue() {
    let l = limits();
    let t0 = Instant::now();
    let mut conn = Connection::new(&l, Phase::Open, t0);
    conn.queue(Bytes::from(vec![1; 3000]), &l, t0).unwrap();
    let err = conn.queue(Bytes::from(vec![1; 1001]), &l, t0).unwrap_err();
    assert!(matches!(
        err,
        DisconnectReason::SendQueueOverflow {
            queued: 3000,
            adding: 1001,
            limit: 4000
        }
    ));
    assert_eq!(conn.queued_bytes(), 0);
}

#[test]
fn written_bytes_keep_their_order_across_short_writes() {
    let l = limits();
    let t0 = Instant::now();
    let mut conn = Connection::new(&l, Phase::Open, t0);
    let mut expected = Vec::new();
    for i in 0..20u16 {
        let f = frame(i, &[i as u8; 10]);
        expected.extend_from_slice(&f);
        conn.queue(Bytes::from(f), &l, t0).unwrap();
    }
    let mut socket = Socket {
        written: Vec::new(),
        room: 37,
    };
    let mut packets = 0;
    while conn.has_output() {
        packets += conn.write_to(&mut socket, &l).unwrap().flushed.packets;
        socket.room = 37;
    }
    assert_eq!(socket.written, expected);
    assert_eq!(packets, 20);
}

#[test]
fn closing_keeps_its_reason_until_the_queue_is_flushed() {
    let l = limits();
    let mut conn = Connection::new(&l, Phase::Open, Instant::now());
    conn.begin_closing(DisconnectReason::Shutdown);
    assert!(!conn.wants_read());
    assert!(matches!(
        conn.take_closing_reason(),
        Some(DisconnectReason::Shutdown)
    ));
    assert!(conn.take_closing_reason().is_none());
}
