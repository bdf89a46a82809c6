//! Command-line handling: defaults, every flag, and rejected values.

use clap::Parser;
use dummy_client::{Args, Mode, Target};
use std::net::SocketAddr;
use std::time::Duration;

fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
    Args::try_parse_from(std::iter::once("dummy-client").chain(extra.iter().copied()))
}

#[test]
fn defaults() {
    let a = parse(&[]).unwrap();
    assert_eq!(
        a.addr,
        [Target::Tcp("127.0.0.1:7777".parse::<SocketAddr>().unwrap())]
    );
    assert_eq!(a.count, 500);
    assert_eq!(a.mode, Mode::Chat);
    assert_eq!(a.interval_ms, 250);
    assert_eq!(a.interval(), Duration::from_millis(250));
    assert_eq!(a.duration, Duration::ZERO);
    assert_eq!(a.warmup, Duration::from_secs(2));
    assert_eq!(a.connect_rate, None);
    assert_eq!(a.threads, None);
    assert!(!a.json);
    assert!(!a.quiet);
}

#[test]
fn every_flag() {
    let a = parse(&[
        "--addr",
        "127.0.0.1:9000",
        "--count",
        "5000",
        "--mode",
        "move",
        "--interval-ms",
        "100",
        "--duration",
        "10",
        "--warmup",
        "0.5",
        "--connect-rate",
        "250",
        "--threads",
        "3",
        "--json",
        "--quiet",
    ])
    .unwrap();
    assert_eq!(
        a.addr,
        [Target::Tcp("127.0.0.1:9000".parse::<SocketAddr>().unwrap())]
    );
    assert_eq!(a.count, 5000);
    assert_eq!(a.mode, Mode::Move);
    assert_eq!(a.interval_ms, 100);
    assert_eq!(a.duration, Duration::from_secs(10));
    assert_eq!(a.warmup, Duration::from_millis(500));
    assert_eq!(a.connect_rate, Some(250.0));
    assert_eq!(a.threads, Some(3));
    assert!(a.json);
    assert!(a.quiet);
}

#[test]
fn a_websocket_url_targets_the_browser_port() {
    let a = parse(&["--addr", "ws://127.0.0.1:7780/ws"]).unwrap();
    let [Target::WebSocket(url)] = &a.addr[..] else {
        panic!("{:?}", a.addr);
    };
    assert_eq!((url.host(), url.path()), ("127.0.0.1:7780", "/ws"));
    assert_eq!(a.addr[0].to_string(), "ws://127.0.0.1:7780/ws");
    for bad in [
        "wss://127.0.0.1:7780/ws",
        "http://127.0.0.1:7780/",
        "ws://127.0.0.1:x/ws",
    ] {
        let error = parse(&["--addr", bad]).unwrap_err().to_string();
        assert!(error.contains("--addr"), "{bad}: {error}");
    }
}

#[test]
fn chat_mode_and_host_names() {
    let a = parse(&[
        "--mode",
        "chat",
        "--addr",
        "localhost:7777",
        "--warmup",
        "0",
    ])
    .unwrap();
    assert_eq!(a.mode, Mode::Chat);
    assert_eq!(a.addr[0].socket_addr().port(), 7777);
    assert!(a.addr[0].socket_addr().ip().is_loopback());
    assert_eq!(a.warmup, Duration::ZERO);
}

#[test]
fn several_servers_separated_by_commas() {
    let a = parse(&[
        "--addr",
        "127.0.0.1:7001,127.0.0.1:7002,ws://localhost:7003/ws",
    ])
    .unwrap();
    let ports: Vec<u16> = a.addr.iter().map(|t| t.socket_addr().port()).collect();
    assert_eq!(ports, [7001, 7002, 7003]);
    assert!(matches!(a.addr[2], Target::WebSocket(_)));
    assert!(parse(&["--addr", "127.0.0.1:7001,nowhere"]).is_err());
}

#[test]
fn interval_zero_means_idle_sessions() {
    let a = Args::try_parse_from(["dummy-client", "--interval-ms", "0"]).unwrap();
    assert!(a.interval().is_zero());
}

#[test]
fn rejects_bad_values() {
    for bad in [
        &["--mode", "fly"][..],
        &["--count", "0"],
        &["--count", "-3"],
        &["--count", "many"],
        &["--interval-ms", "3600001"],
        &["--duration", "-1"],
        &["--duration", "soon"],
        &["--duration", "inf"],
        &["--warmup", "NaN"],
        &["--connect-rate", "0"],
        &["--connect-rate", "-5"],
        &["--threads", "0"],
        &["--addr", "not an address"],
        &["--addr", "127.0.0.1"],
        &["--bogus"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn help_explains_the_counting() {
    let help = Args::command_help();
    assert!(help.contains("--connect-rate"), "{help}");
    assert!(help.contains("move mode"), "{help}");
    assert!(help.contains("Exit status"), "{help}");
}

trait HelpText {
    fn command_help() -> String;
}

impl HelpText for Args {
    fn command_help() -> String {
        use clap::CommandFactory;
        Args::command().render_long_help().to_string()
    }
}
