//! The standalone C# client (`clients/csharp/`) against a live game-server: its console
//! sample, compiled by `mcs` and run under `mono`, plays in the same room as a Rust client,
//! and each sees the other. Also runs the C# runtime's own framing checks.
//!
//! Needs `mcs` and `mono` (Debian: `apt-get install mono-mcs`). Without them the tests
//! print why they skipped and pass, except under `CI=true`, where they fail.

mod util;

use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use util::{Client, Msg};

/// Longest wait for a step that involves the C# process (mono starts in well under a
/// second; this leaves room for a loaded machine).
const PATIENCE: Duration = Duration::from_secs(30);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("game-server lives in the workspace")
        .to_path_buf()
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The built `Sample.exe` and `RuntimeChecks.exe`'s directory, built once per test binary
/// by `clients/csharp/build.sh`; `None` (with the reason printed) when mcs or mono is
/// missing outside CI.
fn built() -> Option<&'static Path> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let missing: Vec<&str> = ["mcs", "mono"]
                .into_iter()
                .filter(|p| !on_path(p))
                .collect();
            if !missing.is_empty() {
                let what = missing.join(" and ");
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true but {what} not on PATH: the C# client cannot be tested \
                     (apt-get install mono-mcs)"
                );
                eprintln!(
                    "skipped: {what} not on PATH, so the C# client is not tested \
                     (apt-get install mono-mcs; under CI=true this fails)"
                );
                return None;
            }
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("csharp-client");
            let script = workspace_root().join("clients/csharp/build.sh");
            let mut build = Command::new("bash");
            build.arg(&script).arg(&out);
            let (status, stdout, stderr) = run_to_end(build, Duration::from_secs(180));
            assert!(
                status.is_some_and(|s| s.success()),
                "clients/csharp/build.sh failed ({status:?}):\n{stdout}\n{stderr}"
            );
            Some(out)
        })
        .as_deref()
}

/// A child process whose output is collected on threads, killed if dropped while running.
struct Running {
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl Running {
    fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        let stdout = child.stdout.take().map(collect);
        let stderr = child.stderr.take().map(collect);
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits up to `within`, killing the process if it is still running then. Returns its
    /// exit status (`None` when it had to be killed), stdout and stderr.
    fn finish(mut self, within: Duration) -> (Option<ExitStatus>, String, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        let text = |h: Option<JoinHandle<String>>| h.map(|h| h.join().unwrap_or_default());
        let stdout = text(self.stdout.take()).unwrap_or_default();
        let stderr = text(self.stderr.take()).unwrap_or_default();
        (status, stdout, stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

fn run_to_end(command: Command, within: Duration) -> (Option<ExitStatus>, String, String) {
    Running::spawn(command).finish(within)
}

/// The next packet for `client`, or `None` when none came within its read timeout.
fn next_msg(client: &mut Client) -> Option<Msg> {
    let mut header = [0u8; 4];
    match client.stream.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return None,
        Err(e) => panic!("the Rust client's connection failed: {e}"),
    }
    let size = usize::from(u16::from_le_bytes([header[0], header[1]]));
    let mut frame = header.to_vec();
    frame.resize(size.max(4), 0);
    client.stream.read_exact(&mut frame[4..]).ok()?;
    Some(util::parse(&frame))
}

fn sample(dir: &Path, server: SocketAddr, until_chat: &str) -> Running {
    let mut mono = Command::new("mono");
    mono.arg(dir.join("Sample.exe"))
        .arg(server.to_string())
        .arg("--until-chat")
        .arg(until_chat)
        .arg("--timeout-ms")
        .arg(PATIENCE.as_millis().to_string());
    Running::spawn(mono)
}

/// The next packet must satisfy `wanted`; every packet read is noted in `seen`.
fn expect(
    client: &mut Client,
    seen: &mut Vec<String>,
    what: &str,
    wanted: impl Fn(&Msg) -> bool,
) -> Result<Msg, String> {
    let msg = next_msg(client);
    seen.push(format!("{msg:?}"));
    match msg {
        Some(m) if wanted(&m) => Ok(m),
        other => Err(format!("expected {what}, got {other:?}")),
    }
}

/// The Rust side of the game: sees the C# player enter, move and chat, chats back, and
/// sees the C# player leave once that chat reached it. Returns the C# player's id.
fn play(rust: &mut Client, seen: &mut Vec<String>) -> Result<i32, String> {
    let own = rust.id;
    let enter = expect(
        rust,
        seen,
        "the C# player's enter",
        |m| matches!(m, Msg::Enter { id, pos } if *id != own && *pos == [0.0; 3]),
    )?;
    let Msg::Enter { id, .. } = enter else {
        unreachable!("matched above")
    };
    expect(rust, seen, "its move", |m| {
        *m == Msg::Move {
            id,
            pos: [1.5, 0.0, -2.25],
        }
    })?;
    expect(rust, seen, "its chat", |m| {
        *m == Msg::Chat {
            id,
            text: "hello from C#".into(),
        }
    })?;
    rust.chat("hello from Rust");
    expect(rust, seen, "the echo of the Rust chat", |m| {
        *m == Msg::Chat {
            id: own,
            text: "hello from Rust".into(),
        }
    })?;
    expect(rust, seen, "its leave", |m| *m == Msg::Leave { id })?;
    Ok(id)
}

#[test]
fn csharp_runtime_checks_pass() {
    let Some(dir) = built() else { return };
    let mut mono = Command::new("mono");
    mono.arg(dir.join("RuntimeChecks.exe"));
    let (status, stdout, stderr) = run_to_end(mono, PATIENCE);
    assert!(
        status.is_some_and(|s| s.success()) && stdout.contains(" passed, 0 failed"),
        "RuntimeChecks.exe ({status:?}):\n{stdout}\n{stderr}"
    );
}

#[test]
fn csharp_sample_and_a_rust_client_see_each_other_in_one_room() {
    let Some(dir) = built() else { return };
    let server = util::server(|_| {});
    let addr = server.local_addr();
    let (mut rust, _) = Client::enter(addr);
    rust.stream.set_read_timeout(Some(PATIENCE)).unwrap();

    let csharp = sample(dir, addr, "hello from Rust");
    let mut seen = Vec::new();
    let played = play(&mut rust, &mut seen);

    let (status, stdout, stderr) = csharp.finish(PATIENCE);
    server.shutdown();
    let report = format!(
        "Rust client saw: {seen:#?}\nC# sample ({status:?}) stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let csharp_id = played.unwrap_or_else(|e| panic!("{e}\n{report}"));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{report}");
    for line in [
        format!("entered as player {csharp_id}"),
        format!("player {} at (0, 0, 0)", rust.id),
        format!("S_BroadcastMove: player {csharp_id} to (1.5, 0, -2.25)"),
        format!("S_Chat: player {}: hello from Rust", rust.id),
        "disconnected: ClosedByClient".to_string(),
    ] {
        assert!(stdout.contains(&line), "missing `{line}`\n{report}");
    }
}
