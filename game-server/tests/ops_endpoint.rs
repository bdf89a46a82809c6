//! The operations endpoint (`--metrics-addr`): `/metrics` in the Prometheus text format
//! with counters that move under traffic, `/healthz` and `/readyz`.

mod util;

use game_server::GameServer;
use std::net::SocketAddr;
use std::time::Duration;
use util::binary::{address_after, ServerProcess};
use util::http::{get, request};
use util::prometheus::{parse, Scrape};
use util::{eventually, server, Client, Msg, TIMEOUT};

fn with_endpoint(tweak: impl FnOnce(&mut game_server::ServerConfig)) -> (GameServer, SocketAddr) {
    let server = server(|c| {
        c.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
        tweak(c);
    });
    let metrics = server.metrics_addr().expect("the endpoint runs");
    (server, metrics)
}

fn scrape(addr: SocketAddr) -> Scrape {
    let answer = get(addr, "/metrics");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        answer
            .head
            .contains("Content-Type: text/plain; version=0.0.4"),
        "{}",
        answer.head
    );
    parse(&answer.body).unwrap_or_else(|e| panic!("{e}\n{}", answer.body))
}

#[test]
fn metrics_move_while_players_chat_and_every_line_parses() {
    let (server, metrics) = with_endpoint(|_| {});
    let before = scrape(metrics);
    for (name, kind) in &before.types {
        assert!(
            name.starts_with("servercore_") || name.starts_with("game_"),
            "{name} has no servercore_/game_ prefix"
        );
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name} is a {kind}"
        );
        assert!(!before.help[name].is_empty(), "{name} has no help");
    }
    assert_eq!(before.value("servercore_sessions"), 0.0);
    assert_eq!(before.value("game_rooms"), 1.0);

    let mut clients: Vec<Client> = (0..3)
        .map(|_| Client::enter(server.local_addr()).0)
        .collect();
    for round in 0..10 {
        for i in 0..clients.len() {
            clients[i].chat(&format!("round {round}"));
            for c in &mut clients {
                assert!(matches!(c.msg(), Msg::Chat { .. } | Msg::Enter { .. }));
            }
        }
    }
    let after = scrape(metrics);
    for (name, kind) in &after.types {
        if kind == "counter" {
            assert!(after.value(name) >= before.value(name), "{name} went down");
        }
    }
    assert_eq!(after.value("servercore_sessions"), 3.0);
    assert_eq!(after.value("game_players"), 3.0);
    let received = after.value("servercore_packets_received_total");
    assert!(received >= 30.0, "30 chats, {received} packets received");
    for moved in [
        "servercore_received_bytes_total",
        "servercore_sent_bytes_total",
        "servercore_sends_total",
        "servercore_read_calls_total",
        "servercore_write_calls_total",
        "servercore_loop_iterations_total",
    ] {
        assert!(
            after.value(moved) > before.value(moved),
            "{moved} did not move"
        );
    }

    // The stats line reads the same numbers: once traffic is over they agree exactly.
    eventually("/metrics and GameServer::stats agree", || {
        let s = server.stats();
        let m = scrape(metrics);
        m.value("servercore_packets_received_total") == s.service.packets_in as f64
            && m.value("servercore_sent_bytes_total") == s.service.bytes_out as f64
            && m.value("servercore_sends_total") == s.service.packets_out as f64
    });

    drop(clients);
    eventually("players leave", || {
        scrape(metrics).value("game_players") == 0.0
    });
    server.shutdown();
    assert!(
        std::net::TcpStream::connect(metrics).is_err(),
        "endpoint still up"
    );
}

#[test]
fn health_readiness_and_other_requests() {
    let (server, metrics) = with_endpoint(|c| c.max_sessions = 2);
    let health = get(metrics, "/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    assert_eq!(get(metrics, "/readyz").status, 200);

    let a = Client::enter(server.local_addr()).0;
    let _b = Client::enter(server.local_addr()).0;
    eventually("full: /readyz 503", || {
        get(metrics, "/readyz").status == 503
    });
    assert_eq!(get(metrics, "/readyz").body, "full\n");
    assert_eq!(
        get(metrics, "/healthz").status,
        200,
        "full is still healthy"
    );
    drop(a);
    eventually("room again: /readyz 200", || {
        get(metrics, "/readyz").status == 200
    });

    let head = request(metrics, "HEAD", "/metrics");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(get(metrics, "/metrics?name[]=x").status, 200);
    assert_eq!(get(metrics, "/").status, 404);
    let post = request(metrics, "POST", "/metrics");
    assert_eq!(post.status, 405);
    assert!(post.head.contains("Allow: GET, HEAD"), "{}", post.head);
}

#[test]
fn the_binary_serves_metrics_on_the_address_from_its_environment() {
    let mut command = std::process::Command::new(util::binary::BIN);
    command
        .args(["--addr", "127.0.0.1:0", "--threads", "1"])
        .env("GAME_SERVER_METRICS_ADDR", "localhost:0");
    let mut server = ServerProcess::spawn(command);
    let line = server
        .wait_for_log(TIMEOUT, &["metrics, health and readiness on "])
        .expect("the endpoint's start-up line");
    let metrics = address_after(&line, "readiness on ");
    assert!(metrics.ip().is_loopback());
    let (_client, _) = Client::enter(server.addr);
    let scrape = scrape(metrics);
    assert_eq!(scrape.value("servercore_sessions"), 1.0);
    assert_eq!(scrape.value("servercore_io_threads"), 1.0);
    server.terminate();
    assert!(server
        .wait_exit(Duration::from_secs(5))
        .is_some_and(|s| s.success()));
}

#[test]
fn the_test_reader_of_the_text_format_is_strict() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total 3\n\
                # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n";
    let scrape = parse(good).unwrap();
    assert_eq!(scrape.value("a_total"), 3.0);
    assert_eq!(scrape.samples["h_bucket{le=\"+Inf\"}"], 2.0);
    for bad in [
        "a 1\n",                                      // no TYPE
        "# TYPE a counter\na -1\n",                   // negative counter
        "# TYPE a gauge\na 1\na 2\n",                 // series twice
        "# TYPE a gauge\na{x=\"1} 1\n",               // unterminated label
        "# TYPE a gauge\n# TYPE b gauge\nb 1\na 1\n", // split family
        "# TYPE 1a gauge\n",                          // bad name
        "# TYPE a gauge\na one\n",                    // bad value
        "# TYPE a gauge\na 1",                        // no final newline
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}
