//! One hostile client must not empty a room: honest sessions chat 4 times a second while a
//! flooder sends valid packets as fast as its socket allows and reads everything. With the
//! game server's default flags no honest session is disconnected, every honest chat is
//! delivered, memory stays bounded, and the flooder is throttled (default) or cut (under
//! `--rate-policy disconnect`). Latency under flood is a benchmark (docs/benchmarks.md), not
//! asserted here.

use clap::Parser;
use dummy_client::{run, Args};
use game_server::{RatePolicy, ServerConfig};
use server_core::DisconnectKind;

fn flood_run(
    config: ServerConfig,
    flood_mode: &str,
) -> (dummy_client::Report, game_server::GameStats) {
    let server = game_server::start(ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        threads: Some(2),
        ..config
    })
    .expect("start the game server");
    let addr = server.local_addr().to_string();
    let args = Args::try_parse_from([
        "dummy-client",
        "--addr",
        &addr,
        "--count",
        "20",
        "--interval-ms",
        "250",
        "--warmup",
        "1",
        "--duration",
        "3",
        "--threads",
        "1",
        "--flooders",
        "1",
        "--flood-mode",
        flood_mode,
        "--quiet",
    ])
    .unwrap();
    let report = run(&args).expect("the run succeeds");
    let stats = server.stats();
    server.shutdown();
    eprintln!("{}\n{}", report.to_table(), report.to_json());
    (report, stats)
}

fn assert_honest_sessions_unharmed(report: &dummy_client::Report) {
    assert_eq!(report.connected, 20);
    assert_eq!(report.disconnects, 0, "{:?}", report.first_disconnect);
    assert!(
        report.sent >= 150,
        "20 sessions × 4/s × ~3 s: {}",
        report.sent
    );
    assert!(
        report.delivery_ratio() >= 0.999,
        "honest delivery {}",
        report.delivery_ratio()
    );
    assert!(
        report.flood_sent > 1_000,
        "the flooder did flood: {}",
        report.flood_sent
    );
    assert!(rss_mib() < 100, "RSS {} MiB", rss_mib());
}

#[test]
fn a_chat_flood_is_throttled_and_the_room_carries_on() {
    let (report, stats) = flood_run(ServerConfig::default(), "chat");
    assert_honest_sessions_unharmed(&report);
    assert_eq!(report.delivery_ratio(), 1.0, "chat delivery is exact");
    assert_eq!(report.flooders_cut, 0, "throttled, not cut");
    assert!(stats.service.rate_limited_packets > 0);
    assert!(stats.service.rate_limit_episodes >= 1);
}

#[test]
fn a_move_flood_is_throttled_and_the_room_carries_on() {
    let (report, stats) = flood_run(ServerConfig::default(), "move");
    assert_honest_sessions_unharmed(&report);
    assert!(stats.service.rate_limited_packets > 0);
}

#[test]
fn under_the_disconnect_policy_the_flooder_alone_is_cut() {
    let config = ServerConfig {
        rate_policy: RatePolicy::Disconnect,
        rate_grace: 1,
        ..ServerConfig::default()
    };
    let (report, stats) = flood_run(config, "chat");
    assert_honest_sessions_unharmed(&report);
    assert_eq!(report.flooders_cut, 1);
    assert_eq!(
        stats.service.disconnects.get(DisconnectKind::RateLimited),
        1
    );
}

/// Without a rate limit, backpressure still bounds what a flooder can pile up (its reading
/// pauses while its jobs wait for the room's tick): nobody is cut and memory stays bounded.
/// It does not bound the CPU the flood costs, so honest latency suffers; that is what the
/// rate limit is for.
#[test]
fn with_no_rate_limit_backpressure_alone_bounds_the_flood() {
    let config = ServerConfig {
        rate_packets: 0,
        ..ServerConfig::default()
    };
    let (report, stats) = flood_run(config, "chat");
    assert_eq!(report.connected, 20);
    assert_eq!(report.disconnects, 0, "{:?}", report.first_disconnect);
    assert_eq!(report.flooders_cut, 0);
    assert!(
        stats.service.read_pauses > 0,
        "the flooder's reading paused"
    );
    assert!(rss_mib() < 100, "RSS {} MiB", rss_mib());
}

/// This test process's resident memory (server, clients and flooder together).
fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}
