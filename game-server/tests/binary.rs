//! The `game-server` binary: `--help`, the start-up log line, and a graceful exit on SIGTERM.

mod util;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use util::{Client, TIMEOUT};

const BIN: &str = env!("CARGO_BIN_EXE_game-server");

#[test]
fn help_explains_every_flag() {
    let out = Command::new(BIN)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--addr",
        "--threads",
        "--max-sessions",
        "--room-capacity",
        "--tick-ms",
        "--max-send-queue",
        "--idle-timeout",
        "--max-packet-size",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[cfg(unix)]
#[test]
fn serves_and_exits_zero_on_sigterm() {
    let mut child = Command::new(BIN)
        .args(["--addr", "127.0.0.1:0", "--threads", "1"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn game-server");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx.recv_timeout(TIMEOUT).expect("start-up log line");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };

    let (mut client, list) = Client::enter(addr);
    assert_eq!(list.len(), 1);
    client.chat("bye");
    assert!(matches!(client.msg(), util::Msg::Chat { .. }));

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no exit within 5 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "exit status {status}");
    client.expect_closed();
}
