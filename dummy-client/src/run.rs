//! One load-test run, in the steps of the crate docs' timeline: [`Run::start`] sets up the
//! client's I/O threads, the sessions, the scheduler and the connector; then
//! [`Run::connect`], [`Run::warm_up`], [`Run::measure`], [`Run::drain`] and
//! [`Run::report`] (or [`Run::unreachable`] when no session got through).
//!
//! The run's own thread only watches: every [`TICK`] it checks whether its step is over,
//! merges latency samples and prints the progress line when one is due. Sessions send from
//! the scheduler thread and receive on the I/O threads.

use crate::connector::Connector;
use crate::flood::{Flood, FloodTotals};
use crate::report::{Progress, Report};
use crate::schedule::Scheduler;
use crate::session::{self, Phase, Shared, Slot, Totals};
use crate::{new_histogram, Args, Error, Mode, Target, MAX_DRAIN, UNREACHABLE_AFTER};
use hdrhistogram::Histogram;
use server_core::Service;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the run's thread wakes to check its step and the progress line.
const TICK: Duration = Duration::from_millis(20);

/// The drain ends early when nothing new arrived for this long.
const QUIET_DRAIN: Duration = Duration::from_millis(300);

/// A run in progress.
pub(crate) struct Run<'a> {
    args: &'a Args,
    /// Set by Ctrl-C: ends the current step early.
    stop: &'a AtomicBool,
    /// The unreachable deadline counts from here.
    started: Instant,
    service: Service,
    shared: Arc<Shared>,
    slots: Vec<Arc<Slot>>,
    connector: JoinHandle<()>,
    scheduler: JoinHandle<()>,
    ticker: Ticker,
    /// The flooders (`--flooders`), joined before the sessions.
    flood: Option<Flood>,
}

impl<'a> Run<'a> {
    /// Starts the client's I/O threads, the scheduler and the connector; sessions begin
    /// connecting at once.
    ///
    /// # Errors
    /// [`Error::Service`] when the I/O threads cannot start.
    pub(crate) fn start(args: &'a Args, stop: &'a AtomicBool) -> Result<Self, Error> {
        let started = Instant::now();
        let mut builder = Service::builder()
            .connect_timeout(UNREACHABLE_AFTER - Duration::from_secs(1))
            .linger(Duration::from_millis(200));
        if let Some(threads) = args.threads {
            builder = builder.threads(threads);
        }
        let service = builder.build().map_err(Error::Service)?;

        let flood = match (args.flooders, &args.addr[0]) {
            (0, _) => None,
            (n, Target::Tcp(addr)) => Some(
                Flood::join(*addr, usize::from(n), args.flood_mode).map_err(|source| {
                    Error::Flooder {
                        addr: *addr,
                        source,
                    }
                })?,
            ),
            // Flooders write raw frames to a TCP socket as fast as it takes them.
            (_, Target::WebSocket(url)) => {
                return Err(Error::Flooder {
                    addr: url.addr(),
                    source: std::io::Error::other(
                        "flooders speak plain TCP: give --addr the game's TCP port",
                    ),
                })
            }
        };
        let uncounted = flood.as_ref().map(Flood::player_ids).unwrap_or_default();
        let servers = args.addr.len().max(1);
        let shared = Arc::new(Shared::new(args.mode, uncounted, servers));
        let slots: Vec<Arc<Slot>> = (0..args.count)
            .map(|i| Arc::new(Slot::new(i, i % servers)))
            .collect();
        let (ready_tx, ready_rx) = mpsc::channel();
        let scheduler = Scheduler::new(
            slots.clone(),
            Arc::clone(&shared),
            ready_rx,
            args.interval(),
            args.mode,
        )
        .spawn();
        let connector = Connector {
            handle: service.handle(),
            shared: Arc::clone(&shared),
            slots: slots.clone(),
            ready: ready_tx,
            targets: args.addr.clone(),
            rate: args.connect_rate,
        }
        .spawn();

        Ok(Self {
            args,
            stop,
            started,
            service,
            shared,
            slots,
            connector,
            scheduler,
            ticker: Ticker::new(started, args),
            flood,
        })
    }

