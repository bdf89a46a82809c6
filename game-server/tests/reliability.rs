//! Reliability guarantees of the game server over real sockets on 127.0.0.1 (see
//! `docs/reliability.md`): bad input (item 1), slow readers (2), idle and half-open
//! connections (3), the session limit (5) and shutdown by signal (6). Connection storms
//! (4) are in `tests/storm.rs` (they measure the whole process), fuzzing (7) in
//! `tests/fuzz.rs`, contained panics (8) in `server-core/tests/panics.rs`.
//!
//! Every blocking read has a timeout and every loop a deadline.

mod util;

use game_server::{GameServer, ServerConfig};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use util::{
    c_chat, capture_logs, closed_marker, frame, parse, rss_kib, time_until_closed, utf16,
    wait_for_log, wait_until, Client, Msg, Rng,
};

/// How soon a bad connection must be closed, and its reason logged.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// A server on a free port (2 I/O threads) with the capturing logger installed first.
fn server(tweak: impl FnOnce(&mut ServerConfig)) -> GameServer {
    assert!(capture_logs(), "the capturing logger is installed");
    util::server(tweak)
}

/// Reads packets until a chat arrives, skipping enter/leave/move/list traffic.
fn next_chat(client: &mut Client) -> (i32, String) {
    loop {
        if let Msg::Chat { id, text } = client.msg() {
            return (id, text);
        }
    }
}

// ---- 1. Bad input never hurts anyone else ------------------------------------------------

