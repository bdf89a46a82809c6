//! Short real runs against an in-process game-server, and against nothing.

use clap::Parser;
use dummy_client::{run, Args, Error};
use std::time::{Duration, Instant};

fn args(extra: &[&str]) -> Args {
    Args::try_parse_from(std::iter::once("dummy-client").chain(extra.iter().copied())).unwrap()
}

fn start_server() -> game_server::GameServer {
    game_server::start(game_server::ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        ws_addr: Some("127.0.0.1:0".parse().unwrap()),
        threads: Some(2),
        ..game_server::ServerConfig::default()
    })
    .expect("start the game server")
}

#[test]
fn sessions_are_spread_round_robin_over_several_servers() {
    let servers = [start_server(), start_server()];
    let addrs = format!("{},{}", servers[0].local_addr(), servers[1].local_addr());
    let a = args(&[
        "--addr",
        &addrs,
        "--count",
        "10",
        "--interval-ms",
        "100",
        "--warmup",
        "0.3",
        "--duration",
        "1",
        "--threads",
        "2",
        "--quiet",
    ]);
    let report = run(&a).expect("the run succeeds");
    eprintln!("{}\n{}", report.to_table(), report.to_json());
    assert_eq!((report.connected, report.servers), (10, 2));
    // Two separate servers: two rooms of five, and nothing crosses.
    assert_eq!(report.expected, report.sent * 5);
    assert_eq!(report.delivery_ratio(), 1.0);
    assert_eq!(report.received_crossed, 0);
    assert!(report.to_table().contains("crossed"));
}

fn short_run(mode: &str) {
    let server = start_server();
    short_run_on(&server, &server.local_addr().to_string(), mode);
}

/// 20 sessions for two seconds against `addr` (a TCP address or a ws:// URL).
fn short_run_on(server: &game_server::GameServer, addr: &str, mode: &str) {
    let a = args(&[
        "--addr",
        addr,
        "--count",
        "20",
        "--mode",
        mode,
        "--interval-ms",
        "50",
        "--warmup",
        "0.5",
        "--duration",
        "2",
        "--threads",
        "2",
        "--quiet",
    ]);
    let report = run(&a).expect("the run succeeds");
    server.shutdown();
    eprintln!("{}\n{}", report.to_table(), report.to_json());
    assert_eq!(report.connected, 20);
    assert_eq!(report.failed, 0);
    assert_eq!(report.disconnects, 0);
    // 20 sessions × 20 sends/s × ~2 s.
    assert!(report.sent >= 600, "sent {}", report.sent);
    // Everyone is in one room: each send is owed to all 20.
    assert_eq!(report.expected, report.sent * 20);
    assert!(
        report.delivery_ratio() >= 0.999,
        "delivery {}",
        report.delivery_ratio()
    );
    assert!(report.latency_ms(0.5) > 0.0);
    assert!(report.latency_us.len() as u64 + report.lost_measurements >= report.sent * 99 / 100);
    assert_eq!(report.exit_code(), 0);
    assert!(report.failure().is_none());
}

#[test]
fn chat_run_against_an_in_process_server() {
    short_run("chat");
}

#[test]
fn move_run_against_an_in_process_server() {
    short_run("move");
}

#[test]
fn chat_run_over_websocket() {
    let server = start_server();
    let url = format!(
        "ws://{}/ws",
        server.ws_addr().expect("the browser port is on")
    );
    short_run_on(&server, &url, "chat");
}

#[test]
fn unreachable_server_is_an_error_within_ten_seconds() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let a = args(&[
        "--addr",
        &addr,
        "--count",
        "5",
        "--duration",
        "1",
        "--quiet",
    ]);
    let t0 = Instant::now();
    let err = run(&a).expect_err("nothing listens there");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert_eq!(err.exit_code(), 2);
    assert!(!err.to_string().contains('\n'));
}
