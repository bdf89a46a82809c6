//! The messages processes exchange on a room's channel: a fixed header, then either the
//! frames one flush of the room broadcast, or a snapshot of the room's players.
//!
//! ```text
//!  0      2   3   4               12      16              24              32
//!  +------+---+---+---------------+-------+---------------+---------------+---------...
//!  | "GS" | v | k | origin  (u64) | room  | first seq     | last seq      | body
//!  +------+---+---+---------------+-------+---------------+---------------+---------...
//!   v = version (1)   k = kind: 1 batch, 2 snapshot, 3 snapshot asking for replies
//!   batch body:    whole frames, [u16 size][u16 id][fields] each, as the room's members got them
//!   snapshot body: u32 count, then count x (i32 player id, f32 x, f32 y, f32 z)
//! ```
//!
//! Every integer is little-endian, as in the game protocol. A batch covers the sequence
//! numbers `first..=last` of its origin's room (several flushes merged by the publisher);
//! a snapshot takes one number. A receiver learns what changed in the room from the frames
//! themselves (`S_BroadcastEnterGame`, `S_BroadcastMove`, `S_BroadcastLeaveGame`), so the
//! course protocol is the only description of a player's state.
//!
//! [`decode`] reads from a buffer and does no I/O; it never panics, allocates in proportion
//! to the message only, and refuses anything it does not fully understand (another
//! version, an unknown kind, a frame a room never broadcasts, bytes left over), so what it
//! accepts can be handed to clients as is.

use super::ProcessId;
use crate::lobby::RoomId;
use crate::packets::{DecodeError, Packet};
use crate::player::PlayerId;
use bytes::Bytes;
use server_core::frame;
use thiserror::Error;

/// The first two bytes of every message.
pub(crate) const MAGIC: [u8; 2] = *b"GS";
/// The format version this build writes and reads.
pub(crate) const VERSION: u8 = 1;
/// Bytes before the body.
pub(crate) const HEADER_LEN: usize = 32;
/// Largest message accepted: far above a real flush, small enough to bound a bad one.
pub(crate) const MAX_MESSAGE_LEN: usize = 16 << 20;
/// Bytes of one snapshot entry.
const ENTRY_LEN: usize = 16;

const KIND_BATCH: u8 = 1;
const KIND_SNAPSHOT: u8 = 2;
const KIND_SNAPSHOT_REPLY_WANTED: u8 = 3;

/// A player's position, as the protocol's three floats.
pub(crate) type Position = [f32; 3];

/// Who sent a message, for which room, covering which sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) origin: ProcessId,
    pub(crate) room: RoomId,
    pub(crate) first_seq: u64,
    pub(crate) last_seq: u64,
}