/// What the bad connection does after connecting.
enum Bad<'a> {
    /// Writes these bytes (errors ignored: the server may reset us mid-write).
    Send(&'a [u8]),
    /// Writes these bytes, stays silent for a while, then closes its sending side.
    SendStallClose(&'a [u8], Duration),
}

/// Item 1, one case: two bystanders chat before, during and after the bad connection does
/// its thing; the bad connection is closed within [`CLOSE_WITHIN`] with a warning naming it
/// and containing `reason`; the bystanders receive every chat, in order, and the server
/// still counts exactly them.
fn bad_input_case(case: &str, tweak: impl FnOnce(&mut ServerConfig), bad: Bad<'_>, reason: &str) {
    let server = server(tweak);
    let addr = server.local_addr();
    let (mut a, _) = Client::enter(addr);
    let (mut b, _) = Client::enter(addr);
    let (a_id, b_id) = (a.id, b.id);
    let mut expected = Vec::new();
    let mut say = |who: &mut Client, text: String| {
        who.chat(&text);
        expected.push((who.id, text));
    };
    for i in 0..3 {
        say(&mut a, format!("{case} before {i}"));
    }

    let mut evil = TcpStream::connect(addr).expect("connect");
    evil.set_write_timeout(Some(CLOSE_WITHIN)).unwrap();
    let marker = closed_marker(&evil);
    let sent_at = match bad {
        Bad::Send(bytes) => {
            let _ = evil.write_all(bytes);
            Instant::now()
        }
        Bad::SendStallClose(bytes, stall) => {
            evil.write_all(bytes).expect("write the partial frame");
            thread::sleep(stall);
            assert!(
                logs_for(&marker).is_empty(),
                "{case}: closed before the peer closed: {:?}",
                logs_for(&marker)
            );
            evil.shutdown(Shutdown::Write).unwrap();
            Instant::now()
        }
    };
    for i in 0..3 {
        say(&mut b, format!("{case} during {i}"));
    }
    let took = time_until_closed(&mut evil, CLOSE_WITHIN + Duration::from_millis(500));
    let took = took.unwrap_or_else(|| panic!("{case}: bad connection still open after 2.5 s"));
    assert!(
        sent_at.elapsed() <= CLOSE_WITHIN + Duration::from_millis(100),
        "{case}: closed only after {took:?}"
    );
    let line = wait_for_log(CLOSE_WITHIN, &[&marker, reason]).unwrap_or_else(|| {
        panic!(
            "{case}: no log line with {marker:?} and {reason:?}; lines for it: {:?}",
            logs_for(&marker)
        )
    });
    assert!(line.starts_with("WARN"), "{case}: not a warning: {line}");

    for i in 0..3 {
        say(&mut a, format!("{case} after {i}"));
    }
    // Each sender's chats arrive complete and in order (two senders may interleave).
    let per_sender = |chats: &[(i32, String)], id: i32| -> Vec<String> {
        chats
            .iter()
            .filter(|c| c.0 == id)
            .map(|c| c.1.clone())
            .collect()
    };
    for (name, who) in [("a", &mut a), ("b", &mut b)] {
        let got: Vec<(i32, String)> = (0..expected.len()).map(|_| next_chat(who)).collect();
        for id in [a_id, b_id] {
            assert_eq!(
                per_sender(&got, id),
                per_sender(&expected, id),
                "{case}: bystander {name}, chats of player {id}"
            );
        }
        who.expect_quiet();
    }
    assert!(
        wait_until(CLOSE_WITHIN, || {
            let s = server.stats();
            s.service.sessions == 2 && s.players == 2
        }),
        "{case}: sessions/players not back to the two bystanders: {:?}",
        server.stats()
    );
}

fn logs_for(marker: &str) -> Vec<String> {
    util::logs_matching(&[marker])
}

#[test]
fn bad_input_size_0() {
    bad_input_case(
        "size 0",
        |_| {},
        Bad::Send(&[0, 0, 7, 0]),
        "bad frame: frame size 0 is smaller than the 4-byte header",
    );
}

#[test]
fn bad_input_size_2() {
    bad_input_case(
        "size 2",
        |_| {},
        Bad::Send(&[2, 0, 7, 0]),
        "frame size 2 is smaller",
    );
}

#[test]
fn bad_input_size_3() {
    bad_input_case(
        "size 3",
        |_| {},
        Bad::Send(&[3, 0, 7, 0, 0]),
        "frame size 3 is smaller",
    );
}

/// The default maximum is 65,535 (what a u16 can say), so this case lowers it to 1,024.
#[test]
fn bad_input_size_above_max_packet_size() {
    let mut bytes = 2000u16.to_le_bytes().to_vec();
    bytes.extend([7, 0]);
    bytes.extend([0u8; 100]);
    bad_input_case(
        "size 2000 > max 1024",
        |c| c.max_packet_size = 1024,
        Bad::Send(&bytes),
        "frame size 2000 exceeds the maximum packet size 1024",
    );
}

/// A header promising 60,000 bytes, 100 of them, silence, then close: the server waits (a
/// partial frame is not an error) and reports the unfinished frame when the peer closes.
#[test]
fn bad_input_promise_60000_then_silence_then_close() {
    let mut bytes = 60_000u16.to_le_bytes().to_vec();
    bytes.extend([7, 0]);
    bytes.extend([0x41u8; 100]);
    bad_input_case(
        "promise 60000",
        |_| {},
        Bad::SendStallClose(&bytes, Duration::from_millis(300)),
        "closed by peer with 104 bytes of an incomplete frame buffered",
    );
}

#[test]
fn bad_input_unknown_packet_id() {
    bad_input_case(
        "unknown id",
        |_| {},
        Bad::Send(&frame(999, &[1, 2, 3])),
        "malformed packet: unknown packet id 999",
    );
}

#[test]
fn bad_input_server_packet_from_a_client() {
    let mut body = 7i32.to_le_bytes().to_vec();
    body.extend(utf16("I am the server"));
    bad_input_case(
        "S_Chat from client",
        |_| {},
        Bad::Send(&frame(8, &body)),
        "unexpected packet from a client: S_Chat (id 8)",
    );
}

#[test]
fn bad_input_chat_with_odd_byte_length() {
    bad_input_case(
        "odd UTF-16",
        |_| {},
        Bad::Send(&frame(7, &[3, 0, b'a', 0, b'b'])),
        "malformed packet: invalid string",
    );
}

#[test]
fn bad_input_chat_with_unpaired_surrogate() {
    bad_input_case(
        "lone surrogate",
        |_| {},
        Bad::Send(&frame(7, &[2, 0, 0x00, 0xD8])),
        "malformed packet: invalid string",
    );
}

#[test]
fn bad_input_chat_length_past_the_frame() {
    bad_input_case(
        "chat length past end",
        |_| {},
        Bad::Send(&frame(7, &[200, 0, b'a', 0])),
        "malformed packet: truncated frame",
    );
}

#[test]
fn bad_input_move_with_short_body() {
    bad_input_case(
        "short C_Move",
        |_| {},
        Bad::Send(&frame(5, &[0; 8])),
        "malformed packet: truncated frame",
    );
}

#[test]
fn bad_input_one_mib_of_random_bytes() {
    let bytes = Rng::new(0x5EED_0001).bytes(1 << 20);
    // Whatever the first garbage header says, the reason is the server's, not "closed by peer".
    bad_input_case("1 MiB random", |_| {}, Bad::Send(&bytes), "WARN session");
}

// ---- 2. Slow readers are bounded ----------------------------------------------------------

/// Writers and their chats: `"{writer}:{seq}:"` padded to 30,000 UTF-16 units (a 60,006-byte
/// C_Chat frame, a 60,010-byte S_Chat).
fn big_chat(writer: usize, seq: usize) -> String {
    let mut text = format!("{writer}:{seq}:");
    let fill = (b'a' + (seq % 26) as u8) as char;
    while text.len() < 30_000 {
        text.push(fill);
    }
    text
}

const WRITERS: usize = 4;
const END: &str = "END";

/// Reads every packet until it has seen `END` from every writer; checks each writer's chats
/// arrive complete, in order and byte-exact. Returns the count of big chats received.
fn read_all_chats(stream: TcpStream, writers: HashMap<i32, usize>) -> Result<usize, String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut client = Client { stream, id: 0 };
    let mut next = [0usize; WRITERS];
    let mut ended = 0;
    let mut total = 0;
    while ended < WRITERS {
        let frame = {
            let mut header = [0u8; 4];
            client
                .stream
                .read_exact(&mut header)
                .map_err(|e| format!("header: {e} after {total} chats"))?;
            let size = usize::from(u16::from_le_bytes([header[0], header[1]]));
            let mut f = header.to_vec();
            f.resize(size, 0);
            client
                .stream
                .read_exact(&mut f[4..])
                .map_err(|e| format!("body: {e}"))?;
            f
        };
        let Msg::Chat { id, text } = parse(&frame) else {
            continue;
        };
        let Some(&w) = writers.get(&id) else {
            return Err(format!("chat from a non-writer {id}"));
        };
        if text == END {
            ended += 1;
            continue;
        }
        let want = big_chat(w, next[w]);
        if text != want {
            return Err(format!(
                "writer {w}: expected chat #{} ({}...), got {}...",
                next[w],
                &want[..12],
                &text[..text.len().min(12)]
            ));
        }
        next[w] += 1;
        total += 1;
    }
    Ok(total)
}

