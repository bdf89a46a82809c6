//! A room's part in a cluster (`--cluster`): it publishes the frames its own players cause,
//! once per flush, and keeps a view of the players other processes hold in it, from their
//! messages ([`RemotePlayers`]). Their frames reach this room's members through the same
//! outbox as local broadcasts, so a member still gets one send per tick.
//!
//! A room that opens (or comes back after Redis was lost) sends a snapshot of its players
//! asking for everyone else's; the lobby lets newcomers in once the processes already in
//! the room have answered (or after [`SYNC_TIMEOUT`]), so `S_PlayerList` lists everyone.

use super::{GameRoom, Member};
use crate::cluster::remote::{Continuity, RemotePlayers};
use crate::cluster::wire::{Body, Effect, Message, Position};
use crate::cluster::{OutBody, Outgoing, ProcessId, RoomBus, SYNC_TIMEOUT};
use crate::packets::{S_BroadcastEnterGame, S_BroadcastLeaveGame, S_BroadcastMove};
use crate::player::PlayerId;
use log::{debug, error, warn};
use server_core::{encode_with, WeakJobQueue};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shortest time between two requests for snapshots after skipped sequence numbers.
const RESYNC_EVERY: Duration = Duration::from_secs(1);

/// What a room keeps for the cluster.
pub(crate) struct RoomLink {
    bus: Arc<dyn RoomBus>,
    /// Sequence number of the room's next message.
    next_seq: u64,
    remote: RemotePlayers,
    /// Until ready: the processes whose snapshots the room waits for (empty until the
    /// subscription is confirmed). `None` once newcomers may enter.
    awaiting: Option<HashSet<ProcessId>>,
    last_resync_request: Option<Instant>,
}

impl std::fmt::Debug for RoomLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomLink")
            .field("process", &self.bus.process())
            .field("next_seq", &self.next_seq)
            .field("remote", &self.remote.len())
            .field("awaiting", &self.awaiting)
            .finish()
    }
}

impl GameRoom {
    /// Makes this room part of the cluster behind `bus`. It is ready for newcomers once
    /// subscribed and synchronised ([`cluster_subscribed`](Self::cluster_subscribed)).
    pub(crate) fn join_cluster(&mut self, bus: Arc<dyn RoomBus>) {
        self.outbox.keep_own();
        self.cluster = Some(Box::new(RoomLink {
            bus,
            next_seq: 1,
            remote: RemotePlayers::default(),
            awaiting: Some(HashSet::new()),
            last_resync_request: None,
        }));
    }

    /// Players of other processes in this room now.
    #[must_use]
    pub fn remote_players(&self) -> usize {
        self.cluster.as_ref().map_or(0, |link| link.remote.len())
    }

    /// The room's channel is subscribed: it sends its players asking for everyone else's,
    /// and waits for the snapshots of `awaiting` (processes with players here) before
    /// telling the lobby it is ready.
    pub(crate) fn cluster_subscribed(&mut self, awaiting: &[ProcessId]) {
        let Some(link) = self.cluster.as_deref_mut() else {
            return;
        };
        let me = link.bus.process();
        link.awaiting = Some(awaiting.iter().copied().filter(|&p| p != me).collect());
        self.publish_snapshot(true);
        if !self.became_ready() {
            if let Some(me) = self.me.as_ref().and_then(WeakJobQueue::upgrade) {
                let _ = me.push_after(SYNC_TIMEOUT, GameRoom::cluster_sync_timeout);
            }
        }
    }

    /// Redis came back after an outage: everything published meanwhile was lost, so the
    /// room sends its players again and asks for everyone else's. A room whose first
    /// subscription failed is subscribed now: it waits for nobody in particular.
    pub(crate) fn cluster_resync(&mut self) {
        self.publish_snapshot(true);
        self.became_ready();
    }

    /// A message from another process's room.
    pub(crate) fn cluster_receive(&mut self, message: Message) {
        let Some(link) = self.cluster.as_deref_mut() else {
            return;
        };
        let now = Instant::now();
        let origin = message.header.origin;
        let before = link.remote.len();
        let continuity = link.remote.note(&message.header, now);
        match message.body {
            Body::Batch { frames, effects } => {
                link.remote.apply_batch(origin, &effects);
                link.bus
                    .counters()
                    .remote_players_changed(before, link.remote.len());
                if let Continuity::Gap { expected, got } = continuity {
                    link.bus.counters().gap();
                    debug!(
                        "room {}: messages {expected}..{got} of process {origin} were lost",
                        self.id
                    );
                    self.request_snapshots(now);
                }
                self.send_to_members(frames, false);
            }
            Body::Snapshot {
                players,
                reply_wanted,
            } => {
                let changes = link.remote.apply_snapshot(origin, &players);
                link.bus
                    .counters()
                    .remote_players_changed(before, link.remote.len());
                if let Some(awaiting) = &mut link.awaiting {
                    awaiting.remove(&origin);
                }
                for change in changes {
                    self.tell_members(change);
                }
                if reply_wanted {
                    self.publish_snapshot(false);
                }
                self.became_ready();
            }
        }
    }

