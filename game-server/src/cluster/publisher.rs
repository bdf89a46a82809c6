//! The publisher thread: rooms hand it messages through a bounded queue (never blocking),
//! it gives each a header and publishes whatever has queued up in one pipeline, merging
//! consecutive flushes of the same room into one message.
//!
//! While Redis is away every message is dropped and counted at once; the queue never
//! grows past [`QUEUE_LEN`], and when it is full the room's message is dropped and counted
//! instead of waiting. Receivers see the skipped sequence numbers and ask for snapshots.

use super::link::Link;
use super::wire::{self, Header};
use super::{keys, ClusterCounters, OutBody, Outgoing, ProcessId};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Messages that may wait for the publisher: a few seconds of a busy process's flushes.
pub(crate) const QUEUE_LEN: usize = 8192;
/// Most messages taken from the queue for one pipeline.
const MAX_PER_ROUND: usize = 512;
/// How often an idle publisher looks at its stop flag.
const IDLE_WAKE: Duration = Duration::from_millis(200);

/// The rooms' end of the queue.
pub(crate) struct Publisher {
    queue: SyncSender<Outgoing>,
    counters: Arc<ClusterCounters>,
}

/// Stops the publisher thread.
pub(crate) struct Stopper {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Publisher {
    /// Starts the thread (it needs nothing from the lobby).
    pub(crate) fn new(
        link: Link,
        me: ProcessId,
        counters: Arc<ClusterCounters>,
    ) -> std::io::Result<(Self, Stopper)> {
        let (queue, inbox) = mpsc::sync_channel(QUEUE_LEN);
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            link,
            me,
            inbox,
            counters: Arc::clone(&counters),
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::Builder::new()
            .name("cluster-publish".into())
            .spawn(move || worker.run())?;
        Ok((Self { queue, counters }, Stopper { stop, thread }))
    }