/// Item 2: 4 writers send 60 KB chats 10 times a second; 3 readers (and the writers' own
/// receiving sides) read everything; one client joins and never reads. The never-reader
/// is cut off as a slow reader once its backlog has stayed above the send-queue cap
/// (default 4 MiB) for the stall timeout (2 s), with a logged reason; RSS stays under
/// 100 MB, and every reader receives every chat.
#[test]
fn a_client_that_never_reads_is_cut_off_and_readers_get_everything() {
    let server = server(|_| {});
    let addr = server.local_addr();

    // Everyone enters first, so every reader is in the room before the first chat.
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        writers.push(Client::enter(addr).0);
    }
    let mut readers = Vec::new();
    for _ in 0..3 {
        readers.push(Client::enter(addr).0);
    }
    let lazy = TcpStream::connect(addr).expect("connect the never-reader");
    let lazy_marker = closed_marker(&lazy);
    assert!(
        wait_until(Duration::from_secs(5), || server.stats().players == 8),
        "8 players in the room: {:?}",
        server.stats()
    );
    let writer_ids: HashMap<i32, usize> =
        writers.iter().enumerate().map(|(w, c)| (c.id, w)).collect();

    // RSS sampler for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let max_rss = Arc::new(AtomicU64::new(rss_kib()));
    let sampler = {
        let (stop, max_rss) = (Arc::clone(&stop), Arc::clone(&max_rss));
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                max_rss.fetch_max(rss_kib(), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(20));
            }
        })
    };

    // Every client that reads: the 3 readers and the 4 writers' receiving sides.
    let mut receivers = Vec::new();
    for c in writers.iter().chain(&readers) {
        let stream = c.stream.try_clone().unwrap();
        let ids = writer_ids.clone();
        receivers.push(thread::spawn(move || read_all_chats(stream, ids)));
    }

    // Writers: 10 chats a second each until the never-reader is gone (at most 30 s: on a
    // busy machine the kernel's buffers take a while to fill), then one more second, then END.
    let lazy_gone = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut senders = Vec::new();
    for (w, mut c) in writers.into_iter().enumerate() {
        let lazy_gone = Arc::clone(&lazy_gone);
        senders.push(thread::spawn(move || {
            let mut seq = 0;
            let mut gone_at = None;
            loop {
                if gone_at.is_none() && lazy_gone.load(Ordering::Relaxed) {
                    gone_at = Some(Instant::now());
                }
                let done = gone_at.is_some_and(|t| t.elapsed() >= Duration::from_secs(1))
                    || started.elapsed() >= Duration::from_secs(30);
                if done {
                    break;
                }
                c.send(&c_chat(&big_chat(w, seq)));
                seq += 1;
                thread::sleep(Duration::from_millis(100));
            }
            c.chat(END);
            (seq, c)
        }));
    }

    let cut_off = wait_for_log(Duration::from_secs(30), &[&lazy_marker, "slow reader"]);
    let cut_off_after = started.elapsed();
    lazy_gone.store(true, Ordering::Relaxed);
    let sent: Vec<(usize, Client)> = senders.into_iter().map(|h| h.join().unwrap()).collect();
    let results: Vec<Result<usize, String>> =
        receivers.into_iter().map(|h| h.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    let line = cut_off.unwrap_or_else(|| {
        panic!(
            "the never-reader was not cut off within 30 s; its log lines: {:?}, stats {:?}",
            logs_for(&lazy_marker),
            server.stats()
        )
    });
    assert!(line.starts_with("WARN"), "{line}");
    assert!(line.contains("4194304-byte limit"), "default cap: {line}");
    eprintln!("never-reader cut off after {cut_off_after:?}: {line}");

    let total: usize = sent.iter().map(|(n, _)| n).sum();
    assert!(total > 0);
    for (k, r) in results.iter().enumerate() {
        assert_eq!(r.as_ref(), Ok(&total), "receiver {k} missed chats");
    }
    let max_mib = max_rss.load(Ordering::Relaxed) / 1024;
    eprintln!("{total} chats of 60 KB to 7 readers; peak RSS {max_mib} MiB");
    assert!(max_mib < 100, "peak RSS {max_mib} MiB");

    // The never-reader's socket ends (EOF or reset) once drained.
    let mut lazy = lazy;
    assert!(
        time_until_closed(&mut lazy, Duration::from_secs(5)).is_some(),
        "never-reader's socket still open"
    );
    assert!(wait_until(Duration::from_secs(2), || server
        .stats()
        .service
        .sessions
        == 7));
}

