//! Flooders (`--flooders N`): extra connections that join the room first, then send valid
//! packets (`C_Chat` or `C_Move`, `--flood-mode`) as fast as their socket takes them while
//! reading (and discarding) everything the server sends, from warmup to the end of the
//! window. They are the hostile players of the run: the report counts what they sent and
//! whether the server cut them, and the honest sessions leave them out of `expected`.
//!
//! Each flooder is two plain threads over a blocking `std` socket (writer and reader), not
//! a server-core session: a flooder must not be slowed by the load tester's own flow control.

use crate::packets::{C_Chat, C_Move, Packet};
use crate::Mode;
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a flooder waits to connect and receive its `S_PlayerList`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Socket timeouts, so the threads notice the stop flag while blocked.
const POLL: Duration = Duration::from_millis(50);
/// Bytes of frames written per write call.
const BATCH_BYTES: usize = 64 * 1024;

/// The flooders of a run.
pub(crate) struct Flood {
    flooders: Vec<Flooder>,
    /// Set when flooding starts (warmup) and cleared when it ends (the drain).
    go: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Packets written, over all flooders.
    sent: Arc<AtomicU64>,
}

struct Flooder {
    player_id: i32,
    writer: JoinHandle<()>,
    reader: JoinHandle<()>,
    /// The server closed the connection (EOF, reset, or a write error).
    cut: Arc<AtomicBool>,
}

/// What the flooders did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FloodTotals {
    pub(crate) flooders: u64,
    pub(crate) sent: u64,
    pub(crate) cut: u64,
}

impl Flood {
    /// Connects `count` flooders to `addr` and waits until each has joined (so honest
    /// sessions see them in their first `S_PlayerList`). Flooding starts with [`Flood::go`].
    ///
    /// # Errors
    /// The first flooder that cannot connect or join.
    pub(crate) fn join(addr: SocketAddr, count: usize, mode: Mode) -> io::Result<Self> {
        let go = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let batch = Arc::new(batch(mode));
        let mut flooders = Vec::with_capacity(count);
        for _ in 0..count {
            let mut stream = TcpStream::connect_timeout(&addr, JOIN_TIMEOUT)?;
            stream.set_nodelay(true)?;
            let player_id = read_own_id(&mut stream)?;
            stream.set_read_timeout(Some(POLL))?;
            stream.set_write_timeout(Some(POLL))?;
            let cut = Arc::new(AtomicBool::new(false));
            let reader = {
                let (stream, stop, cut) = (stream.try_clone()?, stop.clone(), cut.clone());
                std::thread::Builder::new()
                    .name("flood-reader".into())
                    .spawn(move || read_everything(stream, &stop, &cut))?
            };
            let writer = {
                let (go, stop, cut, sent, batch) = (
                    go.clone(),
                    stop.clone(),
                    cut.clone(),
                    sent.clone(),
                    batch.clone(),
                );
                std::thread::Builder::new()
                    .name("flood-writer".into())
                    .spawn(move || {
                        write_as_fast_as_possible(stream, &batch, &go, &stop, &cut, &sent)
                    })?
            };
            flooders.push(Flooder {
                player_id,
                writer,
                reader,
                cut,
            });
        }
        Ok(Self {
            flooders,
            go,
            stop,
            sent,
        })
    }

    /// The flooders' player ids (honest sessions leave them out of `expected`).
    pub(crate) fn player_ids(&self) -> HashSet<i32> {
        self.flooders.iter().map(|f| f.player_id).collect()
    }

    /// Starts flooding.
    pub(crate) fn go(&self) {
        self.go.store(true, Ordering::Release);
    }

    /// Stops sending (the flooders keep reading until [`Flood::finish`]).
    pub(crate) fn pause(&self) {
        self.go.store(false, Ordering::Release);
    }

    /// Stops the threads and sums up.
    pub(crate) fn finish(self) -> FloodTotals {
        self.go.store(false, Ordering::Release);
        self.stop.store(true, Ordering::Release);
        let mut totals = FloodTotals {
            flooders: self.flooders.len() as u64,
            sent: 0,
            cut: 0,
        };
        for flooder in self.flooders {
            let _ = flooder.writer.join();
            let _ = flooder.reader.join();
            totals.cut += u64::from(flooder.cut.load(Ordering::Acquire));
        }
        totals.sent = self.sent.load(Ordering::Acquire);
        totals
    }
}

/// A write's worth of valid frames, and how many.
struct Batch {
    bytes: Vec<u8>,
    frames: u64,
}

fn batch(mode: Mode) -> Batch {
    let frame = match mode {
        Mode::Chat => C_Chat {
            chat: "flood".into(),
        }
        .encode(),
        Mode::Move => C_Move {
            pos_x: 1.0,
            pos_y: 0.0,
            pos_z: -1.0,
        }
        .encode(),
    }
    .expect("a small packet encodes");
    let frames = BATCH_BYTES / frame.len();
    Batch {
        bytes: frame.repeat(frames),
        frames: frames as u64,
    }
}

/// Reads frames until this flooder's own `S_PlayerList` entry (`isSelf`).
fn read_own_id(stream: &mut TcpStream) -> io::Result<i32> {
    let deadline = Instant::now() + JOIN_TIMEOUT;
    stream.set_read_timeout(Some(JOIN_TIMEOUT))?;
    while Instant::now() < deadline {
        let mut header = [0u8; 4];
        stream.read_exact(&mut header)?;
        let size = usize::from(u16::from_le_bytes([header[0], header[1]]));
        let mut frame = header.to_vec();
        frame.resize(size.max(4), 0);
        stream.read_exact(&mut frame[4..])?;
        if let Ok(Packet::S_PlayerList(list)) = Packet::decode(&frame) {
            if let Some(me) = list.players.iter().find(|p| p.is_self) {
                return Ok(me.player_id);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        "no S_PlayerList for a flooder",
    ))
}

fn write_as_fast_as_possible(
    mut stream: TcpStream,
    batch: &Batch,
    go: &AtomicBool,
    stop: &AtomicBool,
    cut: &AtomicBool,
    sent: &AtomicU64,
) {
    let frame_len = batch.bytes.len() as u64 / batch.frames;
    // Bytes of the batch already written: a write cut short by the timeout goes on where
    // it stopped, so the stream stays a sequence of whole frames.
    let mut pos = 0usize;
    while !stop.load(Ordering::Acquire) {
        if !go.load(Ordering::Acquire) && pos == 0 {
            std::thread::sleep(POLL / 5);
            continue;
        }
        match stream.write(&batch.bytes[pos..]) {
            Ok(0) => break,
            Ok(n) => {
                let before = pos as u64 / frame_len;
                pos += n;
                let after = pos as u64 / frame_len;
                sent.fetch_add(after - before, Ordering::Relaxed);
                if pos == batch.bytes.len() {
                    pos = 0;
                }
            }
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                cut.store(true, Ordering::Release);
                break;
            }
        }
    }
}

fn read_everything(mut stream: TcpStream, stop: &AtomicBool, cut: &AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Acquire) {
        match stream.read(&mut buf) {
            Ok(0) => {
                cut.store(true, Ordering::Release);
                return;
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                cut.store(true, Ordering::Release);
                return;
            }
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
