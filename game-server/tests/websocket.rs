//! The browser port: the page, its scripts and 404 over plain HTTP, and the game over
//! WebSocket in the same rooms as TCP players (enter, see each other, move, chat both
//! ways, leave).

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use util::ws::WsClient;
use util::{server, Client, Msg};

/// A GET on a fresh connection; the whole answer (the server closes after it).
fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn the_browser_port_serves_the_page_its_scripts_and_404() {
    let server = server(|_| {});
    let addr = server.ws_addr().expect("the browser port is on");
    let page = get(addr, "/");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("Content-Type: text/html; charset=utf-8\r\n"));
    assert!(page.contains("<canvas id=\"world\""), "{page}");
    assert!(page.contains("<script type=\"module\" src=\"/app.js\">"));
    let app = get(addr, "/app.js");
    assert!(app.contains("Content-Type: text/javascript; charset=utf-8\r\n"));
    assert!(app.contains("from './packets.js'"));
    let packets = get(addr, "/packets.js");
    assert!(
        packets.contains("export class S_PlayerList"),
        "generated from PDL.xml"
    );
    assert!(get(addr, "/nope").starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert!(
        get(addr, "/ws").starts_with("HTTP/1.1 400 "),
        "a GET that is no upgrade"
    );
    assert_eq!(server.stats().players, 0, "a page load is not a player");
}

#[test]
fn browser_and_tcp_players_share_a_room() {
    let server = server(|_| {});
    let (tcp_addr, ws_addr) = (server.local_addr(), server.ws_addr().unwrap());
    let (mut tcp, _) = Client::enter(tcp_addr);
    let (mut web, list) = WsClient::enter(ws_addr);
    let ids: Vec<i32> = list.iter().map(|e| e.id).collect();
    assert_eq!(ids, [web.id, tcp.id], "the browser player sees the TCP one");
    assert_eq!(
        tcp.msg(),
        Msg::Enter {
            id: web.id,
            pos: [0.0; 3]
        }
    );

    web.move_to([1.5, 0.0, -20.0]);
    let moved = Msg::Move {
        id: web.id,
        pos: [1.5, 0.0, -20.0],
    };
    assert_eq!(tcp.msg(), moved);
    assert_eq!(web.msg(), moved);
    tcp.move_to([-3.0, 0.0, 7.25]);
    let moved = Msg::Move {
        id: tcp.id,
        pos: [-3.0, 0.0, 7.25],
    };
    assert_eq!(web.msg(), moved);
    assert_eq!(tcp.msg(), moved);

    let from_web = "hello from a browser 👋";
    web.chat(from_web);
    for msg in [tcp.msg(), web.msg()] {
        assert_eq!(
            msg,
            Msg::Chat {
                id: web.id,
                text: from_web.into()
            }
        );
    }
    tcp.chat("안녕, browser");
    for msg in [web.msg(), tcp.msg()] {
        assert_eq!(
            msg,
            Msg::Chat {
                id: tcp.id,
                text: "안녕, browser".into()
            }
        );
    }
    // Several packets in one message and a packet over two messages are both fine.
    let mut two = util::c_chat("one");
    two.extend(util::c_chat("two"));
    web.send(&two);
    let split = util::c_chat("split");
    web.send(&split[..3]);
    web.send(&split[3..]);
    for text in ["one", "two", "split"] {
        assert_eq!(
            tcp.msg(),
            Msg::Chat {
                id: web.id,
                text: text.into()
            }
        );
    }

    let web_id = web.id;
    drop(web);
    assert_eq!(tcp.msg(), Msg::Leave { id: web_id });
}

#[test]
fn ws_addr_off_means_no_browser_port() {
    let server = server(|c| c.ws_addr = None);
    assert_eq!(server.ws_addr(), None);
    let (_tcp, list) = Client::enter(server.local_addr());
    assert_eq!(list.len(), 1);
}