    /// Queues `message`; drops and counts it when the queue is full.
    pub(crate) fn queue(&self, message: Outgoing) {
        match self.queue.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.counters
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl Stopper {
    /// Publishes what is queued (dropping it at once if Redis is away) and ends the thread.
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.thread.join();
    }
}

struct Worker {
    link: Link,
    me: ProcessId,
    inbox: Receiver<Outgoing>,
    counters: Arc<ClusterCounters>,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(mut self) {
        let mut round = Vec::with_capacity(MAX_PER_ROUND);
        loop {
            let stopping = self.stop.load(Ordering::Acquire);
            let first = if stopping {
                // Stopping: publish what is queued, then end.
                self.inbox.try_recv().map_err(|_| RecvTimeoutError::Timeout)
            } else {
                self.inbox.recv_timeout(IDLE_WAKE)
            };
            match first {
                Ok(message) => round.push(message),
                Err(RecvTimeoutError::Timeout) if stopping => break,
                Err(RecvTimeoutError::Timeout) => {
                    // Idle: reconnect if it is time, so the link is up before it is needed.
                    let _ = self.link.get();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while round.len() < MAX_PER_ROUND {
                match self.inbox.try_recv() {
                    Ok(message) => round.push(message),
                    Err(_) => break,
                }
            }
            self.publish(&mut round);
        }
        self.link.close();
    }

    /// Publishes `round` in one pipeline (or drops it while Redis is away) and empties it.
    fn publish(&mut self, round: &mut Vec<Outgoing>) {
        let messages = merge(round.drain(..));
        if !self.link.is_up() && self.link.retry_in() > Duration::ZERO {
            // Redis is away and it is not time to try again: drop without encoding.
            self.counters
                .dropped_redis_down
                .fetch_add(messages.len() as u64, Ordering::Relaxed);
            return;
        }
        let mut pipe = redis::pipe();
        let mut bytes = 0;
        for message in &messages {
            let payload = self.encode(message);
            bytes += payload.len();
            pipe.cmd("PUBLISH")
                .arg(keys::channel(message.room))
                .arg(payload)
                .ignore();
        }
        match self.link.run(|con| pipe.exec(con)) {
            Some(Ok(())) => {
                self.counters
                    .published
                    .fetch_add(messages.len() as u64, Ordering::Relaxed);
                self.counters
                    .published_bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed);
            }
            Some(Err(_)) | None => {
                self.counters
                    .dropped_redis_down
                    .fetch_add(messages.len() as u64, Ordering::Relaxed);
            }
        }
    }

    fn encode(&self, message: &Merged) -> Vec<u8> {
        let header = Header {
            origin: self.me,
            room: message.room,
            first_seq: message.first_seq,
            last_seq: message.last_seq,
        };
        match &message.body {
            OutBody::Frames(frames) => wire::encode_batch(&header, frames),
            OutBody::Snapshot {
                players,
                reply_wanted,
            } => wire::encode_snapshot(&header, players, *reply_wanted),
        }
    }
}

/// One message to publish: one room's consecutive flushes, or a snapshot.
#[derive(Debug, PartialEq)]
struct Merged {
    room: crate::lobby::RoomId,
    first_seq: u64,
    last_seq: u64,
    body: OutBody,
}

/// Merges flushes of the same room that follow each other (consecutive sequence numbers,
/// nothing else of that room in between) into one message.
fn merge(messages: impl Iterator<Item = Outgoing>) -> Vec<Merged> {
    let mut out: Vec<Merged> = Vec::new();
    for Outgoing { room, seq, body } in messages {
        // The last message of this room, if it is a batch that `seq` continues.
        let open = out
            .iter_mut()
            .rev()
            .find(|m| m.room == room)
            .filter(|m| m.last_seq + 1 == seq && matches!(m.body, OutBody::Frames(_)));
        match (open, body) {
            (Some(last), OutBody::Frames(mut frames)) => {
                if let OutBody::Frames(all) = &mut last.body {
                    all.append(&mut frames);
                }
                last.last_seq = seq;
            }
            (_, body) => out.push(Merged {
                room,
                first_seq: seq,
                last_seq: seq,
                body,
            }),
        }
    }
    out
}

/// The frames of a merged batch as one buffer (for tests).
#[cfg(test)]
fn frames_of(m: &Merged) -> bytes::Bytes {
    match &m.body {
        OutBody::Frames(f) => wire::join(f),
        OutBody::Snapshot { .. } => bytes::Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lobby::RoomId;
    use bytes::Bytes;

    fn frames(room: u32, seq: u64, bytes: &'static [u8]) -> Outgoing {
        Outgoing {
            room: RoomId(room),
            seq,
            body: OutBody::Frames(vec![Bytes::from_static(bytes)]),
        }
    }

    #[test]
    fn consecutive_flushes_of_a_room_merge_and_nothing_else_does() {
        let snapshot = Outgoing {
            room: RoomId(1),
            seq: 4,
            body: OutBody::Snapshot {
                players: vec![],
                reply_wanted: false,
            },
        };
        let merged = merge(
            [
                frames(1, 1, b"a"),
                frames(2, 7, b"x"),
                frames(1, 2, b"b"),
                frames(1, 3, b"c"),
                snapshot,
                frames(1, 5, b"d"),
                frames(1, 7, b"f"), // 6 was dropped: a new message
            ]
            .into_iter(),
        );
        let summary: Vec<_> = merged
            .iter()
            .map(|m| (m.room.0, m.first_seq, m.last_seq, frames_of(m)))
            .collect();
        assert_eq!(
            summary,
            [
                (1, 1, 3, Bytes::from_static(b"abc")),
                (2, 7, 7, Bytes::from_static(b"x")),
                (1, 4, 4, Bytes::new()),
                (1, 5, 5, Bytes::from_static(b"d")),
                (1, 7, 7, Bytes::from_static(b"f")),
            ]
        );
    }
}
