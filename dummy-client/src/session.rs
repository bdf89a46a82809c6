//! One load-test session: its `SessionHandler` (player id, room members, counters, the FIFO
//! of sends waiting for their own broadcast) and the state shared with the scheduler and the
//! reporter.
//!
//! Each session's hot counters are atomics in its [`Slot`], written by one thread each
//! (sends by the scheduler, receives by the session's I/O thread) and summed by the reporter;
//! the FIFO and latency samples sit behind a per-session mutex that only the session's own
//! broadcast, its own sends and the once-a-second reporter take. Sessions share no locks.

use crate::crossing::{is_probe, IdMap, Probes};
use crate::packets::{
    self, s_player_list, ClientPacketHandler, Packet, S_BroadcastEnterGame, S_BroadcastLeaveGame,
    S_BroadcastMove, S_Chat, S_PlayerList,
};
use crate::{Mode, MAX_OUTSTANDING};
use hdrhistogram::Histogram;
use log::{debug, warn};
use server_core::{DisconnectReason, HandlerError, Session, SessionHandler};
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::Instant;

/// Latency samples a session may buffer between two reporter passes (one second apart).
const MAX_SAMPLES: usize = 1 << 16;

/// Where the run is; sends and receives are classified by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Connecting and warmup: nothing counted.
    Warmup = 0,
    /// The measured window.
    Measuring = 1,
    /// After the window: no more sends, receives still counted.
    Draining = 2,
    /// Snapshot taken; shutting down.
    Done = 3,
}

/// Run-wide state: the phase and connection outcomes.
pub(crate) struct Shared {
    pub(crate) mode: Mode,
    /// Player ids of the run's flooders: room members no honest session counts on.
    uncounted: HashSet<i32>,
    /// Servers the sessions are spread over (`--addr a,b,...`).
    pub(crate) servers: usize,
    /// With several servers: the server (index into `--addr`) and the slot of every
    /// session's player, registered when it joins, before it sends anything.
    /// Copied on write: every session reads one shared snapshot (a few KiB that stay in
    /// cache) without a lock, and takes a fresh one when a sender is not in its copy.
    homes: RwLock<Arc<IdMap<(usize, usize)>>>,
    /// With several servers: the chats timed across servers.
    pub(crate) probes: Probes,
    /// Two servers gave the same player id: they are not one cluster, so whether a
    /// broadcast crossed cannot be told (and is not counted).
    ids_repeat: AtomicBool,
    phase: AtomicU8,
    closing: AtomicBool,
    initiated: AtomicUsize,
    tcp_connected: AtomicUsize,
    joined: AtomicUsize,
    connect_failed: AtomicUsize,
    closed_before_join: AtomicUsize,
    disconnects: AtomicUsize,
    first_connect_error: Mutex<Option<String>>,
    first_disconnect: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn new(mode: Mode, uncounted: HashSet<i32>, servers: usize) -> Self {
        Self {
            mode,
            uncounted,
            servers,
            homes: RwLock::new(Arc::default()),
            probes: Probes::default(),
            ids_repeat: AtomicBool::new(false),
            phase: AtomicU8::new(Phase::Warmup as u8),
            closing: AtomicBool::new(false),
            initiated: AtomicUsize::new(0),
            tcp_connected: AtomicUsize::new(0),
            joined: AtomicUsize::new(0),
            connect_failed: AtomicUsize::new(0),
            closed_before_join: AtomicUsize::new(0),
            disconnects: AtomicUsize::new(0),
            first_connect_error: Mutex::new(None),
            first_disconnect: Mutex::new(None),
        }
    }

    /// Records that `player_id` is session `slot`'s player, on server `server`.
    fn set_home(&self, player_id: i32, server: usize, slot: usize) {
        let mut homes = self.homes.write().unwrap_or_else(PoisonError::into_inner);
        let mut copy = IdMap::clone(&homes);
        let before = copy.insert(player_id, (server, slot));
        *homes = Arc::new(copy);
        if before.is_some_and(|(other, _)| other != server) {
            self.ids_repeat.store(true, Ordering::Release);
        }
    }

