//! The tokio baseline of `docs/benchmarks.md`: the chat server a Rust team would write
//! first, against which game-server (on server-core) is measured.
//!
//! It is the usual shape, deliberately not tuned: a task per connection, an unbounded
//! channel per client, a writer task that drains its channel into one `write_all`, and the
//! room behind a `std::sync::Mutex`. It speaks game-server's protocol (`game-server/PDL.xml`,
//! whose generated packets it reuses) with a single room, so the project's load tester
//! drives it unchanged:
//!
//! ```text
//! cd baselines/tokio-chat && CARGO_TARGET_DIR=../../target cargo build --release
//! target/release/tokio-chat-baseline --addr 127.0.0.1:27777 &
//! target/release/dummy-client --addr 127.0.0.1:27777 --count 500 --duration 10
//! ```
//!
//! Frames are `[u16 size LE][u16 id LE][body]`, the size including the 4-byte header.

use bytes::{Buf, Bytes, BytesMut};
use clap::Parser;
use game_server::packets::{
    s_player_list, Packet, S_BroadcastEnterGame, S_BroadcastLeaveGame, S_BroadcastMove, S_Chat,
    S_PlayerList, HEADER_SIZE,
};
use game_server::MAX_PLAYERS_PER_LIST;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

/// The typical tokio chat server, on game-server's protocol: the baseline of
/// docs/benchmarks.md (one room, no tuning). Stops on Ctrl-C (SIGINT).
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7777")]
    addr: SocketAddr,

    /// Worker threads of the tokio runtime [default: available cores].
    #[arg(long)]
    threads: Option<NonZeroUsize>,
}

/// One player in the room: the sending end of its writer's channel, and where it stands.
struct Member {
    tx: UnboundedSender<Bytes>,
    pos: [f32; 3],
}

/// The one room, by player id (so `S_PlayerList` lists players in the order they came).
///
/// A `std::sync::Mutex` around a map of senders is the typical shape, not a tuned one: every
/// broadcast holds the lock while it clones a `Bytes` into each member's channel.
#[derive(Default)]
struct Room {
    members: BTreeMap<i32, Member>,
}

impl Room {
    /// Sends the same encoded frame to every member (a member whose writer is gone is
    /// skipped; its reader removes it).
    fn broadcast(&self, frame: &Bytes) {
        for member in self.members.values() {
            let _ = member.tx.send(frame.clone());
        }
    }
}

type SharedRoom = Arc<Mutex<Room>>;

fn main() -> ExitCode {
    let args = Args::parse();
    let threads = args
        .threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build();
    let result = runtime.and_then(|rt| rt.block_on(serve(args.addr, threads)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio-chat-baseline: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Accepts connections until Ctrl-C; each gets the next player id and its own task.
async fn serve(addr: SocketAddr, threads: usize) -> io::Result<()> {
    // Listen for the signal before binding, so an early Ctrl-C is not the default action.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let listener = TcpListener::bind(addr).await?;
    eprintln!(
        "tokio-chat-baseline listening on {} with {threads} worker threads",
        listener.local_addr()?
    );
    let room = SharedRoom::default();
    let next_id = AtomicI32::new(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(connection(stream, id, Arc::clone(&room)));
                }
                // E.g. out of file descriptors: this connection is lost, the server goes on.
                Err(e) => eprintln!("accept failed: {e}"),
            },
            signal = &mut ctrl_c => {
                signal?;
                break;
            }
        }
    }
    // Returning drops the runtime, which cancels every task and closes every socket.
    eprintln!("signal received, shutting down");
    Ok(())
}

/// One connection: enter the room, read until EOF / error / bad frame, leave the room.
async fn connection(stream: TcpStream, id: i32, room: SharedRoom) {
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(write_loop(writer, rx));
    enter(&room, id, tx.clone());
    if let Err(e) = read_loop(reader, id, &room).await {
        if e.kind() == io::ErrorKind::InvalidData {
            eprintln!("player {id}: {e}; closing");
        }
    }
    leave(&room, id);
    // `tx` (and the room's clone) dropped: the writer sends what is queued, then closes.
}

