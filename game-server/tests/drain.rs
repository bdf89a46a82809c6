//! A graceful drain, from code (`GameServer::drain`) and from SIGTERM on the real binary
//! (`--drain-timeout`): no new player gets in, `/readyz` answers 503, players already in
//! play on and get everything sent before they leave, the rest are cut at the timeout, and
//! the process exits 0.

mod util;

use std::io::{ErrorKind, Read};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};
use util::binary::{address_after, ServerProcess, BIN};
use util::http::get;
use util::{server, time_until_closed, Client, Msg, TIMEOUT};

/// Asserts a connect to `addr` is refused, or closed by the server before any byte.
fn assert_not_accepted(addr: SocketAddr) {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, TIMEOUT) else {
        return; // refused: the listening socket is closed
    };
    // Taken into the kernel's backlog just before the socket closed: reset, never served.
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => {}
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) => {}
        other => panic!("a connect during the drain was served: {other:?}"),
    }
}

/// Reads until `count` chats from `speaker` have come; returns their texts. Other packets
/// (enters, leaves) are skipped.
fn chats_from(client: &mut Client, speaker: i32, count: usize) -> Vec<String> {
    let mut texts = Vec::with_capacity(count);
    while texts.len() < count {
        if let Msg::Chat { id, text } = client.msg() {
            if id == speaker {
                texts.push(text);
            }
        }
    }
    texts
}

/// Leaves as a game client does: `C_LeaveGame`, close our side, read to the end.
fn leave_and_hang_up(mut client: Client) {
    client.leave();
    client.stream.shutdown(Shutdown::Write).unwrap();
    assert!(
        time_until_closed(&mut client.stream, TIMEOUT).is_some(),
        "the server closes after a hang-up"
    );
}

/// `game-server ARGS` with the metrics endpoint on a free port; returns it and the
/// endpoint's address.
fn start_binary(args: &[&str]) -> (ServerProcess, SocketAddr) {
    let mut command = Command::new(BIN);
    command
        .args(["--addr", "127.0.0.1:0", "--threads", "2"])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .args(args);
    let mut server = ServerProcess::spawn(command);
    let line = server
        .wait_for_log(TIMEOUT, &["metrics, health and readiness on "])
        .expect("the endpoint's start-up line");
    let metrics = address_after(&line, "readiness on ");
    (server, metrics)
}

#[test]
fn drain_from_code_reports_who_left_and_who_was_cut() {
    let server = server(|_| {});
    let addr = server.local_addr();
    let (stayer, _) = Client::enter(addr);
    let (leaver, _) = Client::enter(addr);
    assert!(!server.is_draining());
    server.begin_drain();
    assert!(server.is_draining());
    assert_not_accepted(addr);
    assert!(
        !server.wait_drained(Duration::from_millis(50)),
        "two still in"
    );

    leave_and_hang_up(leaver);
    let report = server.drain(Duration::from_millis(300));
    assert_eq!(
        (report.players_at_start, report.left, report.cut),
        (2, 1, 1)
    );
    let mut stayer = stayer;
    stayer.expect_closed();
    assert_eq!(
        server.drain(Duration::ZERO),
        Default::default(),
        "once only"
    );
}

#[cfg(unix)]
#[test]
fn sigterm_drains_players_that_leave_get_everything_and_the_process_exits_zero() {
    let (mut server, metrics) = start_binary(&["--drain-timeout", "5"]);
    let (mut reader_a, _) = Client::enter(server.addr);
    let (mut reader_b, _) = Client::enter(server.addr);
    let (mut chatter, _) = Client::enter(server.addr);
    assert_eq!(get(metrics, "/readyz").status, 200);

    let signalled = Instant::now();
    server.terminate();
    server
        .wait_for_log(
            TIMEOUT,
            &["draining: accepting no new players; 3 connected"],
        )
        .unwrap_or_else(|| panic!("no drain line: {:#?}", server.log()));
    let ready = get(metrics, "/readyz");
    assert_eq!((ready.status, ready.body.as_str()), (503, "draining\n"));
    assert_eq!(get(metrics, "/healthz").status, 200, "draining is healthy");
    assert_not_accepted(server.addr);

    // The room plays on: one speaks and leaves at once, the others hear every word.
    let said: Vec<String> = (0..50).map(|i| format!("drain {i}")).collect();
    for text in &said {
        chatter.chat(text);
    }
    let chatter_id = chatter.id;
    leave_and_hang_up(chatter);
    for reader in [&mut reader_a, &mut reader_b] {
        assert_eq!(chats_from(reader, chatter_id, said.len()), said);
        assert_eq!(reader.msg(), Msg::Leave { id: chatter_id });
    }
    assert_eq!(get(metrics, "/readyz").status, 503, "still draining");
    leave_and_hang_up(reader_a);
    leave_and_hang_up(reader_b);

    let status = server
        .wait_exit(Duration::from_secs(5).saturating_sub(signalled.elapsed()))
        .unwrap_or_else(|| panic!("still running after the drain timeout: {:#?}", server.log()));
    assert!(status.success(), "exit status {status}");
    server
        .wait_for_log(TIMEOUT, &["3 of 3 players left on their own, 0 cut"])
        .unwrap_or_else(|| panic!("no drain summary: {:#?}", server.log()));
}

#[cfg(unix)]
#[test]
fn players_still_there_at_the_drain_timeout_are_cut_and_the_process_exits_zero() {
    let timeout = Duration::from_secs(2);
    let (mut server, metrics) = start_binary(&["--drain-timeout", "2"]);
    let (mut a, _) = Client::enter(server.addr);
    let (mut b, _) = Client::enter(server.addr);

    let signalled = Instant::now();
    server.terminate();
    server
        .wait_for_log(
            TIMEOUT,
            &["draining: accepting no new players; 2 connected"],
        )
        .unwrap_or_else(|| panic!("no drain line: {:#?}", server.log()));
    assert_eq!(get(metrics, "/readyz").status, 503);
    a.chat("still here");
    assert_eq!(
        chats_from(&mut b, a.id, 1),
        ["still here"],
        "the room plays on during the drain"
    );

    for client in [&mut a, &mut b] {
        let closed = time_until_closed(&mut client.stream, timeout + TIMEOUT)
            .expect("cut at the drain timeout");
        let at = signalled.elapsed();
        assert!(
            at >= timeout - Duration::from_millis(100),
            "cut after {at:?}, before the {timeout:?} drain timeout ({closed:?})"
        );
    }
    let status = server
        .wait_exit(TIMEOUT)
        .unwrap_or_else(|| panic!("still running: {:#?}", server.log()));
    assert!(status.success(), "exit status {status}");
    server
        .wait_for_log(TIMEOUT, &["0 of 2 players left on their own, 2 cut"])
        .unwrap_or_else(|| panic!("no drain summary: {:#?}", server.log()));
}

#[cfg(unix)]
#[test]
fn a_second_signal_ends_the_drain_at_once() {
    let (mut server, _metrics) = start_binary(&["--drain-timeout", "600"]);
    let (mut player, _) = Client::enter(server.addr);
    server.terminate();
    server
        .wait_for_log(
            TIMEOUT,
            &["draining: accepting no new players; 1 connected"],
        )
        .unwrap_or_else(|| panic!("no drain line: {:#?}", server.log()));
    server.terminate();
    let status = server
        .wait_exit(TIMEOUT)
        .unwrap_or_else(|| panic!("the second signal did not stop it: {:#?}", server.log()));
    assert!(status.success(), "exit status {status}");
    assert!(server.wait_for_log(TIMEOUT, &["second signal"]).is_some());
    player.expect_closed();
}