// ---- 3. Half-open and idle ----------------------------------------------------------------

/// Item 3: with `idle_timeout` 1 s, a client that sent a partial header and stalled, and one
/// that never sent anything, are closed after about a second (logged); a client chatting
/// every 200 ms stays.
#[test]
fn idle_and_stalled_partial_header_are_closed_chatty_client_stays() {
    let server = server(|c| c.idle_timeout = 1);
    let addr = server.local_addr();
    let (mut chatty, _) = Client::enter(addr);

    let mut partial = TcpStream::connect(addr).unwrap();
    partial.write_all(&[10]).unwrap(); // one byte of a size field, then nothing
    let silent = TcpStream::connect(addr).unwrap();
    let markers = [closed_marker(&partial), closed_marker(&silent)];
    let t0 = Instant::now();

    let watchers: Vec<_> = [partial, silent]
        .into_iter()
        .map(|mut s| thread::spawn(move || time_until_closed(&mut s, Duration::from_secs(4))))
        .collect();
    let mut said = 0;
    while t0.elapsed() < Duration::from_millis(2500) {
        chatty.chat(&format!("still here {said}"));
        said += 1;
        thread::sleep(Duration::from_millis(200));
    }
    for (name, w) in ["partial header", "silent"].iter().zip(watchers) {
        let took = w
            .join()
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: not closed"));
        assert!(
            took >= Duration::from_millis(500) && took <= Duration::from_secs(3),
            "{name}: closed after {took:?}"
        );
    }
    for m in &markers {
        assert!(
            wait_for_log(Duration::from_secs(1), &[m, "idle for more than 1s"]).is_some(),
            "no idle log line for {m}: {:?}",
            logs_for(m)
        );
    }
    for i in 0..said {
        assert_eq!(
            next_chat(&mut chatty),
            (chatty.id, format!("still here {i}"))
        );
    }
    chatty.expect_quiet();
    assert_eq!(server.stats().service.sessions, 1);
}