    /// This process leaves the cluster (shutting down): an empty snapshot tells the others
    /// that none of its players is here any more.
    pub(crate) fn cluster_goodbye(&mut self) {
        if self.cluster.is_none() {
            return;
        }
        self.publish_own();
        self.publish(OutBody::Snapshot {
            players: Vec::new(),
            reply_wanted: false,
        });
    }

    /// The processes alive at the control thread's last heartbeat. The players of a
    /// process that is gone, and silent here for a presence TTL, leave for this room's
    /// members. Nothing is decided during `grace` (Redis just came back; other processes
    /// may not have registered again yet).
    pub(crate) fn cluster_peers(&mut self, live: &HashSet<ProcessId>, grace: bool) {
        let Some(link) = self.cluster.as_deref_mut() else {
            return;
        };
        if grace {
            return;
        }
        let before = link.remote.len();
        let timeout = link.bus.peer_timeout();
        let left = link
            .remote
            .forget_gone(|p| live.contains(&p), timeout, Instant::now());
        link.bus
            .counters()
            .remote_players_changed(before, link.remote.len());
        for id in left {
            debug!("room {}: player {id} left with its process", self.id);
            self.tell_members(Effect::Left(id));
        }
    }

    /// The sync waited [`SYNC_TIMEOUT`]: newcomers may enter anyway.
    fn cluster_sync_timeout(&mut self) {
        let Some(link) = self.cluster.as_deref_mut() else {
            return;
        };
        if let Some(awaiting) = link.awaiting.take_if(|a| !a.is_empty()) {
            warn!(
                "room {}: no snapshot from {awaiting:?} within {} s; letting newcomers in",
                self.id,
                SYNC_TIMEOUT.as_secs()
            );
            self.notify_ready();
        }
    }

    /// Publishes the frames this process's players caused since the last flush.
    pub(super) fn publish_own(&mut self) {
        let own = self.outbox.take_own();
        if !own.is_empty() {
            self.publish(OutBody::Frames(own));
        }
    }

    /// `S_PlayerList` material: everyone but the newcomer, local and remote, by id.
    pub(super) fn everyone_else(&self) -> Vec<(PlayerId, Position)> {
        let local = self
            .members
            .iter()
            .map(|(&id, m): (_, &Member)| (id, m.pos));
        let Some(link) = self.cluster.as_deref() else {
            return local.collect();
        };
        let all: BTreeMap<PlayerId, Position> = local.chain(link.remote.positions()).collect();
        all.into_iter().collect()
    }

    /// Sends this room's players with their positions, after publishing what they caused
    /// so far (so receivers never get frames older than the snapshot after it).
    fn publish_snapshot(&mut self, reply_wanted: bool) {
        self.publish_own();
        let players = self.members.iter().map(|(&id, m)| (id, m.pos)).collect();
        self.publish(OutBody::Snapshot {
            players,
            reply_wanted,
        });
    }

    /// A batch or snapshot for the room's channel, numbered.
    pub(super) fn publish(&mut self, body: OutBody) {
        let Some(link) = self.cluster.as_deref_mut() else {
            return;
        };
        let seq = link.next_seq;
        link.next_seq += 1;
        link.bus.publish(Outgoing {
            room: self.id,
            seq,
            body,
        });
    }

    /// After lost messages: asks for everyone's snapshot, at most once per
    /// [`RESYNC_EVERY`].
    fn request_snapshots(&mut self, now: Instant) {
        let Some(link) = self.cluster.as_deref_mut() else {
            return;
        };
        if link
            .last_resync_request
            .is_some_and(|t| now.saturating_duration_since(t) < RESYNC_EVERY)
        {
            return;
        }
        link.last_resync_request = Some(now);
        self.publish_snapshot(true);
    }

    /// Tells this room's members about a change they did not see as a frame.
    fn tell_members(&mut self, change: Effect) {
        let frame = match change {
            Effect::Entered(player_id, [pos_x, pos_y, pos_z]) => encode_with(|buf| {
                S_BroadcastEnterGame {
                    player_id,
                    pos_x,
                    pos_y,
                    pos_z,
                }
                .encode_into(buf)
            }),
            Effect::Moved(player_id, [pos_x, pos_y, pos_z]) => encode_with(|buf| {
                S_BroadcastMove {
                    player_id,
                    pos_x,
                    pos_y,
                    pos_z,
                }
                .encode_into(buf)
            }),
            Effect::Left(player_id) => {
                encode_with(|buf| S_BroadcastLeaveGame { player_id }.encode_into(buf))
            }
        };
        match frame {
            Ok(frame) => self.send_to_members(frame, false),
            Err(e) => error!("room {}: cannot encode a change: {e:?}", self.id),
        }
    }

    /// If the room waits for nobody any more, it is ready: the lobby is told. Returns
    /// whether it is ready.
    fn became_ready(&mut self) -> bool {
        let Some(link) = self.cluster.as_deref_mut() else {
            return true;
        };
        match &link.awaiting {
            None => true,
            Some(awaiting) if awaiting.is_empty() => {
                link.awaiting = None;
                self.notify_ready();
                true
            }
            Some(_) => false,
        }
    }

    fn notify_ready(&self) {
        if let Some(lobby) = &self.lobby {
            let room = self.id;
            lobby.push(move |lobby| lobby.room_ready(room));
        }
    }
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
