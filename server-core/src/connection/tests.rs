//! The connection core without sockets: bytes and instants in, frames and decisions out.

use super::*;
use crate::frame::FrameError;
use std::io::IoSlice;

fn limits() -> Limits {
    Limits {
        max_packet_size: 1024,
        recv_buffer_initial: 64,
        recv_buffer_max: 1024,
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
        let _ = conn.received(n, limits, now);
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

/// The connection core with the WebSocket transport: handshake bytes in, 101 out; masked
/// messages in, frames out; packets in, sealed messages out; pings, closes and protocol
/// errors answered in the right place of the output.
#[cfg(feature = "websocket")]
mod websocket {
    use super::*;
    use crate::transport::websocket::client::{masked_message, ClientHandshake, MaskKeys};
    use crate::transport::websocket::config::WsConfig;
    use crate::transport::websocket::decoder::WsDecoder;
    use crate::transport::websocket::handshake::Handshake;
    use crate::transport::websocket::{WsServer, WsTransport, MAX_UNCONSUMED};
    use std::sync::Arc;

    const REQUEST: &[u8] = b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    const ACCEPTED: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

    fn ws_limits() -> Limits {
        Limits {
            // As the service sets it: a max-size frame and the decoder's tail, or a whole
            // request head, whichever is larger.
            recv_buffer_max: (1024 + MAX_UNCONSUMED).max(8192),
            ..limits()
        }
    }

    fn server_conn(l: &Limits, now: Instant) -> Connection {
        let server = Arc::new(WsServer {
            config: WsConfig::default(),
            http: None,
        });
        let transport = TransportState::WebSocket(Box::new(WsTransport::server(server)));
        let mut conn = Connection::with_transport(l, Phase::Connecting, now, transport);
        assert!(!conn.established(now), "the upgrade comes first");
        assert!(matches!(conn.phase(), Phase::Handshaking));
        conn
    }

    /// Reads `bytes` into the connection in pieces of at most `chunk`, acting on each
    /// `Input` as the event loop would for an upgraded session; returns the frames and the
    /// inputs that were not plain frames.
    fn read(
        conn: &mut Connection,
        l: &Limits,
        bytes: &[u8],
        chunk: usize,
    ) -> (Vec<Vec<u8>>, Vec<Input>) {
        let (mut frames, mut inputs) = (Vec::new(), Vec::new());
        let now = Instant::now();
        let mut spare = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let space = conn.read_space(&mut spare);
            assert!(!space.is_empty(), "the buffer is full");
            let n = space.len().min(chunk).min(rest.len());
            space[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            let mut input = conn.received(n, l, now);
            if matches!(input, Input::Upgraded) {
                // What the event loop does: open (on_connected), then decode what came along.
                inputs.push(input);
                conn.open(now);
                input = conn.decode_pending(l, now);
            }
            if !matches!(input, Input::Frames) {
                inputs.push(input);
            }
            while let Ok(Next::Frame { len, .. }) = conn.next_frame(l, now) {
                frames.push(conn.frame(len).to_vec());
                conn.consume(len);
            }
        }
        (frames, inputs)
    }

    fn upgraded(l: &Limits) -> Connection {
        let now = Instant::now();
        let mut conn = server_conn(l, now);
        let (_, mut inputs) = read(&mut conn, l, REQUEST, 10);
        let Some(Input::Request(Ok(Handshake::Upgrade {
            consumed, response, ..
        }))) = inputs.pop()
        else {
            panic!("no upgrade: {inputs:?}");
        };
        conn.upgrade(consumed, response, now);
        assert!(conn.is_open());
        assert!(matches!(conn.decode_pending(l, now), Input::Frames));
        let mut socket = Socket {
            written: Vec::new(),
            room: usize::MAX,
        };
        conn.write_to(&mut socket, l).unwrap();
        assert_eq!(socket.written, ACCEPTED);
        conn
    }

    /// A client's masked binary message of `payload`.
    fn message(payload: &[u8]) -> Vec<u8> {
        masked_message(&mut [payload].into_iter(), payload.len(), [1, 2, 3, 4]).to_vec()
    }

    /// A masked control frame (opcode, payload) as a client sends it.
    fn control(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x80 | opcode, 0x80 | payload.len() as u8, 9, 8, 7, 6];
        f.extend(
            payload
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ [9, 8, 7, 6][i % 4]),
        );
        f
    }

    /// The server's bytes as frames: (opcode, payload), every frame whole and unmasked.
    fn server_frames(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut frames = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let (header, len) = crate::transport::websocket::frame::parse_header(rest)
                .unwrap()
                .expect("a whole header");
            assert!(header.fin && header.mask.is_none());
            let end = len + header.payload_len as usize;
            frames.push((header.opcode.bits(), rest[len..end].to_vec()));
            rest = &rest[end..];
        }
        frames
    }

    #[test]
    fn an_upgrade_then_frames_in_fragmented_and_batched_messages() {
        let l = ws_limits();
        let mut conn = upgraded(&l);
        let (a, b, c) = (frame(1, b"one"), frame(2, b"two"), frame(3, &[7; 300]));
        // a and b in one message; c split over a message and two fragments.
        let mut wire = message(&[a.clone(), b.clone()].concat());
        wire.extend(message(&c[..100]));
        let mut first = ClientFrameBytes::fragment(0x2, &c[100..250], false);
        first.extend(ClientFrameBytes::fragment(0x0, &c[250..], true));
        wire.extend(first);
        for chunk in [1, 7, 1000] {
            let mut conn = upgraded(&l);
            let (frames, inputs) = read(&mut conn, &l, &wire, chunk);
            assert_eq!(
                frames,
                [a.clone(), b.clone(), c.clone()],
                "chunks of {chunk}"
            );
            assert!(inputs.is_empty());
        }
        // A frame split over two messages with nothing after it is left incomplete.
        let (frames, _) = read(&mut conn, &l, &message(&a[..3]), 100);
        assert!(frames.is_empty());
        assert!(matches!(
            conn.end_of_input(),
            DisconnectReason::PeerClosedMidFrame { buffered: 3 }
        ));
    }

    /// Client frames with explicit FIN bits, for fragmentation.
    struct ClientFrameBytes;
    impl ClientFrameBytes {
        fn fragment(opcode: u8, payload: &[u8], fin: bool) -> Vec<u8> {
            let mut f = message(payload);
            f[0] = (u8::from(fin) << 7) | opcode;
            f
        }
    }

    #[test]
    fn packets_of_one_flush_leave_as_one_message_and_a_pong_after_it() {
        let l = ws_limits();
        let now = Instant::now();
        let mut conn = upgraded(&l);
        let shared = Bytes::from(frame(8, b"broadcast"));
        conn.queue(shared.clone(), &l, now).unwrap();
        conn.queue(Bytes::from(frame(6, b"mine")), &l, now).unwrap();
        let (_, inputs) = read(&mut conn, &l, &control(0x9, b"are you there"), 100);
        assert!(matches!(inputs[..], [Input::Queued { went_over: false }]));
        conn.queue(Bytes::from(frame(1, b"later")), &l, now)
            .unwrap();
        let mut socket = Socket {
            written: Vec::new(),
            room: usize::MAX,
        };
        let written = conn.write_to(&mut socket, &l).unwrap();
        assert_eq!(
            written.flushed.packets, 3,
            "headers and pongs are not packets"
        );
        assert_eq!(
            server_frames(&socket.written),
            [
                (0x2, [shared.to_vec(), frame(6, b"mine")].concat()),
                (0xA, b"are you there".to_vec()),
                (0x2, frame(1, b"later")),
            ],
            "one message per flush, the pong between messages"
        );
    }

    #[test]
    fn a_pong_waits_for_the_message_in_flight() {
        let l = ws_limits();
        let now = Instant::now();
        let mut conn = upgraded(&l);
        conn.queue(Bytes::from(frame(8, &[5; 50])), &l, now)
            .unwrap();
        let mut socket = Socket {
            written: Vec::new(),
            room: 20,
        };
        conn.write_to(&mut socket, &l).unwrap();
        let (_, inputs) = read(&mut conn, &l, &control(0x9, b"p"), 100);
        assert!(matches!(inputs[..], [Input::Queued { .. }]));
        socket.room = usize::MAX;
        conn.write_to(&mut socket, &l).unwrap();
        assert_eq!(
            server_frames(&socket.written),
            [(0x2, frame(8, &[5; 50])), (0xA, b"p".to_vec())],
            "the pong after the whole message"
        );
    }

    #[test]
    fn protocol_errors_close_with_their_code_and_nothing_follows() {
        let l = ws_limits();
        let now = Instant::now();
        let cases: [(Vec<u8>, u16); 4] = [
            (vec![0x82, 0x03, b'a', b'b', b'c'], 1002), // unmasked
            (control(0x1, b"text"), 1003),
            (control(0x3, b""), 1002), // reserved opcode
            (
                {
                    let mut f = message(b"x");
                    f[0] |= 0x40; // RSV1
                    f
                },
                1002,
            ),
        ];
        for (bytes, code) in cases {
            let mut conn = upgraded(&l);
            conn.queue(Bytes::from(frame(1, b"before")), &l, now)
                .unwrap();
            let (_, inputs) = read(&mut conn, &l, &bytes, 100);
            assert!(matches!(inputs[..], [Input::Closing]), "{inputs:?}");
            let Some(DisconnectReason::WebSocket { code: got, reason }) =
                conn.take_closing_reason()
            else {
                panic!("no websocket reason");
            };
            assert_eq!(got, code, "{reason}");
            conn.queue(Bytes::from(frame(1, b"after")), &l, now)
                .unwrap();
            let mut socket = Socket {
                written: Vec::new(),
                room: usize::MAX,
            };
            conn.write_to(&mut socket, &l).unwrap();
            let mut expected = vec![0x82, 10];
            expected.extend(frame(1, b"before"));
            expected.extend_from_slice(&[0x88, (2 + reason.len()) as u8]);
            expected.extend_from_slice(&code.to_be_bytes());
            expected.extend_from_slice(reason.as_bytes());
            assert_eq!(
                socket.written, expected,
                "data before, the close, nothing after"
            );
            assert!(conn.start_draining(), "the peer may still be sending");
        }
    }

    #[test]
    fn an_oversized_message_is_1009_before_its_payload() {
        let l = ws_limits();
        let mut conn = upgraded(&l);
        // A header announcing 2 MiB, and no payload.
        let header = [0x82, 0xFF, 0, 0, 0, 0, 0, 0x20, 0, 0, 1, 2, 3, 4];
        let (_, inputs) = read(&mut conn, &l, &header, 100);
        assert!(matches!(inputs[..], [Input::Closing]));
        assert!(matches!(
            conn.take_closing_reason(),
            Some(DisconnectReason::WebSocket { code: 1009, .. })
        ));
    }

    #[test]
    fn the_peers_close_is_answered_after_the_frames_before_it() {
        let l = ws_limits();
        let mut conn = upgraded(&l);
        let mut wire = message(&frame(7, b"last words"));
        wire.extend(control(0x8, &[0x03, 0xE9, b'b', b'y', b'e']));
        wire.extend(message(&frame(7, b"too late")));
        let (frames, inputs) = read(&mut conn, &l, &wire, 1000);
        assert_eq!(frames, [frame(7, b"last words")]);
        assert!(matches!(inputs[..], [Input::Closing]));
        let mut socket = Socket {
            written: Vec::new(),
            room: usize::MAX,
        };
        conn.write_to(&mut socket, &l).unwrap();
        assert_eq!(socket.written, [0x88, 2, 0x03, 0xE9], "the same code back");
        assert!(matches!(
            conn.take_closing_reason(),
            Some(DisconnectReason::WebSocketClosed { code: Some(1001), ref reason }) if reason == "bye"
        ));
    }

    #[test]
    fn a_dropped_session_says_goodbye_only_between_messages() {
        let l = ws_limits();
        let now = Instant::now();
        let bad = DisconnectReason::Framing(crate::frame::FrameError::TooSmall { size: 2 });
        let mut conn = upgraded(&l);
        let words = conn.last_words(&bad).expect("a close frame");
        assert_eq!(&words[..4], [0x88, words.len() as u8 - 2, 0x03, 0xF0]);
        assert!(conn.last_words(&bad).is_none(), "said once");

        let mut conn = upgraded(&l);
        conn.queue(Bytes::from(vec![1; 500]), &l, now).unwrap();
        let mut socket = Socket {
            written: Vec::new(),
            room: 100,
        };
        conn.write_to(&mut socket, &l).unwrap();
        conn.discard_output();
        assert!(
            conn.last_words(&bad).is_none(),
            "the peer is inside a message: a close frame would corrupt it"
        );
        assert!(conn.last_words(&DisconnectReason::PeerClosed).is_none());
    }

    #[test]
    fn a_plain_request_is_handed_to_the_event_loop() {
        let l = ws_limits();
        let mut conn = server_conn(&l, Instant::now());
        let (_, inputs) = read(
            &mut conn,
            &l,
            b"GET /index.html HTTP/1.1\r\nHost: h\r\n\r\n",
            5,
        );
        let [Input::Request(Ok(Handshake::Request { request, .. }))] = &inputs[..] else {
            panic!("{inputs:?}");
        };
        assert_eq!(request.path(), "/index.html");
        conn.answer(
            Bytes::from_static(b"HTTP/1.1 404 Not Found\r\n\r\n"),
            DisconnectReason::HttpServed {
                status: 404,
                path: "/index.html".into(),
            },
        );
        assert!(!conn.wants_read());
        assert!(conn.has_output());
    }

    #[test]
    fn the_receive_buffer_stays_within_a_frame_and_the_decoders_tail() {
        // No room for a handshake head beyond the frame and the tail: the tightest bound.
        let l = Limits {
            recv_buffer_max: 1024 + MAX_UNCONSUMED,
            ..limits()
        };
        let big = frame(9, &[3; 1020]);
        // A max-size frame in 1-byte messages: 7 bytes of wire per byte of frame.
        let mut conn = upgraded(&l);
        let wire: Vec<u8> = big.iter().flat_map(|b| message(&[*b])).collect();
        let (frames, _) = read(&mut conn, &l, &wire, 4096);
        assert_eq!(frames, std::slice::from_ref(&big));
        // The worst case: all but the last byte of the frame, then a ping of the largest
        // size, then the last byte; read in whatever pieces the buffer has room for.
        let mut conn = upgraded(&l);
        let mut wire = message(&big[..1023]);
        wire.extend(control(0x9, &[1; 125]));
        wire.extend(message(&big[1023..]));
        let (frames, inputs) = read(&mut conn, &l, &wire, 4096);
        assert_eq!(frames, [big]);
        assert!(matches!(inputs[..], [Input::Queued { .. }]));
    }

    #[test]
    fn a_client_sends_its_request_checks_the_answer_and_masks() {
        let l = ws_limits();
        let now = Instant::now();
        let (keys, key_bytes) = MaskKeys::seeded().unwrap();
        let handshake = ClientHandshake::new("h", "/ws", key_bytes);
        let mut transport = WsTransport::client(handshake.accept, keys);
        transport.pending_request = Some(handshake.request.clone());
        let transport = TransportState::WebSocket(Box::new(transport));
        let mut conn = Connection::with_transport(&l, Phase::Connecting, now, transport);
        assert!(!conn.established(now));
        assert!(conn.is_client_handshake());
        let mut socket = Socket {
            written: Vec::new(),
            room: usize::MAX,
        };
        conn.write_to(&mut socket, &l).unwrap();
        assert_eq!(socket.written, handshake.request);

        // Our server's 101 for that request, with a first server frame behind it.
        let server = Arc::new(WsServer {
            config: WsConfig::default(),
            http: None,
        });
        let Ok(Handshake::Upgrade { response, .. }) =
            crate::transport::websocket::handshake::parse_request(
                &handshake.request,
                &server.config.handshake,
            )
        else {
            panic!()
        };
        let mut answer = response.to_vec();
        answer.extend_from_slice(&[0x82, 4, 4, 0, 1, 0]);
        let (frames, inputs) = read(&mut conn, &l, &answer, 3);
        assert!(matches!(inputs[..], [Input::Upgraded]), "{inputs:?}");
        assert_eq!(frames, [[4, 0, 1, 0]], "the frame behind the 101");

        conn.queue(Bytes::from(frame(5, b"up")), &l, now).unwrap();
        socket.written.clear();
        conn.write_to(&mut socket, &l).unwrap();
        assert_eq!(socket.written[1] & 0x80, 0x80, "masked");
        let mut raw = socket.written.clone();
        let d = WsDecoder::new(1 << 20).decode(&mut raw).unwrap();
        assert_eq!(&raw[..d.produced], frame(5, b"up"));
    }

    #[test]
    fn a_client_refuses_a_bad_answer() {
        let l = ws_limits();
        let now = Instant::now();
        let (keys, key_bytes) = MaskKeys::seeded().unwrap();
        let handshake = ClientHandshake::new("h", "/ws", key_bytes);
        let transport =
            TransportState::WebSocket(Box::new(WsTransport::client(handshake.accept, keys)));
        let mut conn = Connection::with_transport(&l, Phase::Connecting, now, transport);
        let _ = conn.established(now);
        let (_, inputs) = read(&mut conn, &l, ACCEPTED, 1000);
        let [Input::Refused(why)] = &inputs[..] else {
            panic!("{inputs:?}");
        };
        assert!(why.contains("Sec-WebSocket-Accept"), "{why}");
    }
}