/// Item 3, keepalive: server-core turns SO_KEEPALIVE on with a 60 s idle time for every
/// accepted socket. The kernel shows it in /proc/net/tcp: the accepted socket's timer
/// column is `02` (keepalive timer) with about 60 s to go; our own client socket, without
/// keepalive, shows `00`.
#[test]
fn accepted_sockets_have_tcp_keepalive() {
    let server = server(|_| {});
    let (client, _) = Client::enter(server.local_addr());
    let server_port = server.local_addr().port();
    let client_port = client.stream.local_addr().unwrap().port();

    // (local port, remote port) -> (timer kind, jiffies-ish to go), for IPv4 TCP sockets.
    let timers = || -> HashMap<(u16, u16), (u8, u64)> {
        let table = std::fs::read_to_string("/proc/self/net/tcp").unwrap_or_default();
        table
            .lines()
            .skip(1)
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let port = |s: &str| u16::from_str_radix(s.rsplit(':').next()?, 16).ok();
                let (kind, when) = f.get(5)?.split_once(':')?;
                Some((
                    (port(f.get(1)?)?, port(f.get(2)?)?),
                    (
                        u8::from_str_radix(kind, 16).ok()?,
                        u64::from_str_radix(when, 16).ok()?,
                    ),
                ))
            })
            .collect()
    };
    if timers().is_empty() {
        eprintln!("skipped: /proc/self/net/tcp unavailable");
        return;
    }
    let mut seen = None;
    let ok = wait_until(Duration::from_secs(3), || {
        seen = timers().get(&(server_port, client_port)).copied();
        seen.is_some_and(|(kind, _)| kind == 2)
    });
    assert!(ok, "accepted socket's timer: {seen:?} (want keepalive, 02)");
    let (_, when) = seen.unwrap();
    // USER_HZ (100) ticks: about 60 s.
    assert!(
        (4_500..=6_000).contains(&when),
        "keepalive timer {when} ticks, expected about 60 s"
    );
    let ours = timers().get(&(client_port, server_port)).copied();
    assert_eq!(
        ours.map(|t| t.0),
        Some(0),
        "control: our client socket has no timer"
    );
}

// ---- 5. Limits ----------------------------------------------------------------------------

/// Reads the first frame within `within`: `Some(frame)` or `None` on EOF/reset.
fn first_frame_or_closed(
    stream: &mut TcpStream,
    within: Duration,
) -> Result<Option<Vec<u8>>, String> {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut header = [0u8; 4];
    match stream.read_exact(&mut header) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(format!("neither a frame nor a close: {e}")),
    }
    let size = usize::from(u16::from_le_bytes([header[0], header[1]]));
    let mut f = header.to_vec();
    f.resize(size.max(4), 0);
    stream.read_exact(&mut f[4..]).map_err(|e| e.to_string())?;
    Ok(Some(f))
}

/// Item 5: `max_sessions` 50, 80 connections: exactly 50 get `S_PlayerList` and 30 are
/// closed within 2 s; when 10 admitted ones leave, 10 newcomers get in (and the next is
/// refused again).
#[test]
fn max_sessions_admits_exactly_the_limit_and_refills() {
    let server = server(|c| c.max_sessions = 50);
    let addr = server.local_addr();
    let mut conns: Vec<TcpStream> = (0..80).map(|_| TcpStream::connect(addr).unwrap()).collect();

    let deadline = Instant::now() + CLOSE_WITHIN;
    let mut admitted = Vec::new();
    let mut refused = 0;
    for mut s in conns.drain(..) {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        match first_frame_or_closed(&mut s, left) {
            Ok(Some(f)) => {
                assert!(
                    matches!(parse(&f), Msg::List(_)),
                    "first packet is S_PlayerList"
                );
                admitted.push(s);
            }
            Ok(None) => refused += 1,
            Err(e) => panic!(
                "connection {} undecided within 2 s: {e}",
                admitted.len() + refused
            ),
        }
    }
    assert_eq!((admitted.len(), refused), (50, 30));
    assert_eq!(server.refused_sessions(), 30);
    assert!(wait_for_log(
        Duration::from_secs(1),
        &["session limit 50 reached, refusing"]
    )
    .is_some());

    admitted.truncate(40); // 10 leave
    assert!(
        wait_until(Duration::from_secs(2), || server.stats().service.sessions
            == 40),
        "sessions after 10 left: {:?}",
        server.stats()
    );
    for k in 0..10 {
        let mut s = TcpStream::connect(addr).unwrap();
        let f = first_frame_or_closed(&mut s, CLOSE_WITHIN)
            .unwrap()
            .unwrap_or_else(|| panic!("newcomer {k} refused"));
        assert!(matches!(parse(&f), Msg::List(_)));
        admitted.push(s);
    }
    let mut extra = TcpStream::connect(addr).unwrap();
    assert_eq!(first_frame_or_closed(&mut extra, CLOSE_WITHIN), Ok(None));
    assert_eq!(server.stats().service.sessions, 50);
}

