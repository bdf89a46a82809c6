//! `--cluster`: game-server processes sharing rooms over a real `redis-server` (started by
//! each test on a free loopback port, without persistence, and killed at the end).
//! Cross-process enter, player list, move, chat and leave; room capacity over processes;
//! unique ids; a process killed with SIGKILL; Redis unreachable at start, restarted while
//! running, and bad data on a room channel.
//!
//! Without redis-server installed these tests print why they skip; under `CI=true` they
//! fail instead.

mod util;

use game_server::{GameServer, ServerConfig};
use std::collections::HashSet;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use util::binary::{ServerProcess, BIN};
use util::redis::{available, RedisServer};
use util::{c_chat, eventually, Client, Msg, TIMEOUT};

/// A server of the cluster behind `redis`, with `tweak` applied to the test defaults.
fn clustered(redis: &RedisServer, tweak: impl FnOnce(&mut ServerConfig)) -> GameServer {
    // Every test of this file logs through the capturing logger (the first one wins).
    util::capture_logs();
    util::server(|c| {
        c.cluster = Some(redis.url());
        tweak(c);
    })
}

/// Reads packets until one satisfies `want`, skipping the others, for up to `within`.
fn wait_for(
    client: &mut Client,
    within: Duration,
    what: &str,
    mut want: impl FnMut(&Msg) -> bool,
) -> Msg {
    let deadline = Instant::now() + within;
    client.stream.set_read_timeout(Some(within)).unwrap();
    loop {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        let msg = client.msg();
        if want(&msg) {
            client.stream.set_read_timeout(Some(TIMEOUT)).unwrap();
            return msg;
        }
    }
}

fn ids(list: &[util::Entry]) -> Vec<i32> {
    list.iter().map(|e| e.id).collect()
}

#[test]
fn players_on_two_processes_share_the_room() {
    if !available("players_on_two_processes_share_the_room") {
        return;
    }
    let redis = RedisServer::start();
    let a = clustered(&redis, |_| {});
    let b = clustered(&redis, |_| {});

    // A watcher on B, known to A before a1 comes.
    let (mut w, _) = Client::enter(b.local_addr());
    eventually("A knows w", || {
        a.cluster_stats().unwrap().remote_players == 1
    });
    let (mut a1, list) = Client::enter(a.local_addr());
    assert_eq!(ids(&list), [a1.id, w.id]);
    a1.move_to([1.0, 2.0, 3.0]);
    assert_eq!(
        a1.msg(),
        Msg::Move {
            id: a1.id,
            pos: [1.0, 2.0, 3.0]
        }
    );
    assert_eq!(
        w.msg(),
        Msg::Enter {
            id: a1.id,
            pos: [0.0; 3]
        }
    );
    assert_eq!(
        w.msg(),
        Msg::Move {
            id: a1.id,
            pos: [1.0, 2.0, 3.0]
        }
    );

    // A newcomer on B lists the player on A, where it stands now.
    let (mut b1, list) = Client::enter(b.local_addr());
    assert_ne!(b1.id, a1.id);
    let mut others = ids(&list)[1..].to_vec();
    others.sort_unstable();
    let mut want = vec![a1.id, w.id];
    want.sort_unstable();
    assert_eq!(others, want, "{list:?}");
    let listed_a1 = list.iter().find(|e| e.id == a1.id).unwrap();
    assert_eq!(listed_a1.pos, [1.0, 2.0, 3.0]);
    assert_eq!(
        a1.msg(),
        Msg::Enter {
            id: b1.id,
            pos: [0.0; 3]
        }
    );

    // Moves cross in order; chat crosses, with the protocol unchanged.
    for i in 0..20 {
        b1.move_to([i as f32, 0.0, 0.0]);
    }
    for i in 0..20 {
        assert_eq!(
            a1.msg(),
            Msg::Move {
                id: b1.id,
                pos: [i as f32, 0.0, 0.0]
            }
        );
    }
    a1.chat("안녕, B 👋");
    let chat = Msg::Chat {
        id: a1.id,
        text: "안녕, B 👋".into(),
    };
    assert_eq!(a1.msg(), chat);
    let seen = wait_for(&mut b1, TIMEOUT, "a1's chat", |m| {
        matches!(m, Msg::Chat { .. })
    });
    assert_eq!(seen, chat);

    // A second newcomer on A lists everyone, with b1's last position (a1 saw it, so A
    // knows it).
    let (mut a2, list) = Client::enter(a.local_addr());
    assert_eq!(list.len(), 4);
    assert_eq!(
        list.iter().find(|e| e.id == b1.id).unwrap().pos,
        [19.0, 0.0, 0.0]
    );

    // Leaving crosses too.
    b1.leave();
    wait_for(&mut a1, TIMEOUT, "b1's leave", |m| {
        *m == Msg::Leave { id: b1.id }
    });
    wait_for(&mut a2, TIMEOUT, "b1's leave", |m| {
        *m == Msg::Leave { id: b1.id }
    });
    eventually("A forgets b1", || {
        a.cluster_stats().unwrap().remote_players == 1
    });
    eventually("A's heartbeat sees B", || {
        a.cluster_stats().unwrap().peers == 1
    });
    let stats = a.cluster_stats().unwrap();
    assert!(stats.redis_up, "{stats:?}");
    assert_eq!(
        stats.rejected + stats.dropped_queue_full + stats.dropped_redis_down,
        0
    );
}

