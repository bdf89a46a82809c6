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

/// Every metric the endpoint serves, with its type.
const METRICS: [(&str, &str); 24] = [
    ("servercore_loops", "gauge"),
    ("servercore_loops_alive", "gauge"),
    ("servercore_sessions", "gauge"),
    ("servercore_sessions_accepted_total", "counter"),
    ("servercore_sessions_refused_total", "counter"),
    ("servercore_disconnects_total", "counter"),
    ("servercore_received_packets_total", "counter"),
    ("servercore_received_bytes_total", "counter"),
    ("servercore_sent_packets_total", "counter"),
    ("servercore_sent_bytes_total", "counter"),
    ("servercore_send_queue_bytes", "gauge"),
    ("servercore_read_calls_total", "counter"),
    ("servercore_write_calls_total", "counter"),
    ("servercore_loop_iterations_total", "counter"),
    ("servercore_rate_limited_packets_total", "counter"),
    ("servercore_rate_limit_episodes_total", "counter"),
    ("servercore_read_pauses_total", "counter"),
    ("servercore_panics_total", "counter"),
    ("servercore_loop_up", "gauge"),
    ("servercore_loop_busy_seconds", "gauge"),
    ("servercore_job_lag_seconds", "histogram"),
    ("game_rooms", "gauge"),
    ("game_players", "gauge"),
    ("game_rooms_by_players", "gauge"),
];

/// Every disconnect reason, as server-core labels them.
const REASONS: [&str; 13] = [
    "peer_closed",
    "peer_closed_mid_frame",
    "framing",
    "handler",
    "panicked",
    "slow_reader",
    "send_queue_overflow",
    "rate_limited",
    "idle_timeout",
    "local",
    "shutdown",
    "loop_died",
    "io",
];

/// Checks the conventions on every family and the shape of every histogram-like one.
fn check_conventions(scrape: &Scrape) {
    for (name, kind) in &scrape.types {
        assert!(
            name.starts_with("servercore_") || name.starts_with("game_"),
            "{name} has no servercore_/game_ prefix"
        );
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name} is a {kind}"
        );
        assert!(!scrape.help[name].is_empty(), "{name} has no help");
    }
    for (name, kind) in METRICS {
        assert_eq!(
            scrape.types.get(name).map(String::as_str),
            Some(kind),
            "{name}"
        );
    }
    assert_eq!(
        scrape.types.len(),
        METRICS.len(),
        "{:?}",
        scrape.types.keys()
    );
    for reason in REASONS {
        scrape.series("servercore_disconnects_total", &[("reason", reason)]);
    }
    for place in ["hook", "task", "job"] {
        scrape.series("servercore_panics_total", &[("where", place)]);
    }
    let loops = scrape.value("servercore_loops");
    for index in 0..loops as usize {
        let label = [("loop", &*index.to_string())];
        scrape.series("servercore_loop_up", &label);
        assert!(scrape.series("servercore_loop_busy_seconds", &label) >= 0.0);
    }
    let lag = cumulative_buckets(scrape, "servercore_job_lag_seconds_bucket");
    assert_eq!(lag.len(), 26, "1 µs to 16.8 s, then +Inf");
    assert_eq!(lag[0].0, 1e-6);
    assert_eq!(
        lag.last().unwrap().1,
        scrape.value("servercore_job_lag_seconds_count"),
        "+Inf holds every observation"
    );
    assert!(scrape.value("servercore_job_lag_seconds_sum") >= 0.0);
    let rooms = cumulative_buckets(scrape, "game_rooms_by_players");
    assert_eq!(rooms.last().unwrap().1, scrape.value("game_rooms"));
}

/// The buckets of `name`, checked to be cumulative and to end with `+Inf`.
fn cumulative_buckets(scrape: &Scrape, name: &str) -> Vec<(f64, f64)> {
    let buckets = scrape.buckets(name);
    assert!(!buckets.is_empty(), "no buckets of {name}");
    assert_eq!(
        buckets.last().unwrap().0,
        f64::INFINITY,
        "{name} ends with +Inf"
    );
    for pair in buckets.windows(2) {
        assert!(
            pair[0].1 <= pair[1].1,
            "{name} is not cumulative: {buckets:?}"
        );
    }
    buckets
}

