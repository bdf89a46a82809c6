//! When server-core itself fails on an I/O thread (a bug of ours, not a user hook: those
//! are guarded), the loop does not take its work down with it. It marks itself dead (the
//! service's routing skips it and `ServiceStats::loops_alive` drops), closes its sessions
//! with [`DisconnectReason::LoopDied`] (their handlers hear about it), hands its listeners,
//! tasks, timers and pending connections to a live loop, and only then ends its thread.
//! With no live loop left, tasks run here one last time and timers are reported as lost.

use super::event_loop::{EventLoop, TimerKind};
use super::mailbox::{uninstall_local, Command, LoopShared};
use crate::session::DisconnectReason;
use log::error;
use std::sync::Arc;

impl EventLoop {
    pub(super) fn die(mut self, message: &str) {
        let index = self.shared.index;
        let sessions = self.sessions.len();
        error!(
            "I/O thread {index} stopped by an internal fault ({message}); closing its {sessions} sessions and moving its work to the other I/O threads"
        );
        let mut work = self.shared.mark_dead();

        let keys: Vec<usize> = self.sessions.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close(key, DisconnectReason::LoopDied);
        }

        // Everything accepted and not done: inbox, staged, ready tasks, timers, listeners.
        if let Some(staged) = uninstall_local() {
            for (target, mut outbox) in staged.outboxes.into_iter().enumerate() {
                if target == index || self.peers[target].push_batch(&mut outbox, true).is_err() {
                    work.append(&mut outbox);
                }
            }
            work.extend(staged.tasks.into_iter().map(|(_, command)| command));
        }
        work.extend(self.ready_tasks.drain(..).map(Command::Task));
        for (deadline, timer) in self.timers.drain_all() {
            // Internal timers (idle sweeps, linger) concerned this loop's sessions only.
            if let TimerKind::Task(task) = timer {
                work.push(Command::Timer { deadline, task });
            }
        }
        for (_, mut listener) in std::mem::take(&mut self.listeners) {
            let _ = self.poll.registry().deregister(&mut listener.socket);
            work.push(Command::Listen(Box::new(listener)));
        }

        let mut lost_timers = 0;
        for command in work {
            if !matches!(
                command,
                Command::Task(_) | Command::Timer { .. } | Command::Adopt(_) | Command::Listen(_)
            ) {
                continue; // about this loop's sessions, which are closed
            }
            match hand_to_live_loop(&self.peers, command) {
                Ok(()) => {}
                Err(Command::Task(task)) => self.run_task(task),
                Err(Command::Timer { .. }) => lost_timers += 1,
                Err(Command::Adopt(adoption)) => {
                    self.refuse_adoption(*adoption, "no I/O thread is alive");
                }
                Err(Command::Listen(entry)) => {
                    error!(
                        "listener {}: no I/O thread is alive to take it; closed",
                        entry.shared.local_addr
                    );
                }
                Err(_) => {}
            }
        }
        if lost_timers > 0 {
            error!("I/O thread {index}: no I/O thread is alive; {lost_timers} timers will not run");
        }
    }
}

/// Gives `command` to the first live loop that takes it, or gives it back.
fn hand_to_live_loop(peers: &Arc<[Arc<LoopShared>]>, mut command: Command) -> Result<(), Command> {
    for peer in peers.iter().filter(|p| p.is_alive()) {
        if let Command::Listen(entry) = &command {
            entry.shared.set_owner(peer.index);
        }
        match peer.push_remote(command) {
            Ok(()) => return Ok(()),
            Err(back) => command = back,
        }
    }
    Err(command)
}
