//! The `game-server` binary: `--help`, configuration from flags and the environment, the
//! start-up log line, and a graceful exit on SIGTERM.

mod util;

use std::process::Command;
use std::time::Duration;
use util::binary::{ServerProcess, BIN};
use util::{Client, TIMEOUT};

/// Every flag with its environment variable.
const FLAGS: [(&str, &str); 11] = [
    ("--addr", "GAME_SERVER_ADDR"),
    ("--threads", "GAME_SERVER_THREADS"),
    ("--max-sessions", "GAME_SERVER_MAX_SESSIONS"),
    ("--room-capacity", "GAME_SERVER_ROOM_CAPACITY"),
    ("--tick-ms", "GAME_SERVER_TICK_MS"),
    ("--max-send-queue", "GAME_SERVER_MAX_SEND_QUEUE"),
    ("--idle-timeout", "GAME_SERVER_IDLE_TIMEOUT"),
    ("--max-packet-size", "GAME_SERVER_MAX_PACKET_SIZE"),
    ("--metrics-addr", "GAME_SERVER_METRICS_ADDR"),
    ("--ws-addr", "GAME_SERVER_WS_ADDR"),
    ("--drain-timeout", "GAME_SERVER_DRAIN_TIMEOUT"),
];

#[test]
fn help_explains_every_flag_and_its_variable() {
    let out = Command::new(BIN)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for (flag, var) in FLAGS {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
        assert!(help.contains(var), "--help lacks {var}:\n{help}");
    }
}

#[cfg(unix)]
#[test]
fn serves_and_exits_zero_on_sigterm() {
    let mut server = ServerProcess::start(&["--addr", "127.0.0.1:0", "--threads", "1"]);
    let (mut client, list) = Client::enter(server.addr);
    assert_eq!(list.len(), 1);
    client.chat("bye");
    assert!(matches!(client.msg(), util::Msg::Chat { .. }));

    server.terminate();
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("exit within 5 s");
    assert!(status.success(), "exit status {status}");
    client.expect_closed();
}

#[test]
fn a_host_name_is_resolved_and_logged() {
    let mut server = ServerProcess::start(&["--addr", "localhost:0", "--threads", "1"]);
    assert!(server.addr.ip().is_loopback(), "{}", server.addr);
    let line = server
        .wait_for_log(TIMEOUT, &["--addr localhost:0 resolves to"])
        .expect("the resolution is logged");
    assert!(
        line.contains(&format!("using {}", server.addr.ip())),
        "{line}"
    );
    let (_client, list) = Client::enter(server.addr);
    assert_eq!(list.len(), 1);
}

#[test]
fn settings_come_from_the_environment_and_flags_win() {
    let mut command = Command::new(BIN);
    command
        .args(["--room-capacity", "3"])
        .env("GAME_SERVER_ADDR", "localhost:0")
        .env("GAME_SERVER_THREADS", "1")
        .env("GAME_SERVER_ROOM_CAPACITY", "99")
        .env("GAME_SERVER_TICK_MS", "20");
    let mut server = ServerProcess::spawn(command);
    assert!(server.addr.ip().is_loopback());
    server
        .wait_for_log(
            TIMEOUT,
            &["with 1 I/O threads (room capacity 3, tick 20 ms)"],
        )
        .unwrap_or_else(|| panic!("settings not applied: {:#?}", server.log()));
}

#[test]
fn bad_values_fail_at_start_naming_the_flag() {
    let fails_naming = |command: &mut Command, flag: &str| {
        let out = command.output().expect("run game-server");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command:?} started");
        assert!(stderr.contains(flag), "{command:?}: {stderr}");
    };
    for (flag, value) in [
        ("--max-sessions", "0"),
        ("--threads", "0"),
        ("--tick-ms", "soon"),
        ("--max-send-queue", "100"),
        ("--addr", "localhost"),
    ] {
        fails_naming(Command::new(BIN).args([flag, value]), flag);
    }
    for (var, value, flag) in [
        ("GAME_SERVER_IDLE_TIMEOUT", "-1", "--idle-timeout"),
        ("GAME_SERVER_MAX_PACKET_SIZE", "2", "--max-packet-size"),
        ("GAME_SERVER_DRAIN_TIMEOUT", "soon", "--drain-timeout"),
    ] {
        fails_naming(Command::new(BIN).env(var, value), flag);
    }
}
