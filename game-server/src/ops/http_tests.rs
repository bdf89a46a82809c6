//! The HTTP endpoint: parsing from a buffer, then real sockets with small limits and
//! hostile peers (huge or endless heads, slow trickles, floods).

use super::*;
use std::io::{Read, Write};
use std::net::TcpStream;

/// Pages for the tests: `/ok`, `/slow` is never asked, `/panic` panics.
struct TestRoutes;

impl Routes for TestRoutes {
    fn get(&self, path: &str) -> Option<Response> {
        match path {
            "/ok" => Some(Response::text(200, "fine")),
            "/panic" => panic!("a bug in a page"),
            _ => None,
        }
    }
}

const SMALL: Limits = Limits {
    max_connections: 4,
    max_head: 1024,
    head_timeout: Duration::from_millis(300),
    write_timeout: Duration::from_millis(300),
};

fn server() -> HttpServer {
    HttpServer::start(
        "http-test",
        "127.0.0.1:0".parse().unwrap(),
        SMALL,
        TestRoutes,
    )
    .unwrap()
}

fn connect(server: &HttpServer) -> TcpStream {
    let stream = TcpStream::connect(server.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Everything the server sends until it closes (a reset counts as the end).
fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read: {e} after {:?}", String::from_utf8_lossy(&out)),
        }
    }
    String::from_utf8(out).unwrap()
}

fn ask(server: &HttpServer, request: &str) -> String {
    let mut stream = connect(server);
    stream.write_all(request.as_bytes()).unwrap();
    read_all(&mut stream)
}

fn status_of(answer: &str) -> &str {
    answer.split(' ').nth(1).unwrap_or(answer)
}

#[test]
fn heads_parse_from_a_buffer() {
    assert_eq!(
        parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"),
        Head::Incomplete
    );
    assert_eq!(
        parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
        Head::Get {
            path: "/metrics?x=1".into(),
            head_only: false
        }
    );
    assert_eq!(
        parse_head(b"HEAD /healthz HTTP/1.0\r\n\r\n"),
        Head::Get {
            path: "/healthz".into(),
            head_only: true
        }
    );
    let status = |head: &[u8]| match parse_head(head) {
        Head::Bad(r) => r.status,
        other => panic!("{other:?}"),
    };
    assert_eq!(status(b"POST /metrics HTTP/1.1\r\n\r\n"), 405);
    assert_eq!(status(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), 400); // TLS hello
    let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
    assert_eq!(
        status(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
        431
    );
    assert_eq!(path_of("/metrics?name[]=x#top"), "/metrics");
}

#[test]
fn get_head_unknown_paths_and_other_methods() {
    let server = server();
    let ok = ask(&server, "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("Content-Length: 5\r\n") && ok.ends_with("\r\n\r\nfine\n"),
        "{ok}"
    );
    let head = ask(&server, "HEAD /ok?x HTTP/1.1\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    assert_eq!(
        status_of(&ask(&server, "GET /nope HTTP/1.1\r\n\r\n")),
        "404"
    );
    let post = ask(&server, "POST /ok HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(status_of(&post), "405");
    assert!(post.contains("Allow: GET, HEAD\r\n"), "{post}");
    assert_eq!(status_of(&ask(&server, "hello\r\n\r\n")), "400");
    assert_eq!(
        status_of(&ask(&server, "GET /panic HTTP/1.1\r\n\r\n")),
        "500"
    );
    assert_eq!(status_of(&ask(&server, "GET /ok HTTP/1.1\r\n\r\n")), "200");
}

#[test]
fn a_huge_head_gets_431_and_others_are_served() {
    let server = server();
    // One header line longer than the whole head buffer.
    let huge = format!(
        "GET /ok HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let mut stream = connect(&server);
    // The server answers after 1 KiB and then drains the rest; write from a thread so a
    // full socket buffer cannot stall the test.
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(huge.as_bytes());
    });
    let answer = read_all(&mut stream);
    assert_eq!(status_of(&answer), "431", "{answer}");
    sender.join().unwrap();
    assert_eq!(status_of(&ask(&server, "GET /ok HTTP/1.1\r\n\r\n")), "200");
}

#[test]
fn an_endless_head_gets_431() {
    let server = server();
    let mut stream = connect(&server);
    stream.write_all(b"GET /ok HTTP/1.1\r\n").unwrap();
    // Valid header lines, and the blank line never comes.
    for i in 0..200 {
        if stream
            .write_all(format!("X-{i}: y\r\n").as_bytes())
            .is_err()
        {
            break; // the server answered and closed
        }
    }
    let answer = read_all(&mut stream);
    assert_eq!(status_of(&answer), "431", "{answer}");
}

#[test]
fn a_slow_trickle_gets_408_while_others_are_served() {
    let server = server();
    let mut slow = connect(&server);
    let started = Instant::now();
    for byte in b"GET /ok HTTP/1.1\r\nHost: a-very-slow-client\r\n\r\n" {
        // Meanwhile others are served at once.
        assert_eq!(status_of(&ask(&server, "GET /ok HTTP/1.1\r\n\r\n")), "200");
        if started.elapsed() > SMALL.head_timeout * 2 || slow.write_all(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    let answer = read_all(&mut slow);
    assert_eq!(status_of(&answer), "408", "{answer}");
}

#[test]
fn a_flood_of_connections_gets_503_past_the_limit_then_service_resumes() {
    let server = server();
    let idle: Vec<TcpStream> = (0..SMALL.max_connections)
        .map(|_| connect(&server))
        .collect();
    // Accepted in order, the idle ones take every slot first.
    let busy = ask(&server, "GET /ok HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(&busy), "503", "{busy}");
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    while status_of(&ask(&server, "GET /ok HTTP/1.1\r\n\r\n")) != "200" {
        assert!(
            Instant::now() < deadline,
            "not served again after the flood"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn idle_connections_time_out_and_stop_is_prompt() {
    let mut server = server();
    let mut idle = connect(&server);
    let started = Instant::now();
    let answer = read_all(&mut idle);
    assert_eq!(status_of(&answer), "408", "{answer}");
    assert!(started.elapsed() >= SMALL.head_timeout);
    let _open = connect(&server);
    let started = Instant::now();
    server.stop();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(TcpStream::connect(server.local_addr()).is_err());
}
