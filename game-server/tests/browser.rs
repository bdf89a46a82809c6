//! The web page with real JavaScript engines: headless Chromium loads it with `?say=...`,
//! enters the room over WebSocket and chats, and a TCP player in the same room receives
//! that chat; node checks that the page's scripts parse as ES modules.
//!
//! Needs `chromium` and `node` (Debian: `apt-get install chromium nodejs`). Without them
//! the tests print why they skipped and pass, except under `CI=true`, where they fail.

#![cfg(target_os = "linux")]

mod util;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use util::{server, Client, Msg};

/// Longest wait for the browser to start, load the page, connect and chat (well under two
/// seconds here; the rest is room for a loaded machine).
const PATIENCE: Duration = Duration::from_secs(60);

/// The first of `names` on the PATH; `None` (with the reason printed) outside CI, a
/// failure under `CI=true`.
fn tool(names: &[&str], package: &str, test: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH").unwrap_or_default();
    let found = names.iter().find_map(|name| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        let what = names.join(" or ");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: CI=true but {what} is not on PATH (apt-get install {package})"
        );
        eprintln!(
            "skipped {test}: {what} is not on PATH (apt-get install {package}; under CI=true this fails)"
        );
    }
    found
}

/// Headless Chromium showing one page, in its own process group with a fresh profile;
/// dropping it kills the whole group and removes the profile.
struct Browser {
    child: Child,
    profile: PathBuf,
}

impl Browser {
    fn open(chromium: &Path, url: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "chromium-profile-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        let child = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: renderer and helper processes go with it on drop.
            .process_group(0)
            .spawn()
            .expect("start chromium");
        Self { child, profile }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals the process group we created for
            // this child (process_group(0) made its pid the group id); no memory involved.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[test]
fn a_browser_player_chats_with_a_tcp_player() {
    let Some(chromium) = tool(
        &["chromium", "chromium-browser"],
        "chromium",
        "a_browser_player_chats_with_a_tcp_player",
    ) else {
        return;
    };
    let server = server(|_| {});
    let (mut tcp, _) = Client::enter(server.local_addr());
    tcp.stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let page = format!(
        "http://{}/?say=hello-from-browser",
        server.ws_addr().expect("the browser port is on")
    );
    let started = Instant::now();
    let browser = Browser::open(&chromium, &page);

    // The browser's player enters the room, then says what the page was asked to say.
    let Msg::Enter { id: browser_id, .. } = tcp.msg() else {
        panic!("the browser player did not enter first");
    };
    assert_eq!(
        tcp.msg(),
        Msg::Chat {
            id: browser_id,
            text: "hello-from-browser".into()
        }
    );
    eprintln!("the browser's chat arrived after {:?}", started.elapsed());
    drop(browser);
    assert_eq!(tcp.msg(), Msg::Leave { id: browser_id }, "killed: it left");
}

#[test]
fn the_page_scripts_parse_as_modules() {
    let Some(node) = tool(
        &["node", "nodejs"],
        "nodejs",
        "the_page_scripts_parse_as_modules",
    ) else {
        return;
    };
    let server = server(|_| {});
    let addr = server.ws_addr().unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("page-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for script in ["app.js", "packets.js"] {
        let source = fetch(addr, script);
        // .mjs: node parses it as the browser does, an ES module.
        let path = dir.join(script.replace(".js", ".mjs"));
        std::fs::write(&path, source).unwrap();
        let out = Command::new(&node)
            .arg("--check")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script} does not parse: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The body of `GET /name` from the browser port.
fn fetch(addr: std::net::SocketAddr, name: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    write!(stream, "GET /{name} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    body.to_owned()
}
