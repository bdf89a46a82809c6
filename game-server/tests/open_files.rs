//! The open-file limit: the binary raises its soft limit to the hard one at start, so a
//! shell's `ulimit -Sn 1024` does not cap it at a thousand players, and it says at start
//! when the hard limit is too low for `--max-sessions`.

#![cfg(target_os = "linux")]

mod util;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};
use util::binary::{ServerProcess, BIN};
use util::TIMEOUT;

const CLIENTS: usize = 2_000;
/// Connections opened together before their player lists are read.
const BATCH: usize = 200;

/// `game-server ARGS` started by `sh` after `ulimit LIMIT_ARGS`.
fn under_ulimit(limit_args: &str, args: &[&str]) -> ServerProcess {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit {limit_args} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(args);
    ServerProcess::spawn(command)
}

/// Reads frames until the first `S_PlayerList` (id 4): other players' enter broadcasts
/// may come first.
fn read_player_list(stream: &mut TcpStream) {
    for _ in 0..=BATCH {
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).expect("a frame header");
        let size = usize::from(u16::from_le_bytes([header[0], header[1]]));
        let mut body = vec![0u8; size.saturating_sub(4)];
        stream.read_exact(&mut body).expect("a frame body");
        if u16::from_le_bytes([header[2], header[3]]) == 4 {
            return;
        }
    }
    panic!("no S_PlayerList among the first {BATCH} frames");
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
}

#[test]
fn two_thousand_players_under_a_soft_limit_of_1024() {
    // This process holds the client ends, so it needs the descriptors too.
    let mine = game_server::ops::raise_open_file_limit().expect("raise this test's limit");
    assert!(
        mine.soft > 2 * CLIENTS as u64 + 100,
        "this test needs a hard open-file limit above {}: {mine}",
        2 * CLIENTS + 100
    );

    let mut server = under_ulimit(
        "-Sn 1024",
        &[
            "--addr",
            "127.0.0.1:0",
            "--threads",
            "2",
            "--room-capacity",
            "100",
        ],
    );
    let line = server
        .wait_for_log(TIMEOUT, &["open-file limit: soft 1024 -> "])
        .expect("the raised limit is logged");
    assert!(!line.contains("-> 1024 "), "not raised: {line}");

    let started = Instant::now();
    let mut clients = Vec::with_capacity(CLIENTS);
    while clients.len() < CLIENTS {
        let mut batch: Vec<TcpStream> = (0..BATCH).map(|_| connect(server.addr)).collect();
        for stream in &mut batch {
            read_player_list(stream);
        }
        clients.extend(batch);
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{} clients after 2 minutes",
            clients.len()
        );
    }
    eprintln!("{CLIENTS} players in {:?}", started.elapsed());
    assert!(
        server.log().iter().all(|l| !l.contains("refused")),
        "refusals in the log"
    );
}

#[test]
fn a_hard_limit_too_low_for_max_sessions_is_reported_at_start() {
    let mut server = under_ulimit(
        "-n 1024",
        &[
            "--addr",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--max-sessions",
            "2000",
        ],
    );
    let warning = server
        .wait_for_log(TIMEOUT, &["open-file limit (1024)", "--max-sessions 2000"])
        .unwrap_or_else(|| panic!("no warning: {:#?}", server.log()));
    for fix in ["ulimit -n 2064", "LimitNOFILE=2064"] {
        assert!(warning.contains(fix), "{fix:?} missing: {warning}");
    }
}