#[test]
fn player_ids_are_unique_over_the_cluster() {
    if !available("player_ids_are_unique_over_the_cluster") {
        return;
    }
    let redis = RedisServer::start();
    let servers = [
        clustered(&redis, |_| {}),
        clustered(&redis, |_| {}),
        clustered(&redis, |_| {}),
    ];
    let mut seen = HashSet::new();
    let mut clients = Vec::new();
    for i in 0..30 {
        let client = Client::connect(servers[i % 3].local_addr());
        clients.push(client);
    }
    for client in &mut clients {
        let Msg::List(list) = client.msg() else {
            panic!("first packet is not S_PlayerList")
        };
        let me = list.iter().find(|e| e.is_self).unwrap().id;
        assert!(seen.insert(me), "id {me} handed out twice");
    }
}

#[test]
fn room_capacity_counts_the_players_of_every_process() {
    if !available("room_capacity_counts_the_players_of_every_process") {
        return;
    }
    let redis = RedisServer::start();
    let a = clustered(&redis, |c| c.room_capacity = 2);
    let b = clustered(&redis, |c| c.room_capacity = 2);
    let (mut a1, _) = Client::enter(a.local_addr());
    eventually("B sees a1", || {
        b.cluster_stats().unwrap().remote_players == 1
    });
    let (mut b1, list) = Client::enter(b.local_addr());
    assert_eq!(
        ids(&list),
        [b1.id, a1.id],
        "room 1, with a1 on the other process"
    );
    assert_eq!(
        a1.msg(),
        Msg::Enter {
            id: b1.id,
            pos: [0.0; 3]
        }
    );

    // Room 1 is full across the two processes: the next player opens room 2 ...
    let (mut a2, list) = Client::enter(a.local_addr());
    assert_eq!(ids(&list), [a2.id], "room 2");
    // ... which the next player on B joins, seeing a2 there.
    let (mut b2, list) = Client::enter(b.local_addr());
    assert_eq!(
        ids(&list),
        [b2.id, a2.id],
        "room 2 is the same room on both processes"
    );
    assert_eq!(
        a2.msg(),
        Msg::Enter {
            id: b2.id,
            pos: [0.0; 3]
        }
    );
    // And room 3 after that.
    let (_b3, list) = Client::enter(b.local_addr());
    assert_eq!(list.len(), 1);

    // Room 2's chat stays in room 2.
    a2.chat("room two");
    wait_for(&mut b2, TIMEOUT, "a2's chat", |m| {
        matches!(m, Msg::Chat { .. })
    });
    a1.expect_quiet();
    b1.expect_quiet();
}

