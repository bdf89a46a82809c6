//! The real `game-server` binary as a child process: started with flags, its log read line
//! by line, stopped by signal or killed when the test ends.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// The binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_game-server");

/// A running `game-server` process.
pub struct ServerProcess {
    child: Child,
    /// Every stderr line (the log), as it comes.
    lines: Receiver<String>,
    /// Lines already taken from `lines`, so a later search sees them too.
    seen: Vec<String>,
    /// The game listener, from the "listening on" log line.
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `game-server ARGS` at log level info.
    pub fn start(args: &[&str]) -> Self {
        let mut command = Command::new(BIN);
        command.args(args);
        Self::spawn(command)
    }

    /// Spawns `command` (stderr piped, `RUST_LOG=info` unless set) and waits for the
    /// "game-server listening on ADDR" log line.
    pub fn spawn(mut command: Command) -> Self {
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        // Tests take free ports only: the browser port's default (7780) is a fixed one.
        let ws_set = command.get_args().any(|a| a == "--ws-addr")
            || command.get_envs().any(|(k, _)| k == "GAME_SERVER_WS_ADDR");
        if !ws_set {
            command.env("GAME_SERVER_WS_ADDR", "127.0.0.1:0");
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn game-server");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self {
            child,
            lines,
            seen: Vec::new(),
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        // The game's own line: server-core logs every port it listens on, the browser
        // port's included, from its I/O threads and in any order.
        let line = server
            .wait_for_log(super::TIMEOUT, &["game-server listening on "])
            .unwrap_or_else(|| panic!("no start-up line; log: {:#?}", server.seen));
        server.addr = address_after(&line, "listening on ");
        server
    }

    /// Waits up to `within` for a log line containing every one of `needles` (lines seen
    /// before count too).
    pub fn wait_for_log(&mut self, within: Duration, needles: &[&str]) -> Option<String> {
        let matches = |line: &String| needles.iter().all(|n| line.contains(n));
        if let Some(line) = self.seen.iter().find(|l| matches(l)) {
            return Some(line.clone());
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            self.seen.push(line.clone());
            if matches(&line) {
                return Some(line);
            }
        }
    }

    /// Every log line read so far.
    pub fn log(&self) -> &[String] {
        &self.seen
    }

    /// Sends SIGTERM, as `kill PID` does.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Kills the process with SIGKILL (`kill -9`): no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `within` for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Only this test's own child, by its handle.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The socket address that follows `marker` in `line`.
pub fn address_after(line: &str, marker: &str) -> SocketAddr {
    let rest = line
        .split(marker)
        .nth(1)
        .unwrap_or_else(|| panic!("no {marker:?} in {line:?}"));
    let word = rest.split_whitespace().next().unwrap_or_default();
    word.trim_end_matches([',', ';', ')'])
        .parse()
        .unwrap_or_else(|e| panic!("bad address {word:?} in {line:?}: {e}"))
}