// ---- 6. Shutdown --------------------------------------------------------------------------

const BIN: &str = env!("CARGO_BIN_EXE_game-server");

/// Item 6: the real binary with 50 chatting clients gets `signal`; it exits 0 within 5 s,
/// every client's connection ends, nothing panicked, and the port no longer accepts.
fn shutdown_under_load(signal: &str) {
    let mut child = Command::new(BIN)
        .args(["--addr", "127.0.0.1:0", "--threads", "2"])
        .args(["--ws-addr", "off"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn game-server");
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let (tx, rx) = mpsc::channel();
    let reader = {
        let lines = Arc::clone(&lines);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                lines.lock().unwrap().push(line);
            }
        })
    };
    let addr: SocketAddr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("start-up log line");
        if let Some(rest) = line.split("game-server listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };

    let clients: Vec<Client> = (0..50).map(|_| Client::enter(addr).0).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let mut rd = c.stream.try_clone().unwrap();
        threads.push(thread::spawn(move || {
            // Reads until the server closes us: Ok(bytes) on EOF or reset.
            time_until_closed(&mut rd, Duration::from_secs(12))
        }));
        let stop = Arc::clone(&stop);
        let mut wr = c.stream;
        wr.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                if wr
                    .write_all(&c_chat(&format!("client {i} line {n}")))
                    .is_err()
                {
                    break;
                }
                n += 1;
                thread::sleep(Duration::from_millis(50));
            }
        });
    }
    thread::sleep(Duration::from_millis(500)); // under load

    let killed = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "no exit within 5 s of SIG{signal}; log:\n{}",
                lines.lock().unwrap().join("\n")
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    let exit_after = signalled.elapsed();
    stop.store(true, Ordering::Relaxed);
    for (i, t) in threads.into_iter().enumerate() {
        assert!(
            t.join().unwrap().is_some(),
            "client {i}'s connection did not end"
        );
    }
    reader.join().unwrap();
    let log = lines.lock().unwrap().join("\n");
    assert!(
        status.success(),
        "exit status {status} after SIG{signal}; log:\n{log}"
    );
    assert!(!log.contains("panicked"), "a panic in the log:\n{log}");
    assert!(
        log.contains("signal received, shutting down"),
        "log:\n{log}"
    );
    assert!(
        TcpStream::connect(addr).is_err(),
        "the port still accepts after exit"
    );
    eprintln!("SIG{signal}: exit 0 after {exit_after:?}");
}

#[cfg(unix)]
#[test]
fn sigterm_under_load_exits_zero_within_5s() {
    shutdown_under_load("TERM");
}

#[cfg(unix)]
#[test]
fn sigint_under_load_exits_zero_within_5s() {
    shutdown_under_load("INT");
}

// ---- Ordering under concurrency (found by the storm test) --------------------------------

/// A newcomer's first packet is its own `S_PlayerList` (room.rs: "it first receives
/// S_PlayerList ... then every member ... receives S_BroadcastEnterGame"), also when many
/// players enter at once: 4 threads × 50 connections, up to 20 rounds (stops at the
/// first misordered one).
#[test]
fn a_newcomers_first_packet_is_its_player_list_even_in_a_crowd() {
    let server = server(|_| {});
    let addr = server.local_addr();
    let mut wrong = Vec::new();
    for round in 0..20 {
        if !wrong.is_empty() {
            break;
        }
        let handles: Vec<_> = (0..4)
            .map(|_| {
                thread::spawn(move || {
                    let conns: Vec<TcpStream> =
                        (0..50).map(|_| TcpStream::connect(addr).unwrap()).collect();
                    let mut firsts = Vec::new();
                    for mut s in conns {
                        let f = first_frame_or_closed(&mut s, Duration::from_secs(5))
                            .unwrap()
                            .expect("admitted");
                        firsts.push(u16::from_le_bytes([f[2], f[3]]));
                    }
                    firsts
                })
            })
            .collect();
        for h in handles {
            for id in h.join().unwrap() {
                if id != 4 {
                    wrong.push((round, id));
                }
            }
        }
        assert!(wait_until(Duration::from_secs(5), || server
            .stats()
            .service
            .sessions
            == 0));
    }
    assert!(
        wrong.is_empty(),
        "{} newcomers got another packet before their S_PlayerList: (round, first id) {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
}