#[test]
fn an_unreachable_redis_fails_the_start_naming_it() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let begin = Instant::now();
    let e = game_server::start(ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        cluster: Some(url.clone()),
        ..ServerConfig::default()
    })
    .expect_err("no Redis there");
    assert!(
        begin.elapsed() < Duration::from_secs(5),
        "{:?}",
        begin.elapsed()
    );
    let text = e.to_string();
    assert!(
        text.starts_with("--cluster: cannot reach Redis at 127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains(&port.to_string()), "{text}");

    // The binary: a clear line and a non-zero exit, within 5 s.
    let begin = Instant::now();
    let mut child = Command::new(BIN)
        .args(["--addr", "127.0.0.1:0", "--cluster", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if begin.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("still running after 5 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(!status.success());
    assert!(
        log.contains(&format!("cannot reach Redis at 127.0.0.1:{port}")),
        "{log}"
    );
}

#[cfg(unix)]
#[test]
fn a_killed_process_takes_its_players_out_of_the_room_within_the_ttl() {
    if !available("a_killed_process_takes_its_players_out_of_the_room_within_the_ttl") {
        return;
    }
    let redis = RedisServer::start();
    let url = redis.url();
    let mut doomed = ServerProcess::start(&[
        "--addr",
        "127.0.0.1:0",
        "--threads",
        "1",
        "--cluster",
        &url,
        "--cluster-ttl",
        "1",
    ]);
    let b = clustered(&redis, |c| c.cluster_ttl = 1);
    let (mut x1, _) = Client::enter(doomed.addr);
    eventually("B sees x1", || {
        b.cluster_stats().unwrap().remote_players == 1
    });
    let (mut b1, list) = Client::enter(b.local_addr());
    assert!(ids(&list).contains(&x1.id), "{list:?}");
    assert_eq!(
        x1.msg(),
        Msg::Enter {
            id: b1.id,
            pos: [0.0; 3]
        }
    );

    doomed.kill();
    let killed = Instant::now();
    wait_for(&mut b1, Duration::from_secs(10), "x1's leave", |m| {
        *m == Msg::Leave { id: x1.id }
    });
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(10), "{took:?}");
    eprintln!("the killed process's player left after {took:?} (TTL 1 s)");
    assert_eq!(b.cluster_stats().unwrap().remote_players, 0);

    // Its ids are not handed out again.
    let (b2, list) = Client::enter(b.local_addr());
    assert!(b2.id != x1.id && !ids(&list).contains(&x1.id));
}

#[test]
fn a_process_that_stops_takes_its_players_out_at_once() {
    if !available("a_process_that_stops_takes_its_players_out_at_once") {
        return;
    }
    let redis = RedisServer::start();
    let a = clustered(&redis, |_| {});
    let b = clustered(&redis, |_| {});
    let (a1, _) = Client::enter(a.local_addr());
    eventually("B sees a1", || {
        b.cluster_stats().unwrap().remote_players == 1
    });
    let (mut b1, _) = Client::enter(b.local_addr());
    let stopped = Instant::now();
    a.shutdown();
    wait_for(&mut b1, TIMEOUT, "a1's leave", |m| {
        *m == Msg::Leave { id: a1.id }
    });
    assert!(
        stopped.elapsed() < Duration::from_secs(2),
        "long before the 5 s TTL: {:?}",
        stopped.elapsed()
    );
    eventually("B's heartbeat sees A gone", || {
        b.cluster_stats().unwrap().peers == 0
    });
}

#[test]
fn bad_messages_on_a_room_channel_are_skipped() {
    if !available("bad_messages_on_a_room_channel_are_skipped") {
        return;
    }
    let redis = RedisServer::start();
    let a = clustered(&redis, |_| {});
    let (mut a1, _) = Client::enter(a.local_addr());
    let mut other_version = b"GS\x02\x01".to_vec();
    other_version.extend_from_slice(&[0; 28]);
    let mut client_packet = b"GS\x01\x01".to_vec();
    client_packet.extend_from_slice(&7u64.to_le_bytes());
    client_packet.extend_from_slice(&1u32.to_le_bytes());
    client_packet.extend_from_slice(&1u64.to_le_bytes());
    client_packet.extend_from_slice(&1u64.to_le_bytes());
    client_packet.extend_from_slice(&c_chat("a C_Chat is not a broadcast"));
    let garbage: [&[u8]; 3] = [b"hello", &other_version, &client_packet];
    for _ in 0..20 {
        for bytes in garbage {
            redis.command(&[b"PUBLISH", b"gs:room:1", bytes]);
        }
    }
    eventually("60 messages refused", || {
        a.cluster_stats().unwrap().rejected == 60
    });
    a1.chat("still here");
    assert!(matches!(a1.msg(), Msg::Chat { .. }));
}

#[test]
fn the_load_tester_spreads_over_processes_and_counts_what_crossed() {
    if !available("the_load_tester_spreads_over_processes_and_counts_what_crossed") {
        return;
    }
    use clap::Parser;
    let redis = RedisServer::start();
    let a = clustered(&redis, |_| {});
    let b = clustered(&redis, |_| {});
    let addrs = format!("{},{}", a.local_addr(), b.local_addr());
    let args = dummy_client::Args::try_parse_from([
        "dummy-client",
        "--addr",
        &addrs,
        "--count",
        "40",
        "--interval-ms",
        "100",
        "--warmup",
        "1",
        "--duration",
        "2",
        "--threads",
        "2",
        "--quiet",
    ])
    .unwrap();
    let report = dummy_client::run(&args).expect("the run succeeds");
    eprintln!("{}", report.to_table());
    assert_eq!((report.connected, report.disconnects), (40, 0));
    assert_eq!(report.servers, 2);
    assert_eq!(
        report.expected,
        report.sent * 40,
        "one room over both processes"
    );
    assert_eq!(report.delivery_ratio(), 1.0);
    // Half of each chat's 40 receivers are on the other process.
    assert_eq!(report.received_crossed * 2, report.received);
    // About one chat in 64 is timed to its 20 receivers over there.
    assert!(
        report.cross_latency_us.len() >= report.sent * 20 / 64 / 4,
        "{}",
        report.cross_latency_us.len()
    );
}

#[test]
fn metrics_show_the_cluster() {
    if !available("metrics_show_the_cluster") {
        return;
    }
    let redis = RedisServer::start();
    let a = clustered(&redis, |c| {
        c.metrics_addr = Some("127.0.0.1:0".parse().unwrap())
    });
    let b = clustered(&redis, |_| {});
    let (mut b1, _) = Client::enter(b.local_addr());
    b1.chat("counted");
    eventually("A sees b1 and has published its room's snapshot", || {
        let stats = a.cluster_stats().unwrap();
        stats.remote_players == 1 && stats.published >= 1
    });
    let answer = util::http::get(a.metrics_addr().unwrap(), "/metrics");
    assert_eq!(answer.status, 200);
    let scrape = util::prometheus::parse(&answer.body).expect("valid text format");
    assert_eq!(scrape.value("game_cluster_redis_up"), 1.0);
    assert_eq!(scrape.value("game_cluster_remote_players"), 1.0);
    assert!(scrape.value("game_cluster_messages_received_total") >= 1.0);
    assert!(scrape.value("game_cluster_messages_published_total") >= 1.0);
    assert_eq!(
        scrape.series(
            "game_cluster_messages_dropped_total",
            &[("reason", "redis_down")]
        ),
        0.0
    );
    // A single process has none of them.
    let single = util::server(|c| c.metrics_addr = Some("127.0.0.1:0".parse().unwrap()));
    let body = util::http::get(single.metrics_addr().unwrap(), "/metrics").body;
    assert!(!body.contains("game_cluster_"), "{body}");
}

#[test]
fn play_goes_on_while_redis_is_away_and_crosses_again_when_it_is_back() {
    if !available("play_goes_on_while_redis_is_away_and_crosses_again_when_it_is_back") {
        return;
    }
    let mut redis = RedisServer::start();
    let a = clustered(&redis, |c| c.cluster_ttl = 1);
    let b = clustered(&redis, |c| c.cluster_ttl = 1);
    let (mut a1, _) = Client::enter(a.local_addr());
    eventually("B knows a1", || {
        b.cluster_stats().unwrap().remote_players == 1
    });
    let (mut b1, list) = Client::enter(b.local_addr());
    assert_eq!(list.len(), 2);
    assert_eq!(
        a1.msg(),
        Msg::Enter {
            id: b1.id,
            pos: [0.0; 3]
        }
    );

    redis.stop();
    // Local play goes on: moves, chat, even a newcomer (ids from the block in hand).
    for i in 0..50 {
        a1.move_to([i as f32, 1.0, 0.0]);
        assert_eq!(
            a1.msg(),
            Msg::Move {
                id: a1.id,
                pos: [i as f32, 1.0, 0.0]
            }
        );
    }
    let (a2, list) = Client::enter(a.local_addr());
    assert!(ids(&list).contains(&a1.id), "{list:?}");
    eventually("A counts what it could not publish", || {
        let s = a.cluster_stats().unwrap();
        !s.redis_up && s.dropped_redis_down > 0
    });
    let lost_lines = util::logs_matching(&["lost Redis at", &redis.port.to_string()]).len();
    assert!(
        (1..=2).contains(&lost_lines),
        "the outage is logged once per process, not per packet: {lost_lines} lines"
    );

    redis.restart();
    // Back: B learns what it missed (a2 entered, a1 moved) from A's snapshot ...
    wait_for(
        &mut b1,
        Duration::from_secs(15),
        "a2's enter after the outage",
        |m| {
            *m == Msg::Enter {
                id: a2.id,
                pos: [0.0; 3],
            }
        },
    );
    // ... and what happens from now on crosses again.
    let deadline = Instant::now() + Duration::from_secs(15);
    b1.stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut crossed = false;
    while !crossed && Instant::now() < deadline {
        a1.move_to([100.0, 0.0, 0.0]);
        let mut buf = [0u8; 4];
        if std::io::Read::read_exact(&mut b1.stream, &mut buf).is_ok() {
            let size = usize::from(u16::from_le_bytes([buf[0], buf[1]]));
            let mut rest = vec![0u8; size - 4];
            b1.stream.set_read_timeout(Some(TIMEOUT)).unwrap();
            std::io::Read::read_exact(&mut b1.stream, &mut rest).unwrap();
            b1.stream
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut whole = buf.to_vec();
            whole.extend(rest);
            crossed = util::parse(&whole)
                == Msg::Move {
                    id: a1.id,
                    pos: [100.0, 0.0, 0.0],
                };
        }
    }
    assert!(crossed, "a1's moves reach B again");
    eventually("every connection of A is back", || {
        a.cluster_stats().unwrap().redis_up
    });
    assert_eq!(a.cluster_stats().unwrap().redis_outages, 1);
    assert!(!util::logs_matching(&["Redis at", "is back after"]).is_empty());
}

#[test]
fn help_explains_the_cluster_flags() {
    let out = Command::new(BIN)
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8(out.stdout).unwrap();
    for word in [
        "--cluster ",
        "GAME_SERVER_CLUSTER",
        "--cluster-ttl",
        "GAME_SERVER_CLUSTER_TTL",
    ] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
    let bad = Command::new(BIN)
        .args(["--cluster", "http://x"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--cluster"));
}