/// What a frame of a batch changes in the receiver's view of the room.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Effect {
    Entered(PlayerId, Position),
    Moved(PlayerId, Position),
    Left(PlayerId),
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Message {
    pub(crate) header: Header,
    pub(crate) body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Body {
    /// One or more flushes of the origin's room: the frames for local members, and what
    /// they change.
    Batch { frames: Bytes, effects: Vec<Effect> },
    /// Every player of the origin in the room, with positions; `reply_wanted` asks every
    /// other process in the room to answer with its own snapshot.
    Snapshot {
        players: Vec<(PlayerId, Position)>,
        reply_wanted: bool,
    },
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum WireError {
    #[error("{len} bytes: shorter than the {HEADER_LEN}-byte header")]
    TooShort { len: usize },
    #[error("{len} bytes: longer than the {MAX_MESSAGE_LEN}-byte limit")]
    TooLong { len: usize },
    #[error("not a game-server message (magic {0:02x?})")]
    Magic([u8; 2]),
    #[error("format version {0}, this build reads version {VERSION}")]
    Version(u8),
    #[error("unknown message kind {0}")]
    Kind(u8),
    #[error("sequence range {first}..={last} is empty or starts at 0")]
    Sequence { first: u64, last: u64 },
    #[error("frame at byte {at}: {reason}")]
    Frame { at: usize, reason: String },
    #[error("frame at byte {at}: {packet} is not a room broadcast")]
    NotABroadcast { at: usize, packet: &'static str },
    #[error("snapshot of {count} players needs {needed} bytes, has {available}")]
    Snapshot {
        count: u64,
        needed: u64,
        available: usize,
    },
}

/// Encodes a batch: `frames` are the concatenated frames of one or more flushes.
pub(crate) fn encode_batch(header: &Header, frames: &[Bytes]) -> Vec<u8> {
    let body: usize = frames.iter().map(Bytes::len).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + body);
    put_header(&mut out, KIND_BATCH, header);
    for part in frames {
        out.extend_from_slice(part);
    }
    out
}

/// Encodes a snapshot of `players`.
pub(crate) fn encode_snapshot(
    header: &Header,
    players: &[(PlayerId, Position)],
    reply_wanted: bool,
) -> Vec<u8> {
    let kind = if reply_wanted {
        KIND_SNAPSHOT_REPLY_WANTED
    } else {
        KIND_SNAPSHOT
    };
    let mut out = Vec::with_capacity(HEADER_LEN + 4 + players.len() * ENTRY_LEN);
    put_header(&mut out, kind, header);
    let count = u32::try_from(players.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for &(id, pos) in players.iter().take(count as usize) {
        out.extend_from_slice(&id.to_le_bytes());
        for axis in pos {
            out.extend_from_slice(&axis.to_le_bytes());
        }
    }
    out
}

fn put_header(out: &mut Vec<u8>, kind: u8, header: &Header) {
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&header.origin.0.to_le_bytes());
    out.extend_from_slice(&header.room.0.to_le_bytes());
    out.extend_from_slice(&header.first_seq.to_le_bytes());
    out.extend_from_slice(&header.last_seq.to_le_bytes());
}

/// Reads the header only (for routing, and to skip a process's own messages cheaply).
///
/// # Errors
/// [`WireError`] when the header is not one this build writes.
pub(crate) fn peek(msg: &[u8]) -> Result<(Header, u8), WireError> {
    if msg.len() < HEADER_LEN {
        return Err(WireError::TooShort { len: msg.len() });
    }
    if msg.len() > MAX_MESSAGE_LEN {
        return Err(WireError::TooLong { len: msg.len() });
    }
    let magic = [msg[0], msg[1]];
    if magic != MAGIC {
        return Err(WireError::Magic(magic));
    }
    if msg[2] != VERSION {
        return Err(WireError::Version(msg[2]));
    }
    let kind = msg[3];
    if !matches!(
        kind,
        KIND_BATCH | KIND_SNAPSHOT | KIND_SNAPSHOT_REPLY_WANTED
    ) {
        return Err(WireError::Kind(kind));
    }
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&msg[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let room = u32::from_le_bytes([msg[12], msg[13], msg[14], msg[15]]);
    let header = Header {
        origin: ProcessId(u64_at(4)),
        room: RoomId(room),
        first_seq: u64_at(16),
        last_seq: u64_at(24),
    };
    let one_number = kind != KIND_BATCH;
    if header.first_seq == 0
        || header.last_seq < header.first_seq
        || (one_number && header.first_seq != header.last_seq)
    {
        return Err(WireError::Sequence {
            first: header.first_seq,
            last: header.last_seq,
        });
    }
    Ok((header, kind))
}

/// Decodes and checks a whole message.
///
/// # Errors
/// [`WireError`] for anything but a well-formed message of this version whose frames are
/// all valid room broadcasts.
pub(crate) fn decode(msg: &[u8]) -> Result<Message, WireError> {
    let (header, kind) = peek(msg)?;
    let body = &msg[HEADER_LEN..];
    let body = match kind {
        KIND_BATCH => Body::Batch {
            effects: effects(body)?,
            frames: Bytes::copy_from_slice(body),
        },
        _ => Body::Snapshot {
            players: snapshot(body)?,
            reply_wanted: kind == KIND_SNAPSHOT_REPLY_WANTED,
        },
    };
    Ok(Message { header, body })
}

/// Walks the frames of a batch body, checking each, and collects their effects.
fn effects(mut body: &[u8]) -> Result<Vec<Effect>, WireError> {
    let mut effects = Vec::new();
    let mut at = HEADER_LEN;
    while !body.is_empty() {
        let bad = |reason: String| WireError::Frame { at, reason };
        let len = match frame::check_frame(body, frame::MAX_FRAME_SIZE) {
            Ok(Some(len)) => len,
            Ok(None) => return Err(bad(format!("cut short ({} bytes left)", body.len()))),
            Err(e) => return Err(bad(e.to_string())),
        };
        let (one, rest) = body.split_at(len);
        let packet = Packet::decode(one).map_err(|e: DecodeError| bad(format!("{e:?}")))?;
        match packet {
            Packet::S_BroadcastEnterGame(p) => {
                effects.push(Effect::Entered(p.player_id, [p.pos_x, p.pos_y, p.pos_z]));
            }
            Packet::S_BroadcastMove(p) => {
                effects.push(Effect::Moved(p.player_id, [p.pos_x, p.pos_y, p.pos_z]));
            }
            Packet::S_BroadcastLeaveGame(p) => effects.push(Effect::Left(p.player_id)),
            Packet::S_Chat(_) => {}
            other => {
                return Err(WireError::NotABroadcast {
                    at,
                    packet: other.name(),
                })
            }
        }
        at += len;
        body = rest;
    }
    Ok(effects)
}

fn snapshot(body: &[u8]) -> Result<Vec<(PlayerId, Position)>, WireError> {
    let too_short = |count: u64| WireError::Snapshot {
        count,
        needed: 4 + count * ENTRY_LEN as u64,
        available: body.len(),
    };
    let Some((count, entries)) = body.split_first_chunk::<4>() else {
        return Err(too_short(0));
    };
    let count = u64::from(u32::from_le_bytes(*count));
    if entries.len() as u64 != count * ENTRY_LEN as u64 {
        return Err(too_short(count));
    }
    let f32_at = |e: &[u8], at: usize| f32::from_le_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]);
    Ok(entries
        .chunks_exact(ENTRY_LEN)
        .map(|e| {
            let id = i32::from_le_bytes([e[0], e[1], e[2], e[3]]);
            (id, [f32_at(e, 4), f32_at(e, 8), f32_at(e, 12)])
        })
        .collect())
}

/// Concatenates frames into one buffer (a batch body built by hand, for tests).
#[cfg(test)]
pub(crate) fn join(frames: &[Bytes]) -> Bytes {
    let mut all = bytes::BytesMut::new();
    for f in frames {
        all.extend_from_slice(f);
    }
    all.freeze()
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