    /// Step 1: waits until every session joined or failed, Ctrl-C, or the connect deadline
    /// (10 s plus 2 s after the last connect started). Returns false when the server is
    /// unreachable: nothing connected within [`UNREACHABLE_AFTER`], or every attempt failed.
    pub(crate) fn connect(&mut self) -> bool {
        let mut deadline: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let initiated = self.shared.initiated();
            let (connected, failed) = (self.shared.tcp_connected(), self.shared.connect_failures());
            if connected == 0 && failed > 0 && failed == initiated {
                return false;
            }
            if connected == 0 && now.duration_since(self.started) >= UNREACHABLE_AFTER {
                return false;
            }
            if initiated == self.args.count && deadline.is_none() {
                deadline = Some(now + UNREACHABLE_AFTER + Duration::from_secs(2));
            }
            if self.shared.resolved() >= self.args.count
                || deadline.is_some_and(|d| now >= d)
                || self.stopped()
            {
                return true;
            }
            self.pause(TICK);
        }
    }

    /// Step 2: `--warmup` of traffic that is not counted (Ctrl-C cuts it short).
    pub(crate) fn warm_up(&mut self) {
        if let Some(flood) = &self.flood {
            flood.go();
        }
        let window_start = Instant::now() + self.args.warmup;
        while Instant::now() < window_start && !self.stopped() {
            self.pause(window_start.saturating_duration_since(Instant::now()));
        }
    }

    /// Step 3: the measured window, `--duration` long or until Ctrl-C. Returns its length
    /// (zero when Ctrl-C came before it began). Sending stops at its end.
    pub(crate) fn measure(&mut self) -> Duration {
        let mut window = Duration::ZERO;
        if !self.stopped() {
            let begin = Instant::now();
            self.shared.set_phase(Phase::Measuring);
            self.ticker.progress.phase = "measuring";
            let end = (!self.args.duration.is_zero()).then(|| begin + self.args.duration);
            loop {
                let now = Instant::now();
                if end.is_some_and(|e| now >= e) || self.stopped() {
                    break;
                }
                self.pause(end.map_or(TICK, |e| e.saturating_duration_since(now)));
            }
            self.shared.set_phase(Phase::Draining);
            window = begin.elapsed();
            if let Some(flood) = &self.flood {
                flood.pause();
            }
        } else {
            self.shared.set_phase(Phase::Draining);
        }
        self.ticker.progress.phase = "draining";
        window
    }

    /// Step 4: reads on until everything owed has arrived (chat mode), nothing new arrived
    /// for [`QUIET_DRAIN`], or [`MAX_DRAIN`] passed, so packets in flight are not lost.
    pub(crate) fn drain(&mut self) {
        let drain_start = Instant::now();
        let mut last_received = u64::MAX;
        let mut last_growth = drain_start;
        loop {
            let totals = Totals::sum(&self.slots);
            let now = Instant::now();
            if totals.received_marked != last_received {
                last_received = totals.received_marked;
                last_growth = now;
            }
            let all_in = self.args.mode == Mode::Chat && totals.received_marked >= totals.expected;
            if all_in
                || now.duration_since(last_growth) >= QUIET_DRAIN
                || now.duration_since(drain_start) >= MAX_DRAIN
            {
                return;
            }
            self.pause(TICK);
        }
    }

    /// Step 5: takes the counts, closes every session and stops the threads, and sums up.
    pub(crate) fn report(mut self, window: Duration) -> Report {
        // Snapshot, then close: disconnects from here on are ours.
        self.close();
        let totals = Totals::sum(&self.slots);
        session::drain_samples(&self.slots, &mut self.ticker.latency);
        self.shared
            .probes
            .merge(&mut self.ticker.cross_latency, Instant::now());
        let args = self.args;
        let cross_latency = self.ticker.cross_latency.clone();
        let (shared, latency, flood) = self.shut_down();
        let mut report = summarize(args, &shared, totals, latency, window, flood);
        report.cross_latency_us = cross_latency;
        report
    }

    /// Instead of step 2 onwards when [`Run::connect`] found the server unreachable: stops
    /// everything and says why.
    pub(crate) fn unreachable(self) -> Error {
        self.close();
        let reason = self
            .shared
            .first_connect_error()
            .unwrap_or_else(|| format!("no connection within {} s", UNREACHABLE_AFTER.as_secs()));
        let addr = self
            .args
            .addr
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let _ = self.shut_down();
        Error::Unreachable { addr, reason }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Merges latency samples, prints the progress line when due, and sleeps a tick (or
    /// `at_most`, when shorter).
    fn pause(&mut self, at_most: Duration) {
        self.ticker.tick(&self.slots, &self.shared);
        std::thread::sleep(TICK.min(at_most));
    }

    /// From here on connects stop, sends stop and disconnects are the client's own doing.
    fn close(&self) {
        self.shared.set_closing();
        self.shared.set_phase(Phase::Done);
    }

    /// Ends the progress line and stops the flooders, connector, scheduler and I/O threads.
    fn shut_down(self) -> (Arc<Shared>, Histogram<u64>, FloodTotals) {
        self.ticker.finish();
        let flood = self.flood.map(Flood::finish).unwrap_or_default();
        let _ = self.connector.join();
        let _ = self.scheduler.join();
        self.service.shutdown();
        (self.shared, self.ticker.latency, flood)
    }
}

/// The report of a finished run.
fn summarize(
    args: &Args,
    shared: &Shared,
    totals: Totals,
    latency_us: Histogram<u64>,
    window: Duration,
    flood: FloodTotals,
) -> Report {
    let count = args.count as u64;
    let joined = shared.joined() as u64;
    let mut first_connect_error = shared.first_connect_error();
    let never_joined = shared
        .tcp_connected()
        .saturating_sub(shared.joined() + shared.closed_before_join());
    if first_connect_error.is_none() && never_joined > 0 {
        first_connect_error = Some(format!(
            "{never_joined} connected but received no S_PlayerList"
        ));
    }
    Report {
        mode: args.mode,
        count,
        connected: joined,
        failed: count - joined.min(count),
        sent: totals.sent_marked,
        received: totals.received_marked,
        // Servers that repeat player ids are not one cluster: nothing can be said to cross.
        received_crossed: if shared.ids_repeat() {
            0
        } else {
            totals.received_crossed
        },
        servers: args.addr.len() as u64,
        expected: totals.expected,
        window,
        warmup: args.warmup,
        disconnects: shared.disconnects() as u64,
        flooders: flood.flooders,
        flood_sent: flood.sent,
        flooders_cut: flood.cut,
        lost_measurements: totals.lost_measurements,
        latency_us,
        first_connect_error,
        first_disconnect: shared.first_disconnect(),
        cross_latency_us: crate::new_histogram(),
    }
}

/// The once-a-second progress line and the latency histogram it reads from.
struct Ticker {
    progress: Progress,
    /// When the next line is due.
    next: Instant,
    latency: Histogram<u64>,
    /// Latency to receivers on other servers (`--addr a,b,...`, chat mode).
    cross_latency: Histogram<u64>,
    count: usize,
    quiet: bool,
    /// stderr is a terminal: the line is rewritten in place.
    tty: bool,
}

impl Ticker {
    fn new(started: Instant, args: &Args) -> Self {
        Self {
            progress: Progress::new(started),
            next: started + Duration::from_secs(1),
            latency: new_histogram(),
            cross_latency: new_histogram(),
            count: args.count,
            quiet: args.quiet,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Merges new latency samples and prints a progress line if one is due.
    fn tick(&mut self, slots: &[Arc<Slot>], shared: &Shared) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next += Duration::from_secs(1);
        if self.next < now {
            self.next = now + Duration::from_secs(1);
        }
        session::drain_samples(slots, &mut self.latency);
        shared.probes.merge(&mut self.cross_latency, now);
        if self.quiet {
            return;
        }
        let totals = Totals::sum(slots);
        let mut line = self.progress.line(
            now,
            shared.joined(),
            self.count,
            totals.sent_total,
            totals.received_total,
            &self.latency,
        );
        let pending = self.count.saturating_sub(shared.resolved());
        let failed = self.count - shared.joined() - pending.min(self.count - shared.joined());
        if pending > 0 || failed > 0 {
            let tcp = shared.tcp_connected();
            line.push_str(&format!(
                "  (tcp {tcp}, failed {failed}, pending {pending})"
            ));
        }
        if self.tty {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
    }

    /// Ends a progress line rewritten in place, so what follows starts on its own line.
    fn finish(&self) {
        if !self.quiet && self.tty && self.progress.printed() {
            eprintln!();
        }
    }
}
