//! `cargo run -p game-server`: the GameRoom server on 127.0.0.1:7777.
//!
//! Parses the flags, starts the server, logs a summary every 10 s and shuts down gracefully
//! on SIGINT or SIGTERM: at once, or after a drain of up to `--drain-timeout` seconds (a
//! second signal ends the drain). Logging goes through `env_logger` (`RUST_LOG`, default
//! `info`).

#![deny(clippy::print_stdout, clippy::print_stderr)]

use clap::Parser;
use game_server::{GameServer, GameStats, ServerConfig};
use log::{error, info};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Interval of the stats line (and of the progress line during a drain).
const STATS_EVERY: Duration = Duration::from_secs(10);
/// Longest a drain waits before it looks for a second signal again.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// The GameRoom server of the ServerCore course, on server-core: players enter a room, see
/// each other, move and chat (protocol: game-server/PDL.xml). Log level: RUST_LOG
/// (default info).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    config: ServerConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    // Installed before the server starts, so a signal can never hit the default action.
    let (stop_tx, stop_rx) = mpsc::channel();
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    }) {
        error!("cannot install the SIGINT/SIGTERM handler: {e}");
        return ExitCode::FAILURE;
    }

    game_server::ops::prepare_open_file_limit(&cli.config);
    keep_large_buffers_out_of_the_heap();
    let drain_timeout = Duration::from_secs(cli.config.drain_timeout);
    let server = match game_server::start(cli.config) {
        Ok(server) => server,
        Err(e) => {
            error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };

    let mut last = (Instant::now(), server.stats());
    // The channel doubles as the stats timer: a signal (or a dropped sender) ends the loop.
    while let Err(RecvTimeoutError::Timeout) = stop_rx.recv_timeout(STATS_EVERY) {
        let now = (Instant::now(), server.stats());
        log_stats(last, now);
        last = now;
        release_freed_memory();
    }
    if drain_timeout.is_zero() {
        info!("signal received, shutting down");
    } else {
        info!(
            "signal received: draining for up to {} s (a second signal stops at once)",
            drain_timeout.as_secs()
        );
        drain(&server, drain_timeout, &stop_rx);
    }
    server.shutdown();
    ExitCode::SUCCESS
}

/// Closes the door and waits until every player has left, `timeout` has passed, or a
/// second signal comes; the shutdown that follows cuts whoever is still there.
fn drain(server: &GameServer, timeout: Duration, signals: &Receiver<()>) {
    server.begin_drain();
    let deadline = Instant::now() + timeout;
    let mut next_progress = Instant::now() + STATS_EVERY;
    while !server.wait_drained(SIGNAL_POLL.min(deadline.saturating_duration_since(Instant::now())))
    {
        let now = Instant::now();
        if now >= deadline {
            info!("drain timeout of {} s reached", timeout.as_secs());
            return;
        }
        // The handler's sender lives as long as the process: only a signal ends this.
        if signals.try_recv().is_ok() {
            info!("second signal: stopping now");
            return;
        }
        if now >= next_progress {
            next_progress = now + STATS_EVERY;
            info!(
                "draining: {} sessions still open, {} s left",
                server.stats().service.sessions,
                deadline.saturating_duration_since(now).as_secs()
            );
        }
    }
}

/// Serves every allocation of 16 KiB or more with its own mapping, returned to the OS when
/// freed. glibc's default threshold starts at 128 KiB and rises to the largest block freed,
/// so the large buffers of a connect storm into a big room (an `S_PlayerList` of 1,000
/// players is 17 KB, of 3,800 players 64 KB) come from the I/O threads' heaps, and the
/// small session data allocated between them pins their pages: 5,000 idle players kept
/// 8-10 MB resident instead of 6-7 (docs/benchmarks.md). Outside storms few allocations are
/// that large (server-core's 16 KiB encoding chunks, a few per second under load).
fn keep_large_buffers_out_of_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a glibc tuning value; any value up to 32 MiB is valid for
    // M_MMAP_THRESHOLD, and it is set before the server's threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 * 1024);
    }
}

/// Returns heap pages that are free but still mapped to the OS. glibc gives back only the
/// top of each heap on its own: after a connect storm (thousands of `S_PlayerList`s and
/// enter broadcasts, freed in whatever order their sockets drained) the holes between live
/// session data stay resident, about doubling the RSS of 5,000 idle players (see
/// docs/benchmarks.md). Every 10 s this costs well under a millisecond.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists under its arena locks; it has
    // no preconditions and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// One line: sessions, rooms, players, and per-second rates since the last line. The
/// numbers are those `/metrics` serves (one snapshot, `GameServer::stats`); packets are
/// packets: a tick's batch of N packets to one player counts N.
fn log_stats((t0, s0): (Instant, GameStats), (t1, s1): (Instant, GameStats)) {
    let secs = (t1 - t0).as_secs_f64().max(1e-3);
    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
    info!(
        "sessions {} (refused {}) | rooms {} | players {} | packets in {:.0}/s | packets out {:.0}/s | bytes in {:.0}/s, out {:.0}/s | writev {:.0}/s at {:.1} µs, loop wake-ups {:.0}/s",
        s1.service.sessions,
        s1.service.sessions_refused,
        s1.rooms,
        s1.players,
        rate(s0.service.packets_in, s1.service.packets_in),
        rate(s0.service.packets_out, s1.service.packets_out),
        rate(s0.service.bytes_in, s1.service.bytes_in),
        rate(s0.service.bytes_out, s1.service.bytes_out),
        rate(s0.service.write_calls, s1.service.write_calls),
        s1.service
            .write_cost
            .map_or(0.0, |cost| cost.as_secs_f64() * 1e6),
        rate(s0.service.loop_iterations, s1.service.loop_iterations),
    );
}