/// The newcomer gets `S_PlayerList` (itself first, split if the room is huge), then every
/// member, the newcomer included, gets `S_BroadcastEnterGame { id, 0, 0, 0 }`.
fn enter(room: &SharedRoom, id: i32, tx: UnboundedSender<Bytes>) {
    let entry = |player_id, [pos_x, pos_y, pos_z]: [f32; 3], is_self| s_player_list::Player {
        is_self,
        player_id,
        pos_x,
        pos_y,
        pos_z,
    };
    let enter_frame = encode(
        S_BroadcastEnterGame {
            player_id: id,
            ..Default::default()
        }
        .encode(),
    );
    let mut room = room.lock().unwrap();
    let players: Vec<_> = std::iter::once(entry(id, [0.0; 3], true))
        .chain(
            room.members
                .iter()
                .map(|(&other, m)| entry(other, m.pos, false)),
        )
        .collect();
    for chunk in players.chunks(MAX_PLAYERS_PER_LIST) {
        let _ = tx.send(encode(
            S_PlayerList {
                players: chunk.to_vec(),
            }
            .encode(),
        ));
    }
    room.members.insert(id, Member { tx, pos: [0.0; 3] });
    room.broadcast(&enter_frame);
}

/// Removes the player, if still in the room, and tells the others.
fn leave(room: &SharedRoom, id: i32) {
    let mut room = room.lock().unwrap();
    if room.members.remove(&id).is_some() {
        room.broadcast(&encode(S_BroadcastLeaveGame { player_id: id }.encode()));
    }
}

/// The server's own packets always fit a frame; a failure here is a bug.
fn encode<E: std::fmt::Debug>(frame: Result<Bytes, E>) -> Bytes {
    frame.expect("server packets fit in a frame")
}

/// Reads into one buffer, splits off whole frames and handles them. `Ok` on EOF; an
/// `InvalidData` error for a size below the header, an undecodable frame, a client-bound
/// packet, or a chat too long to broadcast.
async fn read_loop(mut reader: OwnedReadHalf, id: i32, room: &SharedRoom) -> io::Result<()> {
    let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidData, msg);
    let mut buf = BytesMut::with_capacity(4096);
    let mut in_room = true;
    loop {
        while buf.len() >= 2 {
            let size = usize::from(u16::from_le_bytes([buf[0], buf[1]]));
            if size < HEADER_SIZE {
                return Err(invalid(format!("frame size {size} is below the header")));
            }
            if buf.len() < size {
                buf.reserve(size - buf.len());
                break;
            }
            let packet = Packet::decode(&buf[..size]).map_err(|e| invalid(e.to_string()))?;
            buf.advance(size);
            match packet {
                Packet::C_Chat(_) | Packet::C_Move(_) if !in_room => {}
                Packet::C_Chat(c) => {
                    let chat = S_Chat {
                        player_id: id,
                        chat: c.chat,
                    };
                    let frame = chat.encode().map_err(|e| invalid(e.to_string()))?;
                    room.lock().unwrap().broadcast(&frame);
                }
                Packet::C_Move(m) => {
                    let pos = [m.pos_x, m.pos_y, m.pos_z];
                    let frame = encode(
                        S_BroadcastMove {
                            player_id: id,
                            pos_x: pos[0],
                            pos_y: pos[1],
                            pos_z: pos[2],
                        }
                        .encode(),
                    );
                    let mut room = room.lock().unwrap();
                    if let Some(me) = room.members.get_mut(&id) {
                        me.pos = pos;
                    }
                    room.broadcast(&frame);
                }
                Packet::C_LeaveGame(_) => {
                    leave(room, id);
                    in_room = false;
                }
                other => return Err(invalid(format!("unexpected packet {}", other.name()))),
            }
        }
        if reader.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

/// Waits for one frame, takes everything else already queued, and writes it all with one
/// `write_all`; ends when every sender is gone (after writing what was queued) or on error.
async fn write_loop(mut writer: OwnedWriteHalf, mut rx: UnboundedReceiver<Bytes>) {
    let mut batch = BytesMut::new();
    while let Some(first) = rx.recv().await {
        batch.extend_from_slice(&first);
        while let Ok(more) = rx.try_recv() {
            batch.extend_from_slice(&more);
        }
        if writer.write_all(&batch).await.is_err() {
            return;
        }
        batch.clear();
    }
}