#[test]
fn metrics_move_while_players_chat_and_every_line_parses() {
    let (server, metrics) = with_endpoint(|c| c.room_capacity = 2);
    let before = scrape(metrics);
    check_conventions(&before);
    assert_eq!(before.value("servercore_sessions"), 0.0);
    assert_eq!(before.value("servercore_loops"), 2.0);
    assert_eq!(before.value("servercore_loops_alive"), 2.0);
    assert_eq!(before.value("game_rooms"), 1.0);
    assert_eq!(
        before.buckets("game_rooms_by_players")[0],
        (0.0, 1.0),
        "the first room, empty"
    );

    // Three players in rooms of two: one room of 2, one of 1.
    let mut clients: Vec<Client> = (0..3)
        .map(|_| Client::enter(server.local_addr()).0)
        .collect();
    for round in 0..10 {
        for c in &mut clients {
            c.chat(&format!("round {round}"));
        }
        for c in &mut clients {
            // Each hears its own room: its own chat, and its roommate's.
            while !matches!(c.msg(), Msg::Chat { id, .. } if id == c.id) {}
        }
    }
    let after = scrape(metrics);
    check_conventions(&after);
    for (name, kind) in &after.types {
        if kind == "counter" {
            for (series, value) in after
                .samples
                .iter()
                .filter(|(s, _)| s.starts_with(name.as_str()))
            {
                assert!(*value >= before.samples[series], "{series} went down");
            }
        }
    }
    assert_eq!(after.value("servercore_sessions"), 3.0);
    assert_eq!(after.value("servercore_sessions_accepted_total"), 3.0);
    assert_eq!(after.value("game_players"), 3.0);
    assert_eq!(after.value("game_rooms"), 2.0);
    let rooms = after.buckets("game_rooms_by_players");
    assert_eq!(
        &rooms[..4],
        [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (5.0, 2.0)]
    );
    let received = after.value("servercore_received_packets_total");
    assert!(received >= 30.0, "30 chats, {received} packets received");
    let sent = after.value("servercore_sent_packets_total");
    assert!(sent >= 50.0, "50 chats delivered, {sent} packets sent");
    for moved in [
        "servercore_received_bytes_total",
        "servercore_sent_bytes_total",
        "servercore_read_calls_total",
        "servercore_write_calls_total",
        "servercore_loop_iterations_total",
        "servercore_job_lag_seconds_count",
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
        m.value("servercore_received_packets_total") == s.service.packets_in as f64
            && m.value("servercore_sent_bytes_total") == s.service.bytes_out as f64
            && m.value("servercore_sent_packets_total") == s.service.packets_out as f64
            && m.value("servercore_job_lag_seconds_count") == s.service.job_lag.count() as f64
    });

    // Two hang up, one says C_LeaveGame first; each closes its side and reads to the end
    // (dropping a socket with bytes unread would reset it: reason `io`).
    let peer_closed =
        |s: &Scrape| s.series("servercore_disconnects_total", &[("reason", "peer_closed")]);
    clients[2].leave();
    for mut client in clients {
        client.stream.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(util::time_until_closed(&mut client.stream, TIMEOUT).is_some());
    }
    eventually("players leave", || {
        let m = scrape(metrics);
        m.value("game_players") == 0.0 && m.value("servercore_sessions") == 0.0
    });
    let gone = scrape(metrics);
    check_conventions(&gone);
    assert_eq!(peer_closed(&gone) - peer_closed(&before), 3.0);
    assert_eq!(
        gone.value("game_rooms"),
        1.0,
        "the empty second room closed"
    );
    assert_eq!(gone.buckets("game_rooms_by_players")[0], (0.0, 1.0));
    server.shutdown();
    assert!(
        std::net::TcpStream::connect(metrics).is_err(),
        "endpoint still up"
    );
}

#[test]
fn a_dead_io_thread_fails_health_and_readiness_and_shows_in_the_metrics() {
    let (server, metrics) = with_endpoint(|_| {});
    // Sessions are spread over both threads.
    let clients: Vec<Client> = (0..4)
        .map(|_| Client::enter(server.local_addr()).0)
        .collect();
    assert_eq!(get(metrics, "/healthz").status, 200);
    assert!(server.inject_loop_fault(1));
    eventually("/healthz 503", || get(metrics, "/healthz").status == 503);
    assert_eq!(get(metrics, "/healthz").body, "I/O thread 1 is dead\n");
    let ready = get(metrics, "/readyz");
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (503, "unhealthy: I/O thread 1 is dead\n")
    );
    let m = scrape(metrics);
    check_conventions(&m);
    assert_eq!(m.series("servercore_loop_up", &[("loop", "0")]), 1.0);
    assert_eq!(m.series("servercore_loop_up", &[("loop", "1")]), 0.0);
    assert_eq!(m.value("servercore_loops_alive"), 1.0);
    // Accepted sessions go round robin, two to each thread; the dead one's are closed
    // just after it is marked dead.
    eventually("the dead thread's sessions are closed as loop_died", || {
        let m = scrape(metrics);
        let died = m.series("servercore_disconnects_total", &[("reason", "loop_died")]);
        died == 2.0 && m.value("servercore_sessions") == 2.0
    });
    // The rest goes on: the listener moved to the live thread.
    let (_late, _) = Client::enter(server.local_addr());
    drop(clients);
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
    assert_eq!(scrape.value("servercore_loops"), 1.0);
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
