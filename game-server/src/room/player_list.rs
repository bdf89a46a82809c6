//! `S_PlayerList` for a newcomer, split over several packets when the room is too big for
//! one frame.
//!
//! A frame's size is a `u16`, so one `S_PlayerList` holds at most [`MAX_PLAYERS_PER_LIST`]
//! (3,854) players. A newcomer to a bigger room receives several `S_PlayerList` packets in a
//! row, each a valid frame; the first starts with the newcomer's own entry (`isSelf`). The
//! course's client handles each list by adding its players, so several lists add up to the
//! whole room.

use crate::packets::{s_player_list, S_PlayerList};
use crate::player::PlayerId;
use server_core::frame;

/// Bytes of one `S_PlayerList` entry: `bool isSelf` (1) + `int playerId` (4) + 3 × `float` (12).
const PLAYER_ENTRY_LEN: usize = 17;
/// Bytes of an `S_PlayerList` without entries: frame header (4) + `u16` list count (2).
const PLAYER_LIST_BASE_LEN: usize = frame::HEADER_SIZE + 2;
/// Most entries one `S_PlayerList` frame can carry within the `u16` size field (3,854).
pub const MAX_PLAYERS_PER_LIST: usize =
    (frame::MAX_FRAME_SIZE - PLAYER_LIST_BASE_LEN) / PLAYER_ENTRY_LEN;

/// The `S_PlayerList` packets a newcomer receives: the newcomer first (`isSelf`), then
/// `others` in the order given, at most [`MAX_PLAYERS_PER_LIST`] per packet so each fits a
/// frame (a room of 10,000 gets three packets; clients append them all).
pub(crate) fn player_lists(
    me: (PlayerId, [f32; 3]),
    others: impl ExactSizeIterator<Item = (PlayerId, [f32; 3])>,
) -> Vec<S_PlayerList> {
    let entry = |(player_id, [pos_x, pos_y, pos_z]): (PlayerId, [f32; 3]), is_self: bool| {
        s_player_list::Player {
            is_self,
            player_id,
            pos_x,
            pos_y,
            pos_z,
        }
    };
    let total = others.len() + 1;
    let mut lists = Vec::with_capacity(total.div_ceil(MAX_PLAYERS_PER_LIST));
    let mut current = Vec::with_capacity(total.min(MAX_PLAYERS_PER_LIST));
    let everyone = std::iter::once(entry(me, true)).chain(others.map(|p| entry(p, false)));
    for player in everyone {
        if current.len() == MAX_PLAYERS_PER_LIST {
            lists.push(S_PlayerList {
                players: std::mem::take(&mut current),
            });
        }
        current.push(player);
    }
    lists.push(S_PlayerList { players: current });
    lists
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_players_per_list_fills_a_frame() {
        let full = S_PlayerList {
            players: vec![s_player_list::Player::default(); MAX_PLAYERS_PER_LIST],
        };
        assert!(full.encoded_len() <= frame::MAX_FRAME_SIZE);
        let over = S_PlayerList {
            players: vec![s_player_list::Player::default(); MAX_PLAYERS_PER_LIST + 1],
        };
        assert!(over.encoded_len() > frame::MAX_FRAME_SIZE);
        assert!(over.encode().is_err());
    }

    #[test]
    fn a_huge_room_is_listed_in_several_frames_self_first() {
        let others = (2..10_001).map(|id| (id, [id as f32, 0.0, -1.0]));
        let lists = player_lists((1, [0.0; 3]), others);
        assert_eq!(lists.len(), 3);
        assert_eq!(lists[0].players.len(), MAX_PLAYERS_PER_LIST);
        assert!(lists[0].players[0].is_self);
        assert_eq!(lists[0].players[0].player_id, 1);
        let all: Vec<_> = lists.iter().flat_map(|l| &l.players).collect();
        assert_eq!(all.len(), 10_000);
        assert_eq!(all.iter().filter(|p| p.is_self).count(), 1);
        assert!(all
            .iter()
            .enumerate()
            .all(|(i, p)| p.player_id == i as i32 + 1));
        for list in &lists {
            let frame = list.encode().expect("each list fits a frame");
            assert_eq!(frame.len(), list.encoded_len());
        }
    }

    #[test]
    fn a_small_room_is_one_list() {
        let lists = player_lists((5, [0.0; 3]), [(1, [1.0, 2.0, 3.0])].into_iter());
        assert_eq!(lists.len(), 1);
        assert_eq!(lists[0].players.len(), 2);
        assert!(lists[0].players[0].is_self && !lists[0].players[1].is_self);
    }
}