    /// The current snapshot of every session's player: id -> (server, slot).
    fn homes(&self) -> Arc<IdMap<(usize, usize)>> {
        Arc::clone(&self.homes.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether two servers gave the same player id (see `ids_repeat`).
    pub(crate) fn ids_repeat(&self) -> bool {
        self.ids_repeat.load(Ordering::Acquire)
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Warmup,
            1 => Phase::Measuring,
            2 => Phase::Draining,
            _ => Phase::Done,
        }
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// From now on disconnects are the client's own doing and connects stop.
    pub(crate) fn set_closing(&self) {
        self.closing.store(true, Ordering::Release);
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    pub(crate) fn note_initiated(&self) {
        self.initiated.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn initiated(&self) -> usize {
        self.initiated.load(Ordering::Acquire)
    }

    pub(crate) fn tcp_connected(&self) -> usize {
        self.tcp_connected.load(Ordering::Acquire)
    }

    pub(crate) fn joined(&self) -> usize {
        self.joined.load(Ordering::Acquire)
    }

    pub(crate) fn connect_failures(&self) -> usize {
        self.connect_failed.load(Ordering::Acquire)
    }

    pub(crate) fn closed_before_join(&self) -> usize {
        self.closed_before_join.load(Ordering::Acquire)
    }

    pub(crate) fn disconnects(&self) -> usize {
        self.disconnects.load(Ordering::Acquire)
    }

    /// Sessions whose fate is known: joined, failed to connect, or closed before joining.
    pub(crate) fn resolved(&self) -> usize {
        self.joined() + self.connect_failures() + self.closed_before_join()
    }

    pub(crate) fn connect_failed(&self, error: &io::Error) {
        self.connect_failed.fetch_add(1, Ordering::AcqRel);
        remember_first(&self.first_connect_error, || error.to_string());
    }

    pub(crate) fn first_connect_error(&self) -> Option<String> {
        lock(&self.first_connect_error).clone()
    }

    pub(crate) fn first_disconnect(&self) -> Option<String> {
        lock(&self.first_disconnect).clone()
    }
}

fn remember_first(cell: &Mutex<Option<String>>, what: impl FnOnce() -> String) {
    let mut first = lock(cell);
    if first.is_none() {
        *first = Some(what());
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A send waiting for its own broadcast.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    /// Chat: the sequence number; move: the position's bits.
    pub(crate) key: u64,
    pub(crate) at: Instant,
    /// Sent inside the measured window: its latency is recorded.
    pub(crate) marked: bool,
}

/// The FIFO of sends and the latency samples not yet merged.
#[derive(Debug, Default)]
pub(crate) struct LatencyState {
    pending: VecDeque<Pending>,
    samples: Vec<u64>,
    lost: u64,
}

impl LatencyState {
    /// Adds a send; when [`MAX_OUTSTANDING`] are already waiting the oldest is dropped and
    /// counted as a lost measurement.
    pub(crate) fn push(&mut self, pending: Pending) {
        if self.pending.len() >= MAX_OUTSTANDING {
            if let Some(old) = self.pending.pop_front() {
                self.lost += u64::from(old.marked);
            }
        }
        self.pending.push_back(pending);
    }

    /// Our own broadcast with `key` arrived at `now`: pops it (and any older sends, which
    /// were lost) and records its latency when it was marked. Unknown keys are ignored.
    pub(crate) fn matched(&mut self, key: u64, now: Instant) {
        let Some(pos) = self.pending.iter().position(|p| p.key == key) else {
            debug!("own broadcast with key {key:#x} matches no send");
            return;
        };
        for old in self.pending.drain(..pos) {
            self.lost += u64::from(old.marked);
        }
        let Some(p) = self.pending.pop_front() else {
            return;
        };
        if p.marked {
            if self.samples.len() < MAX_SAMPLES {
                let us = now.saturating_duration_since(p.at).as_micros();
                self.samples
                    .push(u64::try_from(us).unwrap_or(u64::MAX).max(1));
            } else {
                self.lost += 1;
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn outstanding(&self) -> usize {
        self.pending.len()
    }
}

/// The part of a session the scheduler and the reporter see.
pub(crate) struct Slot {
    pub(crate) index: usize,
    /// The server this session connects to (index into `--addr`).
    pub(crate) server: usize,
    pub(crate) session: OnceLock<Session>,
    /// Members of the session's room (itself included) as it knows them.
    pub(crate) room_size: AtomicU32,
    pub(crate) sent_total: AtomicU64,
    pub(crate) sent_marked: AtomicU64,
    pub(crate) expected: AtomicU64,
    pub(crate) received_total: AtomicU64,
    pub(crate) received_marked: AtomicU64,
    /// Counted broadcasts whose sender plays on another server.
    pub(crate) received_crossed: AtomicU64,
    pub(crate) latency: Mutex<LatencyState>,
}

impl Slot {
    pub(crate) fn new(index: usize, server: usize) -> Self {
        Self {
            index,
            server,
            session: OnceLock::new(),
            room_size: AtomicU32::new(1),
            sent_total: AtomicU64::new(0),
            sent_marked: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            received_total: AtomicU64::new(0),
            received_marked: AtomicU64::new(0),
            received_crossed: AtomicU64::new(0),
            latency: Mutex::new(LatencyState::default()),
        }
    }

    pub(crate) fn latency(&self) -> MutexGuard<'_, LatencyState> {
        lock(&self.latency)
    }
}

/// Counters summed over all sessions.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Totals {
    pub(crate) sent_total: u64,
    pub(crate) sent_marked: u64,
    pub(crate) expected: u64,
    pub(crate) received_total: u64,
    pub(crate) received_marked: u64,
    pub(crate) received_crossed: u64,
    pub(crate) lost_measurements: u64,
}

impl Totals {
    pub(crate) fn sum(slots: &[Arc<Slot>]) -> Self {
        let mut t = Totals::default();
        for s in slots {
            t.sent_total += s.sent_total.load(Ordering::Relaxed);
            t.sent_marked += s.sent_marked.load(Ordering::Relaxed);
            t.expected += s.expected.load(Ordering::Relaxed);
            t.received_total += s.received_total.load(Ordering::Relaxed);
            t.received_marked += s.received_marked.load(Ordering::Relaxed);
            t.received_crossed += s.received_crossed.load(Ordering::Relaxed);
            t.lost_measurements += s.latency().lost;
        }
        t
    }
}

/// Moves every session's buffered latency samples into `into`.
pub(crate) fn drain_samples(slots: &[Arc<Slot>], into: &mut Histogram<u64>) {
    let mut buf = Vec::new();
    for s in slots {
        std::mem::swap(&mut buf, &mut s.latency().samples);
        for &us in &buf {
            into.saturating_record(us);
        }
        buf.clear();
    }
}

/// The chat text of send number `seq`: `m:<seq>` inside the window, `w:<seq>` outside.
pub(crate) fn chat_text(marked: bool, seq: u64) -> String {
    format!("{}:{seq}", if marked { 'm' } else { 'w' })
}

/// Reads a chat marker: `Some((marked, seq))` for texts made by [`chat_text`].
pub(crate) fn parse_chat(text: &str) -> Option<(bool, u64)> {
    let (tag, seq) = text.split_once(':')?;
    let marked = match tag {
        "m" => true,
        "w" => false,
        _ => return None,
    };
    Some((marked, seq.parse().ok()?))
}

/// The marker of an `S_Chat` frame read straight from its bytes: `(player_id, marked,
/// seq)` for a text made by [`chat_text`], without decoding the text into a `String`. The
/// load generator reads up to 9 million chats a second on the same two cores as the server
/// it measures, so what it spends per packet is taken from the server; this keeps that to
/// a look at a dozen bytes. Anything else (another packet, a text that is not a marker, a
/// frame with a byte too many or too few) is `None` and goes through the generated decoder,
/// which judges it.
pub(crate) fn chat_marker(frame: &[u8]) -> Option<(i32, bool, u64)> {
    // [u16 size][u16 id][i32 playerId][u16 text bytes][text, UTF-16LE]
    let u16_at = |at: usize| Some(u16::from_le_bytes(frame.get(at..at + 2)?.try_into().ok()?));
    if u16_at(2)? != S_Chat::ID {
        return None;
    }
    let player_id = i32::from_le_bytes(frame.get(4..8)?.try_into().ok()?);
    let text = frame.get(10..)?;
    if text.len() != usize::from(u16_at(8)?) || text.len() < 6 {
        return None;
    }
    let unit = |i: usize| u16::from_le_bytes([text[2 * i], text[2 * i + 1]]);
    let marked = match (unit(0), unit(1)) {
        (0x6D, 0x3A) => true,  // "m:"
        (0x77, 0x3A) => false, // "w:"
        _ => return None,
    };
    let mut seq: u64 = 0;
    for i in 2..text.len() / 2 {
        let digit = unit(i).checked_sub(u16::from(b'0')).filter(|d| *d <= 9)?;
        seq = seq.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    Some((player_id, marked, seq))
}

/// The FIFO key of a move: the exact bits of the x and z sent.
pub(crate) fn move_key(x: f32, z: f32) -> u64 {
    (u64::from(x.to_bits()) << 32) | u64::from(z.to_bits())
}

/// A packet the client could not decode: the session is closed.
#[derive(Debug)]
pub(crate) struct ProtocolError(String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "undecodable packet: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

impl From<packets::DecodeError> for ProtocolError {
    fn from(e: packets::DecodeError) -> Self {
        ProtocolError(format!("{e:?}"))
    }
}

/// The handler of one load-test connection.
pub(crate) struct ClientSession {
    slot: Arc<Slot>,
    shared: Arc<Shared>,
    ready: Sender<usize>,
    player_id: Option<i32>,
    members: HashSet<i32>,
    connected: bool,
    /// With several servers: this session's copy of where every player is.
    homes: Arc<IdMap<(usize, usize)>>,
}

impl ClientSession {
    pub(crate) fn new(slot: Arc<Slot>, shared: Arc<Shared>, ready: Sender<usize>) -> Self {
        Self {
            slot,
            shared,
            ready,
            player_id: None,
            members: HashSet::new(),
            connected: false,
            homes: Arc::default(),
        }
    }

    fn publish_room(&self) {
        let honest = self
            .members
            .iter()
            .filter(|id| !self.shared.uncounted.contains(id))
            .count();
        let size = u32::try_from(honest.max(1)).unwrap_or(u32::MAX);
        self.slot.room_size.store(size, Ordering::Relaxed);
    }

    /// An `S_Chat` from `player_id` carrying `marker` (see [`parse_chat`]).
    fn chat_received(&mut self, player_id: i32, marker: Option<(bool, u64)>) {
        let counted = self.shared.mode == Mode::Chat && marker.is_some_and(|(m, _)| m);
        let from_elsewhere = self.received(counted, player_id);
        if let (Some(sender), Some((_, seq))) = (from_elsewhere, marker) {
            if is_probe(sender, seq) {
                self.shared.probes.received(sender, seq, Instant::now());
            }
        }
        if let (Some((_, seq)), true) = (marker, Some(player_id) == self.player_id) {
            if self.shared.mode == Mode::Chat {
                let now = Instant::now();
                self.slot.latency().matched(seq, now);
            }
        }
    }

    /// Counts a received broadcast from player `sender`; returns the sender's slot when it
    /// was counted and crossed from another server.
    fn received(&mut self, counted: bool, sender: i32) -> Option<usize> {
        self.slot.received_total.fetch_add(1, Ordering::Relaxed);
        if !counted {
            return None;
        }
        self.slot.received_marked.fetch_add(1, Ordering::Relaxed);
        if self.shared.servers < 2 || self.shared.ids_repeat() {
            return None;
        }
        let crossed = self.sent_from_another_server(sender);
        if crossed.is_some() {
            self.slot.received_crossed.fetch_add(1, Ordering::Relaxed);
        }
        crossed
    }

    /// The slot of `sender` if it plays on another server (`None` for the same server and
    /// for players of no session).
    fn sent_from_another_server(&mut self, sender: i32) -> Option<usize> {
        let (server, slot) = match self.homes.get(&sender) {
            Some(&home) => home,
            None => {
                self.homes = self.shared.homes();
                *self.homes.get(&sender)?
            }
        };
        (server != self.slot.server).then_some(slot)
    }
}

impl SessionHandler for ClientSession {
    fn on_connected(&mut self, session: &Session) {
        self.connected = true;
        let _ = self.slot.session.set(session.clone());
        self.shared.tcp_connected.fetch_add(1, Ordering::AcqRel);
    }

    fn on_packet(&mut self, _session: &Session, frame: &[u8]) -> Result<(), HandlerError> {
        if let Some((player_id, marked, seq)) = chat_marker(frame) {
            self.chat_received(player_id, Some((marked, seq)));
            return Ok(());
        }
        packets::dispatch_client(frame, self)?;
        Ok(())
    }

    fn on_disconnected(&mut self, _session: &Session, reason: &DisconnectReason) {
        if self.shared.is_closing() {
            return;
        }
        if self.player_id.is_some() {
            self.shared.disconnects.fetch_add(1, Ordering::AcqRel);
            warn!("session {} disconnected: {reason}", self.slot.index);
            remember_first(&self.shared.first_disconnect, || reason.to_string());
        } else {
            self.shared
                .closed_before_join
                .fetch_add(1, Ordering::AcqRel);
            remember_first(&self.shared.first_connect_error, || {
                format!("closed before joining: {reason}")
            });
        }
    }

    fn on_connect_failed(&mut self, error: &io::Error) {
        debug!("session {} failed to connect: {error}", self.slot.index);
        self.shared.connect_failed(error);
    }
}

impl ClientPacketHandler for ClientSession {
    type Error = ProtocolError;

    fn on_s_broadcast_enter_game(&mut self, p: S_BroadcastEnterGame) -> Result<(), ProtocolError> {
        if self.members.insert(p.player_id) {
            self.publish_room();
        }
        Ok(())
    }

    fn on_s_broadcast_leave_game(&mut self, p: S_BroadcastLeaveGame) -> Result<(), ProtocolError> {
        if self.members.remove(&p.player_id) {
            self.publish_room();
        }
        Ok(())
    }

    fn on_s_player_list(&mut self, p: S_PlayerList) -> Result<(), ProtocolError> {
        let mut newly_joined = false;
        for s_player_list::Player {
            is_self, player_id, ..
        } in p.players
        {
            self.members.insert(player_id);
            if is_self && self.player_id.is_none() {
                self.player_id = Some(player_id);
                newly_joined = true;
            }
        }
        self.publish_room();
        if newly_joined {
            if let (Some(me), true) = (self.player_id, self.shared.servers > 1) {
                // Before the scheduler hears of it, so before anything it sends arrives.
                self.shared.set_home(me, self.slot.server, self.slot.index);
            }
            self.shared.joined.fetch_add(1, Ordering::AcqRel);
            let _ = self.ready.send(self.slot.index);
        }
        Ok(())
    }

    fn on_s_broadcast_move(&mut self, p: S_BroadcastMove) -> Result<(), ProtocolError> {
        let counted = self.shared.mode == Mode::Move
            && matches!(self.shared.phase(), Phase::Measuring | Phase::Draining);
        self.received(counted, p.player_id);
        if self.shared.mode == Mode::Move && Some(p.player_id) == self.player_id {
            let now = Instant::now();
            self.slot.latency().matched(move_key(p.pos_x, p.pos_z), now);
        }
        Ok(())
    }

    fn on_s_chat(&mut self, p: S_Chat) -> Result<(), ProtocolError> {
        self.chat_received(p.player_id, parse_chat(&p.chat));
        Ok(())
    }

    fn on_unexpected(&mut self, packet: Packet) -> Result<(), ProtocolError> {
        debug!(
            "session {}: ignoring unexpected {packet:?}",
            self.slot.index
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn chat_markers_round_trip() {
        assert_eq!(parse_chat(&chat_text(true, 42)), Some((true, 42)));
        assert_eq!(parse_chat(&chat_text(false, 0)), Some((false, 0)));
        assert_eq!(parse_chat("hello"), None);
        assert_eq!(parse_chat("m:x"), None);
        assert_eq!(parse_chat("q:1"), None);
    }

    #[test]
    fn chat_marker_reads_what_the_decoder_reads() {
        let frame = |player_id: i32, chat: &str| {
            S_Chat {
                player_id,
                chat: chat.into(),
            }
            .encode()
            .unwrap()
        };
        for (id, text) in [
            (7, chat_text(true, 0)),
            (-3, chat_text(false, 1234567)),
            (1, chat_text(true, u64::MAX)),
        ] {
            let f = frame(id, &text);
            let (marked, seq) = parse_chat(&text).unwrap();
            assert_eq!(chat_marker(&f), Some((id, marked, seq)), "{text}");
        }
        for text in [
            "hello",
            "m:",
            "m:x1",
            "q:1",
            "m:1a",
            "m:18446744073709551616",
            "ｍ:1",
        ] {
            assert_eq!(chat_marker(&frame(1, text)), None, "{text}");
            assert_eq!(parse_chat(text), None, "{text}");
        }
        let f = frame(1, "m:12");
        assert_eq!(chat_marker(&f[..f.len() - 1]), None, "a byte short");
        let mut longer = f.to_vec();
        longer.push(0);
        assert_eq!(chat_marker(&longer), None, "a byte over");
        let mv = crate::packets::S_BroadcastMove::default().encode().unwrap();
        assert_eq!(chat_marker(&mv), None, "another packet");
    }

    #[test]
    fn fifo_matches_in_order_and_counts_skipped_as_lost() {
        let t0 = Instant::now();
        let mut st = LatencyState::default();
        for seq in 0..4 {
            st.push(Pending {
                key: seq,
                at: t0 + Duration::from_millis(seq),
                marked: seq != 0,
            });
        }
        st.matched(0, t0 + Duration::from_millis(5)); // unmarked: no sample
        st.matched(2, t0 + Duration::from_millis(5)); // 1 was lost
        assert_eq!(st.samples, vec![3000]);
        assert_eq!(st.lost, 1);
        st.matched(99, t0); // unknown key: ignored
        assert_eq!(st.outstanding(), 1);
    }

    #[test]
    fn fifo_is_bounded() {
        let t0 = Instant::now();
        let mut st = LatencyState::default();
        for seq in 0..(MAX_OUTSTANDING as u64 + 10) {
            st.push(Pending {
                key: seq,
                at: t0,
                marked: true,
            });
        }
        assert_eq!(st.outstanding(), MAX_OUTSTANDING);
        assert_eq!(st.lost, 10);
    }

    #[test]
    fn move_keys_differ_by_position() {
        assert_ne!(move_key(1.0, 2.0), move_key(2.0, 1.0));
        assert_eq!(move_key(-3.5, 0.25), move_key(-3.5, 0.25));
    }
}
